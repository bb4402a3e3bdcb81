//! The fixed 64-bit hash primitives every dedup fingerprint is built from.
//!
//! Fingerprints must be the same in every process, on every machine and in every
//! release, because a report names documents by them and the pure-Python reference
//! (`fastbert/_minhash_reference.py`) recomputes them: so no `RandomState`, no
//! per-process seed, and nothing that depends on the platform's word size.

/// MurmurHash3's 64-bit finaliser (Appleby): a bijection in which every input bit
/// flips each output bit with probability close to 1/2.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The 64-bit golden ratio: the odd multiplier of [`fold`] and the SplitMix64 step.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Hash a short sequence (code points, word hashes, signature values): a polynomial
/// in [`GOLDEN`] started at `seed`, then [`fmix64`]. Order matters, so a sequence
/// and its reordering hash apart; the single final mix keeps a 5-character shingle
/// at five multiply-adds and one finaliser.
#[inline]
pub fn fold(seed: u64, items: impl IntoIterator<Item = u64>) -> u64 {
    fmix64(
        items
            .into_iter()
            .fold(seed, |h, x| h.wrapping_mul(GOLDEN).wrapping_add(x)),
    )
}

/// [`fold`] of every run of `width` consecutive `items` (`1 <= width <= items.len()`),
/// in order. Each window's polynomial is the previous one's minus its first term, times
/// [`GOLDEN`], plus the new item: two multiplies per window instead of `width`, and the
/// same value as folding each window afresh.
pub fn fold_windows(seed: u64, items: &[u64], width: usize, mut emit: impl FnMut(u64)) {
    if width == 0 || width > items.len() {
        return;
    }
    let power = |e: usize| (0..e).fold(1u64, |p, _| p.wrapping_mul(GOLDEN));
    let (lead, start) = (power(width - 1), seed.wrapping_mul(power(width)));
    let mut sum = items[..width]
        .iter()
        .fold(0u64, |h, &x| h.wrapping_mul(GOLDEN).wrapping_add(x));
    emit(fmix64(start.wrapping_add(sum)));
    for k in width..items.len() {
        sum = sum
            .wrapping_sub(items[k - width].wrapping_mul(lead))
            .wrapping_mul(GOLDEN)
            .wrapping_add(items[k]);
        emit(fmix64(start.wrapping_add(sum)));
    }
}

/// FNV-1a's starting value and prime (Fowler, Noll & Vo).
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One FNV-1a step, for hashing bytes as they are produced.
#[inline]
pub fn fnv_step(h: u64, byte: u8) -> u64 {
    (h ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a over `bytes`, then [`fmix64`]: FNV alone mixes the last bytes poorly.
#[inline]
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    fmix64(bytes.iter().fold(FNV_OFFSET, |h, &b| fnv_step(h, b)))
}

/// SplitMix64 (Steele, Lea & Flood, 2014): a seeded stream of well-mixed words, used
/// to draw the MinHash permutation parameters.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
}

impl Iterator for SplitMix64 {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Some(z ^ (z >> 31))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_published_sequence() {
        // The first outputs for seed 0 in the reference C implementation.
        let got: Vec<u64> = SplitMix64::new(0).take(3).collect();
        assert_eq!(
            got,
            [
                0xe220_a839_7b1d_cdaf,
                0x6e78_9e6a_a1b9_65f4,
                0x06c4_5d18_8009_454f
            ]
        );
    }

    #[test]
    fn sliding_windows_fold_like_fresh_ones() {
        let items: Vec<u64> = SplitMix64::new(3).take(40).collect();
        for width in 1..=7 {
            let mut got = Vec::new();
            fold_windows(99, &items, width, |h| got.push(h));
            let want: Vec<u64> = items
                .windows(width)
                .map(|w| fold(99, w.iter().copied()))
                .collect();
            assert_eq!(got, want, "width {width}");
        }
        let mut none = Vec::new();
        fold_windows(1, &items[..3], 4, |h| none.push(h));
        assert!(none.is_empty());
    }

    #[test]
    fn fnv_of_nothing_is_the_offset_basis_mixed() {
        assert_eq!(bytes_hash(b""), fmix64(FNV_OFFSET));
        assert_ne!(bytes_hash(b"a"), bytes_hash(b"b"));
    }

    #[test]
    fn fold_is_order_and_seed_dependent() {
        assert_ne!(fold(1, [2, 3]), fold(1, [3, 2]));
        assert_ne!(fold(1, [2, 3]), fold(2, [2, 3]));
        assert_eq!(fold(7, []), fmix64(7));
    }
}
