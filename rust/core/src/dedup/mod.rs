//! Exact and near-duplicate detection over one or more splits of a corpus.
//!
//! - [`text`]: normalisation, the exact-duplicate hash, word and character shingles.
//! - [`minhash`]: MinHash signatures and the Jaccard estimate.
//! - [`lsh`]: banding, buckets, the search for near-duplicate pairs in them.
//! - [`store`]: the index's signatures, 16 bits per value.
//! - [`graph`]: from representatives back to documents, clusters and cross-split pairs.
//!
//! [`Index`] streams: documents arrive in batches ([`Index::add`]), split after split
//! ([`Index::start_split`]), and only fingerprints are kept, never text: 4 bytes per
//! document, plus per distinct normalised text a hash-map entry, a `2 · num_perm`-byte
//! signature and 4 bytes per LSH band. [`Index::finish`] then finds the duplicates.

pub mod graph;
pub mod hash;
pub mod lsh;
pub mod minhash;
pub mod store;
pub mod text;

use rustc_hash::FxHashMap;

pub use graph::Linked;
pub use lsh::{Banding, Home};
pub use minhash::MinHasher;
pub use text::{Normalized, Unit};

use crate::error::{Error, Result};
use crate::pool;
use store::Signatures;

/// The most permutations accepted: more buys nothing measurable and costs memory.
pub const MAX_NUM_PERM: usize = 4096;

/// What counts as a duplicate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Estimated Jaccard similarity at or above which two documents are near duplicates.
    pub threshold: f64,
    /// MinHash permutations (signature length).
    pub num_perm: usize,
    /// Units per shingle.
    pub ngram: usize,
    pub unit: Unit,
}

impl Params {
    pub fn validate(&self) -> Result<()> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(Error::invalid(format!(
                "threshold must be in (0, 1], not {}",
                self.threshold
            )));
        }
        if !(1..=MAX_NUM_PERM).contains(&self.num_perm) {
            return Err(Error::invalid(format!(
                "num_perm must be between 1 and {MAX_NUM_PERM}, not {}",
                self.num_perm
            )));
        }
        if self.ngram == 0 {
            return Err(Error::invalid("ngram must be at least 1, not 0"));
        }
        Ok(())
    }
}

/// The fingerprints of a batch of documents, in input order.
#[derive(Debug, Default, PartialEq)]
pub struct Fingerprints {
    /// Hash of the normalised text (meaningless where `empty`).
    pub exact: Vec<u64>,
    /// The document has no words after normalisation.
    pub empty: Vec<bool>,
    /// `num_perm` values per document, back to back (all `u32::MAX` where `empty`).
    pub signatures: Vec<u32>,
    /// The LSH band keys of each document, `bands` per document, back to back
    /// (empty unless asked for: only the index needs them).
    pub band_keys: Vec<u32>,
}

/// Documents fingerprinted per task: enough to amortise a task, few enough to balance.
const BLOCK: usize = 64;

/// Normalise, shingle and MinHash `texts` on `threads` threads.
pub fn fingerprints(
    texts: &[&str],
    params: &Params,
    hasher: &MinHasher,
    threads: Option<usize>,
) -> Fingerprints {
    let mut all = Fingerprints::default();
    for p in fingerprint_blocks(texts, params, hasher, None, threads) {
        all.exact.extend(p.exact);
        all.empty.extend(p.empty);
        all.signatures.extend(p.signatures);
    }
    all
}

/// [`fingerprints`] in blocks of [`BLOCK`] documents, not concatenated: the index
/// files them block by block, sparing a copy of every signature. With `banding`,
/// band keys too, while each signature is still in cache.
fn fingerprint_blocks(
    texts: &[&str],
    params: &Params,
    hasher: &MinHasher,
    banding: Option<Banding>,
    threads: Option<usize>,
) -> Vec<Fingerprints> {
    let blocks: Vec<&[&str]> = texts.chunks(BLOCK).collect();
    pool::map(&blocks, threads, |block| {
        let mut norm = Normalized::default();
        let mut shingles = Vec::new();
        let mut out = Fingerprints {
            exact: Vec::with_capacity(block.len()),
            empty: Vec::with_capacity(block.len()),
            signatures: vec![0; block.len() * params.num_perm],
            band_keys: Vec::with_capacity(block.len() * banding.map_or(0, |b| b.bands)),
        };
        for (text, sig) in block
            .iter()
            .zip(out.signatures.chunks_exact_mut(params.num_perm))
        {
            norm.fill(text);
            norm.shingles(params.unit, params.ngram, &mut shingles);
            out.exact.push(norm.exact_hash());
            out.empty.push(norm.is_empty());
            hasher.signature(&shingles, sig);
            if let Some(b) = banding {
                out.band_keys
                    .extend((0..b.bands).map(|band| b.key(sig, band)));
            }
        }
        out
    })
}

/// Duplicates found by [`Index::finish`]. Documents are numbered from 0 in the
/// order they were added, across splits.
#[derive(Debug, PartialEq)]
pub struct Duplicates {
    pub linked: Linked,
    /// First document of each split (splits are consecutive ranges).
    pub split_starts: Vec<u32>,
    /// Documents with no words (never duplicates), per split.
    pub empty: Vec<usize>,
    /// Distinct normalised texts; signature comparisons made; near-duplicate pairs of
    /// distinct texts found.
    pub distinct: usize,
    pub compared: usize,
    pub near_pairs: usize,
}

/// A streaming duplicate index: add documents split by split, then [`Index::finish`].
pub struct Index {
    params: Params,
    banding: Banding,
    hasher: MinHasher,
    /// Exact hash → representative.
    exact: FxHashMap<u64, u32>,
    /// Representative of each document; [`graph::EMPTY`] for a document with no words.
    rep_of: Vec<u32>,
    signatures: Signatures,
    /// `band_keys[b][r]`: representative `r`'s key in band `b`.
    band_keys: Vec<Vec<u32>>,
    split_starts: Vec<u32>,
}

impl Index {
    pub fn new(params: Params) -> Result<Index> {
        params.validate()?;
        let banding = Banding::for_threshold(params.threshold, params.num_perm);
        Ok(Index {
            banding,
            band_keys: vec![Vec::new(); banding.bands],
            hasher: MinHasher::new(params.num_perm),
            params,
            exact: FxHashMap::default(),
            rep_of: Vec::new(),
            signatures: Signatures::new(params.num_perm),
            split_starts: Vec::new(),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn banding(&self) -> Banding {
        self.banding
    }

    /// Documents added so far, over all splits.
    pub fn documents(&self) -> usize {
        self.rep_of.len()
    }

    /// Splits started so far.
    pub fn splits(&self) -> usize {
        self.split_starts.len()
    }

    /// Documents added from now on belong to a new split.
    pub fn start_split(&mut self) {
        self.split_starts.push(self.rep_of.len() as u32);
    }

    /// Fingerprint `texts` in parallel and file them under the current split (the
    /// first split is started if none was).
    pub fn add(&mut self, texts: &[&str], threads: Option<usize>) -> Result<()> {
        // Document ids are u32, and u32::MAX marks an empty document.
        if self.rep_of.len() + texts.len() >= u32::MAX as usize {
            return Err(Error::invalid(format!(
                "too many documents: at most {} fit in one index",
                u32::MAX
            )));
        }
        if self.split_starts.is_empty() {
            self.start_split();
        }
        let (n, bands) = (self.params.num_perm, self.banding.bands);
        let blocks = fingerprint_blocks(
            texts,
            &self.params,
            &self.hasher,
            Some(self.banding),
            threads,
        );
        for fp in blocks {
            let docs = fp
                .signatures
                .chunks_exact(n)
                .zip(fp.band_keys.chunks_exact(bands));
            for (i, (sig, keys)) in docs.enumerate() {
                let rep = if fp.empty[i] {
                    graph::EMPTY
                } else {
                    self.file(fp.exact[i], sig, keys)
                };
                self.rep_of.push(rep);
            }
        }
        Ok(())
    }

    /// The representative of a document with this exact hash, signature and band
    /// keys: an earlier copy, or the document itself as a new representative.
    fn file(&mut self, exact: u64, sig: &[u32], keys: &[u32]) -> u32 {
        let seen = self.exact.get(&exact).copied();
        // The signature check guards against a 64-bit hash collision passing two
        // different texts off as copies.
        if let Some(r) = seen.filter(|&r| self.signatures.equals(r, sig)) {
            return r;
        }
        let r = self.signatures.push(sig);
        for (band, &k) in self.band_keys.iter_mut().zip(keys) {
            band.push(k);
        }
        if seen.is_none() {
            self.exact.insert(exact, r);
        }
        r
    }

    fn split_of(&self, doc: u32) -> usize {
        self.split_starts.partition_point(|&s| s <= doc) - 1
    }

    /// Where each representative's documents are.
    fn homes(&self, distinct: usize) -> Vec<Home> {
        let mut home: Vec<Option<Home>> = vec![None; distinct];
        for (d, &r) in self.rep_of.iter().enumerate() {
            if r != graph::EMPTY {
                let split = Home::Split(self.split_of(d as u32) as u32);
                let h = &mut home[r as usize];
                *h = match *h {
                    None => Some(split),
                    Some(old) if old == split => Some(old),
                    Some(_) => Some(Home::Several),
                };
            }
        }
        home.into_iter()
            .map(|h| h.unwrap_or(Home::Several))
            .collect()
    }

    /// Find every duplicate among the documents added so far.
    pub fn finish(&self, threads: Option<usize>) -> Duplicates {
        let n = self.params.num_perm;
        let distinct = self.signatures.len();
        let buckets = lsh::buckets(&self.band_keys, threads);
        let min = minhash::min_matches(self.params.threshold, n);
        let near = lsh::near_pairs(&buckets, &self.signatures, min, &self.homes(distinct));
        let linked = graph::link(
            &self.rep_of,
            distinct,
            |d| self.split_of(d),
            &near.pairs,
            n as u32,
        );
        let mut empty = vec![0; self.split_starts.len()];
        for (d, &r) in self.rep_of.iter().enumerate() {
            if r == graph::EMPTY {
                empty[self.split_of(d as u32)] += 1;
            }
        }
        Duplicates {
            linked,
            split_starts: self.split_starts.clone(),
            empty,
            distinct,
            compared: near.compared,
            near_pairs: near.pairs.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(threshold: f64) -> Params {
        Params {
            threshold,
            num_perm: 128,
            ngram: 5,
            unit: Unit::Char,
        }
    }

    #[test]
    fn finds_exact_and_near_duplicates_across_splits() {
        let mut index = Index::new(params(0.7)).unwrap();
        index.start_split();
        let train = [
            "The quick brown fox jumps over the lazy dog near the river bank today",
            "Something else entirely, about databases and query planners",
            "the QUICK brown fox jumps over the lazy dog near the river bank today!!",
            "",
        ];
        index.add(&train, Some(2)).unwrap();
        index.start_split();
        let test = [
            "The quick brown fox jumped over the lazy dog near the river bank today",
            "Nothing like the others at all: a poem on winter light",
        ];
        index.add(&test, Some(1)).unwrap();
        let d = index.finish(Some(2));
        assert_eq!(d.split_starts, vec![0, 4]);
        assert_eq!(d.empty, vec![1, 0]);
        assert_eq!(d.linked.cluster_docs, vec![0, 2]);
        let cross: Vec<(u32, u32)> = d.linked.pairs.iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(cross, vec![(0, 4), (2, 4)]);
        let j = d.linked.pairs[0].2 as f64 / 128.0;
        assert!(j > 0.7 && j < 1.0, "{j}");
    }

    #[test]
    fn empty_splits_keep_their_place() {
        let mut index = Index::new(params(0.8)).unwrap();
        index.start_split();
        index.start_split();
        index.add(&["a b c", "a b c"], None).unwrap();
        let d = index.finish(None);
        assert_eq!(d.split_starts, vec![0, 0]);
        assert_eq!(d.linked.cluster_docs, vec![0, 1]);
        assert_eq!(index.split_of(0), 1);
    }

    #[test]
    fn bad_parameters_are_refused() {
        for p in [
            Params {
                threshold: 0.0,
                ..params(0.8)
            },
            Params {
                threshold: f64::NAN,
                ..params(0.8)
            },
            Params {
                num_perm: 0,
                ..params(0.8)
            },
            Params {
                ngram: 0,
                ..params(0.8)
            },
        ] {
            assert!(Index::new(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn fingerprints_do_not_depend_on_threads() {
        let texts: Vec<String> = (0..500).map(|i| format!("doc {i} {}", i * 7)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let h = MinHasher::new(64);
        let p = Params {
            num_perm: 64,
            ..params(0.8)
        };
        assert_eq!(
            fingerprints(&refs, &p, &h, Some(1)),
            fingerprints(&refs, &p, &h, Some(2))
        );
    }
}
