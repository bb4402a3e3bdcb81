//! Locality-sensitive hashing over MinHash signatures: banding (Indyk & Motwani,
//! 1998; Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3).
//!
//! A signature is cut into `bands` bands of `rows` values; two documents become a
//! candidate pair when all the values of at least one band agree, which for Jaccard
//! similarity `s` happens with probability `1 − (1 − sʳ)ᵇ`. Candidates are then
//! checked against the whole signature, so a false candidate costs one comparison
//! while a missed pair is lost for good: the banding is chosen for recall.

use rustc_hash::FxHashSet;

use super::graph::UnionFind;
use super::hash::fold;
use super::store::Signatures;
use super::text::to_u32;
use crate::pool;

/// The band collision probabilities wanted at the threshold itself, and 0.05 above it
/// (where the recall bar is measured). With 128 permutations the second holds at every
/// threshold; at threshold 0.8 (7 rows × 18 bands) the two are 0.986 and 0.999, where
/// datasketch's default (13 × 9, weighing misses and false candidates equally) gives
/// 0.40 and 0.69.
pub const CANDIDATE_PROBABILITY_AT_THRESHOLD: f64 = 0.95;
pub const CANDIDATE_PROBABILITY_ABOVE_THRESHOLD: f64 = 0.99;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Banding {
    pub bands: usize,
    pub rows: usize,
}

/// `1 − (1 − sʳ)ᵇ`: the probability that documents of Jaccard similarity `s` share a band.
pub fn candidate_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

impl Banding {
    /// The most rows per band (the fewest false candidates) that still make a pair at
    /// `threshold` a candidate with probability [`CANDIDATE_PROBABILITY_AT_THRESHOLD`]
    /// and one at `threshold + 0.05` with [`CANDIDATE_PROBABILITY_ABOVE_THRESHOLD`], with
    /// as many bands as the permutations allow. One row per band when even that falls
    /// short (a tiny `num_perm`).
    pub fn for_threshold(threshold: f64, num_perm: usize) -> Banding {
        let above = (threshold + 0.05).min(1.0);
        let mut best = Banding {
            bands: num_perm.max(1),
            rows: 1,
        };
        for rows in 2..=num_perm {
            let bands = num_perm / rows;
            if candidate_probability(threshold, bands, rows) >= CANDIDATE_PROBABILITY_AT_THRESHOLD
                && candidate_probability(above, bands, rows)
                    >= CANDIDATE_PROBABILITY_ABOVE_THRESHOLD
            {
                best = Banding { bands, rows };
            }
        }
        best
    }

    /// The key of band `band` of `signature`; the band index is the seed, so equal
    /// values in different bands do not collide. 32 bits, half the memory of a full
    /// hash: keys that agree by chance make a few false candidates (about n² / 2³³
    /// per band: one per band at 10⁵ distinct texts), which verification throws out.
    #[inline]
    pub fn key(&self, signature: &[u32], band: usize) -> u32 {
        let values = &signature[band * self.rows..(band + 1) * self.rows];
        to_u32(fold(band as u64, values.iter().map(|&v| u64::from(v))))
    }
}

/// The band keys shared by two or more texts, in one band: `members[offsets[k]..offsets[k + 1]]`
/// is bucket `k`, ascending. Texts alone in their bucket (nearly all) are not kept.
#[derive(Debug, Default, PartialEq)]
pub struct Buckets {
    pub offsets: Vec<usize>,
    pub members: Vec<u32>,
}

impl Buckets {
    pub fn iter(&self) -> impl Iterator<Item = &[u32]> {
        self.offsets.windows(2).map(|w| &self.members[w[0]..w[1]])
    }
}

/// The buckets of every band; `band_keys[b][i]` is text `i`'s key in band `b`.
/// Bands are sorted in parallel; each keeps only its shared keys, so the memory
/// left afterwards is proportional to the candidates, not to the corpus.
pub fn buckets(band_keys: &[Vec<u32>], threads: Option<usize>) -> Vec<Buckets> {
    pool::map(band_keys, threads, |keys| {
        let mut sorted: Vec<u64> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (u64::from(k) << 32) | i as u64)
            .collect();
        sort_by_key(&mut sorted);
        let mut out = Buckets {
            offsets: vec![0],
            members: Vec::new(),
        };
        for bucket in sorted.chunk_by(|a, b| a >> 32 == b >> 32) {
            if bucket.len() > 1 {
                out.members.extend(bucket.iter().map(|&x| x as u32));
                out.offsets.push(out.members.len());
            }
        }
        out
    })
}

/// Sort `key << 32 | index` words by key, indices ascending within a key (they come in
/// ascending): a least-significant-digit radix sort over the key's four bytes, about
/// three times faster than a comparison sort at 10⁵ words.
fn sort_by_key(words: &mut Vec<u64>) {
    let mut spare = vec![0u64; words.len()];
    for shift in [32, 40, 48, 56] {
        let digit = |w: u64| ((w >> shift) & 0xff) as usize;
        let mut starts = [0usize; 257];
        for &w in words.iter() {
            starts[digit(w) + 1] += 1;
        }
        for i in 0..256 {
            starts[i + 1] += starts[i];
        }
        for &w in words.iter() {
            spare[starts[digit(w)]] = w;
            starts[digit(w)] += 1;
        }
        std::mem::swap(words, &mut spare);
    }
}

/// Where a text's documents are: all in one split, or in several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    Split(u32),
    Several,
}

/// What [`near_pairs`] found.
#[derive(Debug, Default, PartialEq)]
pub struct NearPairs {
    /// `(x, y, matching permutations)`, `x < y`, ascending.
    pub pairs: Vec<(u32, u32, u32)>,
    /// Signature comparisons made.
    pub compared: usize,
}

/// Near-duplicate pairs among texts that share a bucket: those whose signatures
/// agree on at least `min_matches` values.
///
/// Comparing every pair of a bucket would be quadratic, and a bucket can hold
/// thousands of texts (a template filled in with different names). Texts that live
/// in one split only need to end up in the right cluster, so within a bucket they are
/// kept in groups already linked together: a text is compared with each group's
/// members until one matches, then joins it, and is never compared with a group it is
/// already linked to. `k` near copies cost about `k` comparisons, not `k²/2`, and the
/// clusters are those that comparing every pair would give. Pairs that can cross
/// splits are all compared, once each: every one found is reported.
pub fn near_pairs(
    buckets: &[Buckets],
    signatures: &Signatures,
    min_matches: usize,
    home: &[Home],
) -> NearPairs {
    let mut out = NearPairs::default();
    let check = |x: u32, y: u32, out: &mut NearPairs| -> bool {
        out.compared += 1;
        let m = signatures.matches(x, y);
        if m >= min_matches {
            out.pairs.push((x.min(y), x.max(y), m as u32));
        }
        m >= min_matches
    };
    let mut sets = UnionFind::new(home.len());
    let mut compared_across: FxHashSet<u64> = FxHashSet::default();
    // Per bucket: (split, members linked together), for texts of one split.
    let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
    for bucket in buckets.iter().flat_map(Buckets::iter) {
        groups.clear();
        for (j, &y) in bucket.iter().enumerate() {
            for &x in &bucket[..j] {
                let across = match (home[x as usize], home[y as usize]) {
                    (Home::Split(a), Home::Split(b)) => a != b,
                    _ => true,
                };
                if across && compared_across.insert(pack(x.min(y), x.max(y))) {
                    check(x, y, &mut out);
                }
            }
            let Home::Split(split) = home[y as usize] else {
                continue;
            };
            let mut joined: Option<usize> = None;
            for g in 0..groups.len() {
                if groups[g].0 != split || groups[g].1.is_empty() {
                    continue;
                }
                let linked = sets.find(groups[g].1[0]) == sets.find(y)
                    || groups[g].1.iter().any(|&x| {
                        let hit = check(x, y, &mut out);
                        if hit {
                            sets.union(x, y);
                        }
                        hit
                    });
                if linked {
                    match joined {
                        None => joined = Some(g),
                        Some(k) => {
                            let moved = std::mem::take(&mut groups[g].1);
                            groups[k].1.extend(moved);
                        }
                    }
                }
            }
            match joined {
                Some(k) => groups[k].1.push(y),
                None => groups.push((split, vec![y])),
            }
        }
    }
    out.pairs.sort_unstable();
    out.pairs.dedup();
    out
}

/// `(x, y)` as one hashable word.
#[inline]
fn pack(x: u32, y: u32) -> u64 {
    (u64::from(x) << 32) | u64::from(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banding_for_the_default_threshold() {
        let b = Banding::for_threshold(0.8, 128);
        assert_eq!(b, Banding { bands: 18, rows: 7 });
        assert!(candidate_probability(0.85, b.bands, b.rows) > 0.99);
    }

    #[test]
    fn pairs_above_the_threshold_are_candidates_at_any_threshold() {
        for t in (5..=100).map(|p| f64::from(p) / 100.0) {
            let b = Banding::for_threshold(t, 128);
            let p = candidate_probability((t + 0.05).min(1.0), b.bands, b.rows);
            assert!(p >= 0.99, "threshold {t}: {b:?} gives {p}");
        }
    }

    #[test]
    fn banding_always_fits_in_the_signature() {
        for n in [1, 2, 7, 64, 128, 256] {
            for t in [0.05, 0.3, 0.5, 0.8, 0.95, 1.0] {
                let b = Banding::for_threshold(t, n);
                assert!(
                    b.bands * b.rows <= n && b.bands >= 1 && b.rows >= 1,
                    "{n} {t} {b:?}"
                );
            }
        }
    }

    fn keys_of(sigs: &[u32], n: usize, banding: Banding) -> Vec<Vec<u32>> {
        (0..banding.bands)
            .map(|b| sigs.chunks(n).map(|s| banding.key(s, b)).collect())
            .collect()
    }

    fn store(sigs: &[u32], n: usize) -> Signatures {
        let mut s = Signatures::new(n);
        for sig in sigs.chunks(n) {
            s.push(sig);
        }
        s
    }

    #[test]
    fn radix_sort_orders_by_key_then_index() {
        let mut rng = super::super::hash::SplitMix64::new(9);
        let keys: Vec<u64> = (0..5000).map(|_| rng.next().unwrap_or(0) % 700).collect();
        let mut words: Vec<u64> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k.wrapping_mul(0x9e37_79b9) << 32) | i as u64)
            .collect();
        let mut want = words.clone();
        want.sort_unstable();
        sort_by_key(&mut words);
        assert_eq!(words, want);
    }

    #[test]
    fn shared_bands_make_buckets_and_close_pairs_are_kept() {
        let n = 8;
        let banding = Banding { bands: 4, rows: 2 };
        let mut sigs = Vec::new();
        sigs.extend([1u32, 2, 3, 4, 5, 6, 7, 8]); // 0
        sigs.extend([9u32, 9, 9, 9, 9, 9, 9, 9]); // 1: shares nothing
        sigs.extend([1u32, 2, 3, 4, 5, 6, 0, 0]); // 2: 3 bands of 4 with 0
        let b = buckets(&keys_of(&sigs, n, banding), Some(1));
        let shared: Vec<Vec<u32>> = b
            .iter()
            .flat_map(|x| x.iter().map(<[u32]>::to_vec))
            .collect();
        assert_eq!(shared, vec![vec![0, 2]; 3]);
        for home in [
            [Home::Split(0); 3],
            [Home::Split(0), Home::Split(0), Home::Split(1)],
        ] {
            let found = near_pairs(&b, &store(&sigs, n), 6, &home);
            assert_eq!(found.pairs, vec![(0, 2, 6)]);
            assert!(near_pairs(&b, &store(&sigs, n), 7, &home).pairs.is_empty());
        }
    }

    #[test]
    fn a_bucket_of_near_copies_costs_linear_comparisons_within_a_split() {
        // 200 identical signatures in one split: one bucket per band, one cluster.
        let n = 8;
        let banding = Banding { bands: 4, rows: 2 };
        let sigs: Vec<u32> = (0..200).flat_map(|_| [1u32, 2, 3, 4, 5, 6, 7, 8]).collect();
        let b = buckets(&keys_of(&sigs, n, banding), Some(2));
        let found = near_pairs(&b, &store(&sigs, n), 8, &[Home::Split(0); 200]);
        assert_eq!(found.pairs.len(), 199);
        assert_eq!(found.compared, 199);
        // Across two splits every pair is reported: 100 × 100.
        let home: Vec<Home> = (0..200).map(|i| Home::Split(u32::from(i >= 100))).collect();
        let found = near_pairs(&b, &store(&sigs, n), 8, &home);
        assert_eq!(found.pairs.len(), 99 + 99 + 100 * 100);
    }
}
