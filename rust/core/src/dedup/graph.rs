//! From representatives back to documents: within-split clusters and cross-split pairs.
//!
//! The index keeps one signature per distinct normalised text (a *representative*);
//! every document points at its representative. Duplicates are found between
//! representatives, then spread over their documents here:
//!
//! - documents of one representative are exact duplicates (estimated Jaccard 1);
//! - documents of two representatives joined by a verified edge are near duplicates,
//!   with that edge's estimate;
//! - within a split, clusters are the connected components of those links
//!   restricted to the split (a chain through another split does not join them);
//! - across splits, every linked pair of documents is reported, earlier split first.

use std::ops::Range;

/// The representative of a document with no words: it is nobody's duplicate.
pub const EMPTY: u32 = u32::MAX;

/// Disjoint sets over `0..n` with path halving and union by size.
pub(super) struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub(super) fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    pub(super) fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    pub(super) fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

/// What the documents of a finished index link up to.
#[derive(Debug, Default, PartialEq)]
pub struct Linked {
    /// `cluster_docs[cluster_offsets[k]..cluster_offsets[k + 1]]` is cluster `k`: at
    /// least two documents of one split, ascending; clusters ordered by first document.
    pub cluster_offsets: Vec<usize>,
    pub cluster_docs: Vec<u32>,
    /// `(earlier document, later document, matching permutations)` for every linked
    /// pair in different splits, ascending. Exact duplicates count all permutations.
    pub pairs: Vec<(u32, u32, u32)>,
}

/// Spread links between representatives over documents.
///
/// `rep_of[d]` is document `d`'s representative ([`EMPTY`] for an empty document),
/// `split_of` maps a document to its split (non-decreasing in the document id), and
/// `edges` are `(rep, rep, matching permutations)` near-duplicate links.
pub fn link(
    rep_of: &[u32],
    num_reps: usize,
    split_of: impl Fn(u32) -> usize,
    edges: &[(u32, u32, u32)],
    num_perm: u32,
) -> Linked {
    let members = Members::new(rep_of, num_reps);
    let mut sets = UnionFind::new(rep_of.len());
    let mut pairs = Vec::new();
    let runs = |rep: u32| split_runs(members.of(rep), &split_of);

    for rep in 0..num_reps as u32 {
        let docs = members.of(rep);
        let runs = runs(rep);
        for r in &runs {
            for w in docs[r.clone()].windows(2) {
                sets.union(w[0], w[1]);
            }
        }
        for (i, a) in runs.iter().enumerate() {
            for b in &runs[i + 1..] {
                cross(&docs[a.clone()], &docs[b.clone()], num_perm, &mut pairs);
            }
        }
    }
    for &(x, y, m) in edges {
        let (dx, dy) = (members.of(x), members.of(y));
        for rx in runs(x) {
            for ry in runs(y) {
                let (sx, sy) = (split_of(dx[rx.start]), split_of(dy[ry.start]));
                if sx == sy {
                    sets.union(dx[rx.start], dy[ry.start]);
                } else if sx < sy {
                    cross(&dx[rx.clone()], &dy[ry.clone()], m, &mut pairs);
                } else {
                    cross(&dy[ry.clone()], &dx[rx.clone()], m, &mut pairs);
                }
            }
        }
    }
    pairs.sort_unstable();

    let (cluster_offsets, cluster_docs) = clusters(rep_of, &mut sets);
    Linked {
        cluster_offsets,
        cluster_docs,
        pairs,
    }
}

/// Every `(a, b)` with `a` from `earlier`, `b` from `later`.
fn cross(earlier: &[u32], later: &[u32], m: u32, out: &mut Vec<(u32, u32, u32)>) {
    for &a in earlier {
        out.extend(later.iter().map(|&b| (a, b, m)));
    }
}

/// Ranges of `docs` (ascending) that fall in one split each.
fn split_runs(docs: &[u32], split_of: impl Fn(u32) -> usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=docs.len() {
        if i == docs.len() || split_of(docs[i]) != split_of(docs[start]) {
            runs.push(start..i);
            start = i;
        }
    }
    runs
}

/// Components with at least two documents, in order of their first document.
fn clusters(rep_of: &[u32], sets: &mut UnionFind) -> (Vec<usize>, Vec<u32>) {
    const NONE: u32 = u32::MAX;
    // Number the components that have two or more documents as they are first met.
    let mut id_of_root = vec![NONE; rep_of.len()];
    let mut sizes: Vec<usize> = Vec::new();
    for d in 0..rep_of.len() as u32 {
        if rep_of[d as usize] == EMPTY {
            continue;
        }
        let root = sets.find(d);
        if sets.size[root as usize] < 2 {
            continue;
        }
        if id_of_root[root as usize] == NONE {
            id_of_root[root as usize] = sizes.len() as u32;
            sizes.push(0);
        }
        sizes[id_of_root[root as usize] as usize] += 1;
    }
    let mut offsets = Vec::with_capacity(sizes.len() + 1);
    offsets.push(0);
    for s in &sizes {
        offsets.push(offsets.last().copied().unwrap_or(0) + s);
    }
    let mut fill = offsets.clone();
    let mut docs = vec![0u32; offsets.last().copied().unwrap_or(0)];
    for d in 0..rep_of.len() as u32 {
        if rep_of[d as usize] == EMPTY {
            continue;
        }
        let root = sets.find(d);
        let id = id_of_root[root as usize];
        if id != NONE {
            docs[fill[id as usize]] = d;
            fill[id as usize] += 1;
        }
    }
    (offsets, docs)
}

/// The documents of each representative, ascending (a counting sort of `rep_of`).
struct Members {
    offsets: Vec<usize>,
    docs: Vec<u32>,
}

impl Members {
    fn new(rep_of: &[u32], num_reps: usize) -> Self {
        let mut offsets = vec![0usize; num_reps + 1];
        for &r in rep_of.iter().filter(|&&r| r != EMPTY) {
            offsets[r as usize + 1] += 1;
        }
        for i in 0..num_reps {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut docs = vec![0u32; offsets[num_reps]];
        for (d, &r) in rep_of.iter().enumerate() {
            if r != EMPTY {
                docs[fill[r as usize]] = d as u32;
                fill[r as usize] += 1;
            }
        }
        Members { offsets, docs }
    }

    fn of(&self, rep: u32) -> &[u32] {
        &self.docs[self.offsets[rep as usize]..self.offsets[rep as usize + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_list(l: &Linked) -> Vec<Vec<u32>> {
        l.cluster_offsets
            .windows(2)
            .map(|w| l.cluster_docs[w[0]..w[1]].to_vec())
            .collect()
    }

    #[test]
    fn exact_and_near_links_within_and_across_splits() {
        // Split 0: docs 0..4, split 1: docs 4..7.
        let split_of = |d: u32| usize::from(d >= 4);
        // rep 0 = docs 0, 2, 5 (exact copies); rep 1 = docs 1, 6; rep 2 = doc 3; doc 4 empty.
        let rep_of = [0, 1, 0, 2, EMPTY, 0, 1];
        // Near edge rep 1 ~ rep 2 (100 of 128).
        let l = link(&rep_of, 3, split_of, &[(1, 2, 100)], 128);
        assert_eq!(cluster_list(&l), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(
            l.pairs,
            vec![(0, 5, 128), (1, 6, 128), (2, 5, 128), (3, 6, 100)]
        );
    }

    #[test]
    fn a_chain_through_another_split_does_not_join_a_cluster() {
        // docs 0, 1 in split 0; doc 2 in split 1; 0 ~ 2 ~ 1 but 0 !~ 1.
        let split_of = |d: u32| usize::from(d >= 2);
        let rep_of = [0, 1, 2];
        let l = link(&rep_of, 3, split_of, &[(0, 2, 110), (1, 2, 105)], 128);
        assert!(cluster_list(&l).is_empty());
        assert_eq!(l.pairs, vec![(0, 2, 110), (1, 2, 105)]);
    }
}
