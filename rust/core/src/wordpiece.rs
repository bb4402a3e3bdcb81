//! WordPiece in linear time: LinMaxMatch from "Fast WordPiece Tokenization"
//! (Song et al., EMNLP 2021, arXiv:2012.15524).
//!
//! The greedy longest-match-first loop of BERT (and of Hugging Face
//! `tokenizers`) is quadratic in the word length. LinMaxMatch walks a trie of the
//! vocabulary once, byte by byte; when the walk cannot continue it follows a
//! precomputed *failure link* and emits the precomputed *failure pops* (the
//! tokens MaxMatch would have committed to). The output is provably identical to
//! MaxMatch, including the rule that a word which cannot be fully covered
//! becomes a single unknown token.
//!
//! Two tries share one node array: one rooted at `ROOT` for word-initial pieces
//! and one rooted at `SUFFIX_ROOT` for continuation pieces (`##x` is stored as
//! `x` below `SUFFIX_ROOT`). Keeping them apart avoids confusing a literal `##`
//! in the text with the continuation prefix.
//!
//! Working on UTF-8 bytes instead of chars gives the same result: every vocabulary
//! token is valid UTF-8, so every byte-level match ends on a char boundary.

use std::collections::VecDeque;

const NONE: u32 = u32::MAX;
pub const ROOT: u32 = 0;
pub const SUFFIX_ROOT: u32 = 1;

/// One token emitted for a word: id and byte range inside the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub id: u32,
    pub start: u32,
    pub end: u32,
}

/// What LinMaxMatch needs of a state besides its transitions.
#[derive(Clone, Copy, Debug)]
struct State {
    /// Token id of the string spelled by the path to this state, if it is in the vocabulary.
    token: u32,
    depth: u32,
    fail: u32,
    /// Failure pops: a range into `pops`.
    pops_start: u32,
    pops_len: u32,
}

const EMPTY: State = State {
    token: NONE,
    depth: 0,
    fail: NONE,
    pops_start: 0,
    pops_len: 0,
};

/// A vocabulary compiled for LinMaxMatch.
///
/// Transitions live in a double-array trie (Aoe, 1989): the child of state `s`
/// on byte `c` is `t = base[s] + c` if `check[t] == s`. Two small arrays and two
/// loads per byte keep the walk in cache, which is where the time goes.
#[derive(Clone, Debug)]
pub struct WordPiece {
    base: Vec<u32>,
    check: Vec<u32>,
    states: Vec<State>,
    /// (token id, byte length) of every failure pop.
    pops: Vec<(u32, u32)>,
    unk_id: u32,
    max_input_chars_per_word: usize,
}

/// A trie under construction, with list children.
struct Builder {
    children: Vec<Vec<(u8, u32)>>,
    token: Vec<u32>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            children: vec![Vec::new(), Vec::new()],
            token: vec![NONE, NONE],
        }
    }

    fn insert(&mut self, root: u32, bytes: &[u8], id: u32) {
        let mut node = root;
        for &b in bytes {
            node = match self.children[node as usize].iter().find(|(c, _)| *c == b) {
                Some(&(_, child)) => child,
                None => {
                    let child = self.token.len() as u32;
                    self.children.push(Vec::new());
                    self.token.push(NONE);
                    self.children[node as usize].push((b, child));
                    child
                }
            };
        }
        // With duplicate strings in a vocabulary, the last id wins, as in a HashMap built in order.
        self.token[node as usize] = id;
    }
}

impl WordPiece {
    /// Compile `vocab` (token strings indexed by id).
    pub fn new(
        vocab: &[String],
        prefix: &str,
        unk_id: u32,
        max_input_chars_per_word: usize,
    ) -> Self {
        let mut b = Builder::new();
        for (id, token) in vocab.iter().enumerate() {
            if token.is_empty() {
                continue;
            }
            b.insert(ROOT, token.as_bytes(), id as u32);
            if !prefix.is_empty() {
                if let Some(rest) = token.strip_prefix(prefix) {
                    if !rest.is_empty() {
                        b.insert(SUFFIX_ROOT, rest.as_bytes(), id as u32);
                    }
                }
            } else {
                // An empty prefix: continuation pieces are plain vocabulary entries.
                b.insert(SUFFIX_ROOT, token.as_bytes(), id as u32);
            }
        }
        let mut wp = WordPiece {
            base: Vec::new(),
            check: Vec::new(),
            states: Vec::new(),
            pops: Vec::new(),
            unk_id,
            max_input_chars_per_word,
        };
        let children = wp.build_double_array(&mut b);
        wp.compute_failure_links(&children);
        wp
    }

    /// Place every builder node in the double array, breadth-first (so the hot
    /// top of the trie is packed together). Returns each state's children as
    /// `(byte, state)` for the failure-link pass.
    fn build_double_array(&mut self, b: &mut Builder) -> Vec<Vec<(u8, u32)>> {
        let n = b.token.len();
        let mut slot = vec![NONE; n];
        let grow = |wp: &mut WordPiece, len: usize| {
            if wp.check.len() < len {
                wp.check.resize(len, NONE);
                wp.base.resize(len, 0);
                wp.states.resize(len, EMPTY);
            }
        };
        grow(self, 2);
        // The two roots sit at states 0 and 1; `check` of a root points at itself.
        for root in [ROOT, SUFFIX_ROOT] {
            slot[root as usize] = root;
            self.check[root as usize] = root;
        }
        // `next_free[i]` leads (union-find style, with path halving) to the first
        // free slot at or after `i`, so placing a node never rescans occupied runs.
        let mut next_free: Vec<u32> = Vec::new();
        fn find(next_free: &mut Vec<u32>, mut i: usize) -> usize {
            if next_free.len() <= i + 256 {
                let n = next_free.len();
                next_free.extend((n..(i + 1024).max(2 * n)).map(|k| k as u32));
            }
            while next_free[i] as usize != i {
                let up = next_free[next_free[i] as usize];
                next_free[i] = up;
                i = up as usize;
            }
            i
        }
        let occupy = |next_free: &mut Vec<u32>, i: usize| {
            find(next_free, i + 1);
            next_free[i] = (i + 1) as u32;
        };
        occupy(&mut next_free, 0);
        occupy(&mut next_free, 1);
        let mut queue = VecDeque::from([ROOT, SUFFIX_ROOT]);
        while let Some(node) = queue.pop_front() {
            let kids = &mut b.children[node as usize];
            kids.sort_unstable_by_key(|(c, _)| *c);
            let s = slot[node as usize] as usize;
            self.states[s].token = b.token[node as usize];
            if kids.is_empty() {
                continue;
            }
            let lo = kids[0].0 as usize;
            // The smallest base such that every child lands on a free slot (and
            // never on the two roots).
            let mut pos = find(&mut next_free, lo.max(2));
            let base = loop {
                let base = pos - lo;
                grow(self, base + 256);
                if kids
                    .iter()
                    .all(|&(c, _)| self.check[base + c as usize] == NONE)
                {
                    break base;
                }
                pos = find(&mut next_free, pos + 1);
            };
            self.base[s] = base as u32;
            for &(c, child) in kids.iter() {
                let t = base + c as usize;
                self.check[t] = s as u32;
                occupy(&mut next_free, t);
                slot[child as usize] = t as u32;
                self.states[t].depth = self.states[s].depth + 1;
                queue.push_back(child);
            }
        }
        let mut children = vec![Vec::new(); self.check.len()];
        for (node, kids) in b.children.iter().enumerate() {
            let s = slot[node];
            if s != NONE {
                children[s as usize] = kids.iter().map(|&(c, k)| (c, slot[k as usize])).collect();
            }
        }
        children
    }

    #[inline(always)]
    fn child(&self, state: u32, byte: u8) -> u32 {
        let t = self.base[state as usize] as usize + byte as usize;
        match self.check.get(t) {
            Some(&owner) if owner == state && t > SUFFIX_ROOT as usize => t as u32,
            _ => NONE,
        }
    }

    /// Algorithm 2 of the paper: breadth-first over both tries.
    fn compute_failure_links(&mut self, children: &[Vec<(u8, u32)>]) {
        let mut queue = VecDeque::from([ROOT, SUFFIX_ROOT]);
        let mut scratch: Vec<(u32, u32)> = Vec::new();
        while let Some(v) = queue.pop_front() {
            for &(c, u) in &children[v as usize] {
                queue.push_back(u);
                let us = self.states[u as usize];
                if us.token != NONE {
                    let start = self.pops.len() as u32;
                    self.pops.push((us.token, us.depth));
                    let us = &mut self.states[u as usize];
                    us.fail = SUFFIX_ROOT;
                    us.pops_start = start;
                    us.pops_len = 1;
                    continue;
                }
                let vs = self.states[v as usize];
                let mut z = vs.fail;
                scratch.clear();
                scratch.extend_from_slice(
                    &self.pops[vs.pops_start as usize..(vs.pops_start + vs.pops_len) as usize],
                );
                while z != NONE && self.child(z, c) == NONE {
                    let zs = self.states[z as usize];
                    scratch.extend_from_slice(
                        &self.pops[zs.pops_start as usize..(zs.pops_start + zs.pops_len) as usize],
                    );
                    z = zs.fail;
                }
                if z != NONE {
                    let target = self.child(z, c);
                    let start = self.pops.len() as u32;
                    self.pops.extend_from_slice(&scratch);
                    let us = &mut self.states[u as usize];
                    us.fail = target;
                    us.pops_start = start;
                    us.pops_len = scratch.len() as u32;
                }
            }
        }
    }

    /// Tokenize one pre-tokenized, normalized word into `out` (appending).
    /// `n_chars` is the word's length in chars, for `max_input_chars_per_word`.
    pub fn tokenize_word(&self, word: &[u8], n_chars: usize, out: &mut Vec<Piece>) {
        let unk = Piece {
            id: self.unk_id,
            start: 0,
            end: word.len() as u32,
        };
        if n_chars > self.max_input_chars_per_word {
            out.push(unk);
            return;
        }
        let mark = out.len();
        let mut pos: u32 = 0;
        // Follows state `u`'s failure link, emitting the tokens it pops; false when `u` has
        // none, which makes the whole word [UNK].
        let mut follow_failure = |out: &mut Vec<Piece>, u: &mut u32| -> bool {
            let n = &self.states[*u as usize];
            if n.fail == NONE {
                return false;
            }
            for &(id, len) in
                &self.pops[n.pops_start as usize..(n.pops_start + n.pops_len) as usize]
            {
                out.push(Piece {
                    id,
                    start: pos,
                    end: pos + len,
                });
                pos += len;
            }
            *u = n.fail;
            true
        };
        let mut u = ROOT;
        for &byte in word {
            loop {
                let next = self.child(u, byte);
                if next != NONE {
                    u = next;
                    break;
                }
                if !follow_failure(out, &mut u) {
                    out.truncate(mark);
                    out.push(unk);
                    return;
                }
            }
        }
        while u != SUFFIX_ROOT {
            if !follow_failure(out, &mut u) {
                out.truncate(mark);
                out.push(unk);
                return;
            }
        }
    }
}

/// The greedy longest-match-first loop, exactly as BERT and Hugging Face
/// `tokenizers` write it. Quadratic; kept as the readable reference that the
/// tests compare [`WordPiece::tokenize_word`] against.
pub fn reference_max_match(
    word: &str,
    vocab: &std::collections::HashMap<String, u32>,
    prefix: &str,
    unk_id: u32,
    max_input_chars_per_word: usize,
) -> Vec<Piece> {
    let unk = vec![Piece {
        id: unk_id,
        start: 0,
        end: word.len() as u32,
    }];
    if word.chars().count() > max_input_chars_per_word {
        return unk;
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < word.len() {
        let mut end = word.len();
        let mut found = None;
        while start < end {
            let sub = &word[start..end];
            let candidate = if start > 0 {
                format!("{prefix}{sub}")
            } else {
                sub.to_string()
            };
            if let Some(&id) = vocab.get(&candidate) {
                found = Some(Piece {
                    id,
                    start: start as u32,
                    end: end as u32,
                });
                break;
            }
            end -= sub.chars().next_back().map_or(1, char::len_utf8);
        }
        match found {
            Some(p) => {
                pieces.push(p);
                start = p.end as usize;
            }
            None => return unk,
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vocab() -> Vec<String> {
        [
            "[UNK]", "a", "ab", "abc", "##b", "##c", "##cd", "##d", "un", "##aff", "##able", "##a",
            "x", "##",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn check(words: &[&str]) {
        let v = vocab();
        let map: HashMap<String, u32> = v
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let wp = WordPiece::new(&v, "##", 0, 100);
        for w in words {
            let mut out = Vec::new();
            wp.tokenize_word(w.as_bytes(), w.chars().count(), &mut out);
            assert_eq!(
                out,
                reference_max_match(w, &map, "##", 0, 100),
                "word {w:?}"
            );
        }
    }

    #[test]
    fn matches_reference_on_hand_picked_words() {
        check(&[
            "a",
            "ab",
            "abc",
            "abcd",
            "abd",
            "abcdd",
            "unaffable",
            "aa",
            "aaa",
            "b",
            "abx",
            "x",
            "xa",
            "é",
            "abé",
            "#",
            "##",
            "a##",
        ]);
    }

    #[test]
    fn matches_reference_on_all_short_words() {
        let alphabet = ['a', 'b', 'c', 'd', 'x', '#'];
        let mut words = vec![String::new()];
        for _ in 0..5 {
            let next: Vec<String> = words
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(next.iter().cloned());
            words.dedup();
            words = {
                let mut w = words;
                w.sort();
                w.dedup();
                w
            };
        }
        let refs: Vec<&str> = words
            .iter()
            .filter(|w| !w.is_empty())
            .map(String::as_str)
            .collect();
        check(&refs);
    }

    #[test]
    fn long_words_become_unknown() {
        let wp = WordPiece::new(&vocab(), "##", 0, 3);
        let mut out = Vec::new();
        wp.tokenize_word(b"abcd", 4, &mut out);
        assert_eq!(
            out,
            vec![Piece {
                id: 0,
                start: 0,
                end: 4
            }]
        );
    }
}
