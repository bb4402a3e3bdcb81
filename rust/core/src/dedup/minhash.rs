//! MinHash signatures (Broder, 1997) and the Jaccard estimate read from them.
//!
//! Permutation `i` maps a 32-bit shingle key `x` to `((a_i · x + b_i) mod 2⁶⁴) >> 32`
//! with `a_i`, `b_i` drawn from SplitMix64 under a fixed seed: Dietzfelbinger's
//! multiply-add-shift scheme (1996), strongly universal for 32-bit keys, and one
//! 64-bit multiply per key and permutation instead of the `mod (2⁶¹ − 1)` of
//! datasketch. The signature is the minimum of each permutation over a document's
//! shingles; two documents agree on one permutation with probability equal to the
//! Jaccard similarity of their shingle sets.

use super::hash::SplitMix64;

/// The seed of the permutation parameters. Changing it changes every signature.
pub const PERMUTATION_SEED: u64 = 0x6661_7374_6265_7274; // "fastbert"

/// Permutations computed together: their accumulators stay in vector registers
/// while the shingles stream past.
const LANES: usize = 16;

/// The `num_perm` permutations of one index.
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
    /// The low and high halves of each `a`: see [`MinHasher::signature_lanes`].
    a_lo: Vec<u32>,
    a_hi: Vec<u32>,
    /// `b` of the even and of the odd permutations, the layout of the AVX2 kernel.
    b_even: Vec<u64>,
    b_odd: Vec<u64>,
    /// This CPU has AVX2 (checked once, at construction).
    avx2: bool,
}

impl MinHasher {
    pub fn new(num_perm: usize) -> Self {
        let mut rng = SplitMix64::new(PERMUTATION_SEED);
        let (mut a, mut b) = (Vec::with_capacity(num_perm), Vec::with_capacity(num_perm));
        for _ in 0..num_perm {
            a.extend(rng.next());
            b.extend(rng.next());
        }
        MinHasher {
            a_lo: a.iter().map(|&v| v as u32).collect(),
            a_hi: a.iter().map(|&v| (v >> 32) as u32).collect(),
            b_even: b.iter().step_by(2).copied().collect(),
            b_odd: b.iter().skip(1).step_by(2).copied().collect(),
            a,
            b,
            avx2: has_avx2(),
        }
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// `out[i]` = the minimum of permutation `i` over `shingles` (`u32::MAX` when
    /// there are none). `out.len()` must be `num_perm`.
    pub fn signature(&self, shingles: &[u32], out: &mut [u32]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            let full = self.a.len() / LANES * LANES;
            // SAFETY: `avx2` is set only when the running CPU reports AVX2, and the
            // slices have the lengths `blocks` requires: `full` = 16 · blocks values
            // of `a_lo`, `a_hi` and `out`, half as many of `b_even` and `b_odd`.
            #[allow(unsafe_code)]
            unsafe {
                avx2::blocks(
                    &self.a_lo[..full],
                    &self.a_hi[..full],
                    &self.b_even[..full / 2],
                    &self.b_odd[..full / 2],
                    shingles,
                    &mut out[..full],
                );
            }
            self.one_by_one(full, shingles, out);
            return;
        }
        self.signature_lanes(shingles, out)
    }

    /// The portable path: [`permute`] for every permutation, LANES at a time. With
    /// `x < 2³²` and `a = a_hi·2³² + a_lo`, the top half of `a·x + b (mod 2⁶⁴)` is
    /// `top(a_lo·x + b) + a_hi·x (mod 2³²)`: one 32×32→64-bit and one 32-bit
    /// multiply, where a full 64-bit product costs three of the first kind.
    fn signature_lanes(&self, shingles: &[u32], out: &mut [u32]) {
        debug_assert_eq!(out.len(), self.a.len());
        let blocks = self
            .a_lo
            .chunks_exact(LANES)
            .zip(self.a_hi.chunks_exact(LANES))
            .zip(self.b.chunks_exact(LANES))
            .zip(out.chunks_exact_mut(LANES));
        for (((lo, hi), b), o) in blocks {
            let mut acc = [u32::MAX; LANES];
            for &x in shingles {
                for j in 0..LANES {
                    let top = (u64::from(lo[j]) * u64::from(x)).wrapping_add(b[j]) >> 32;
                    let h = (top as u32).wrapping_add(hi[j].wrapping_mul(x));
                    acc[j] = acc[j].min(h);
                }
            }
            o.copy_from_slice(&acc);
        }
        self.one_by_one(self.a.len() / LANES * LANES, shingles, out);
    }

    /// Permutations `from..` the plain way (the last, partial block).
    fn one_by_one(&self, from: usize, shingles: &[u32], out: &mut [u32]) {
        for ((&a, &b), o) in self.a[from..]
            .iter()
            .zip(&self.b[from..])
            .zip(&mut out[from..])
        {
            *o = shingles
                .iter()
                .map(|&x| permute(a, b, u64::from(x)))
                .min()
                .unwrap_or(u32::MAX);
        }
    }
}

/// The signature loop in AVX2 intrinsics: 1.6× the auto-vectorised portable loop,
/// which spends instructions packing 64-bit products into 32-bit lanes and spilling
/// registers. Eight permutations per register: `a_lo · x` of the even ones lands in
/// the 64-bit lanes (`_mm256_mul_epu32`), of the odd ones after a 32-bit shift, and
/// one blend puts the eight top halves side by side for a 32-bit add and minimum.
/// Release wheels target baseline x86-64, hence a runtime check, not a build flag.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_add_epi64, _mm256_blend_epi32, _mm256_loadu_si256,
        _mm256_min_epu32, _mm256_mul_epu32, _mm256_mullo_epi32, _mm256_set1_epi32,
        _mm256_srli_epi64, _mm256_storeu_si256,
    };

    /// `out[i]` = min over `shingles` of permutation `i`, for blocks of 16 permutations.
    ///
    /// # Safety
    /// The CPU supports AVX2; `a_lo`, `a_hi` and `out` hold `16 · k` values and
    /// `b_even`, `b_odd` `8 · k` (the even and odd permutations' `b`).
    #[target_feature(enable = "avx2")]
    pub unsafe fn blocks(
        a_lo: &[u32],
        a_hi: &[u32],
        b_even: &[u64],
        b_odd: &[u64],
        shingles: &[u32],
        out: &mut [u32],
    ) {
        let blocks = a_lo
            .chunks_exact(16)
            .zip(a_hi.chunks_exact(16))
            .zip(b_even.chunks_exact(8).zip(b_odd.chunks_exact(8)))
            .zip(out.chunks_exact_mut(16));
        for (((lo, hi), (be, bo)), o) in blocks {
            // Every load and store below reads or writes 32 bytes inside one of these
            // slices: 8 u32 from offset 0 or 8 of a 16-long slice, 4 u64 from offset 0
            // or 4 of an 8-long one.
            let lo0 = _mm256_loadu_si256(lo.as_ptr().cast::<__m256i>());
            let lo1 = _mm256_loadu_si256(lo[8..].as_ptr().cast::<__m256i>());
            let hi0 = _mm256_loadu_si256(hi.as_ptr().cast::<__m256i>());
            let hi1 = _mm256_loadu_si256(hi[8..].as_ptr().cast::<__m256i>());
            let be0 = _mm256_loadu_si256(be.as_ptr().cast::<__m256i>());
            let be1 = _mm256_loadu_si256(be[4..].as_ptr().cast::<__m256i>());
            let bo0 = _mm256_loadu_si256(bo.as_ptr().cast::<__m256i>());
            let bo1 = _mm256_loadu_si256(bo[4..].as_ptr().cast::<__m256i>());
            let (lo0_odd, lo1_odd) = (_mm256_srli_epi64(lo0, 32), _mm256_srli_epi64(lo1, 32));
            let mut acc0 = _mm256_set1_epi32(-1);
            let mut acc1 = _mm256_set1_epi32(-1);
            for &x in shingles {
                let x = _mm256_set1_epi32(x as i32);
                // top(a_lo·x + b): even permutations in the low halves, odd in the high.
                let even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epu32(lo0, x), be0), 32);
                let odd = _mm256_add_epi64(_mm256_mul_epu32(lo0_odd, x), bo0);
                let top = _mm256_blend_epi32(even, odd, 0b1010_1010);
                let h = _mm256_add_epi32(top, _mm256_mullo_epi32(hi0, x));
                acc0 = _mm256_min_epu32(acc0, h);
                let even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epu32(lo1, x), be1), 32);
                let odd = _mm256_add_epi64(_mm256_mul_epu32(lo1_odd, x), bo1);
                let top = _mm256_blend_epi32(even, odd, 0b1010_1010);
                let h = _mm256_add_epi32(top, _mm256_mullo_epi32(hi1, x));
                acc1 = _mm256_min_epu32(acc1, h);
            }
            _mm256_storeu_si256(o.as_mut_ptr().cast::<__m256i>(), acc0);
            _mm256_storeu_si256(o[8..].as_mut_ptr().cast::<__m256i>(), acc1);
        }
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline(always)]
fn permute(a: u64, b: u64, x: u64) -> u32 {
    (a.wrapping_mul(x).wrapping_add(b) >> 32) as u32
}

/// How many permutations two signatures agree on.
#[inline]
pub fn matches(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

/// The smallest number of agreeing permutations whose fraction reaches
/// `threshold`, computed once so that no float comparison decides a borderline pair.
pub fn min_matches(threshold: f64, num_perm: usize) -> usize {
    // 1e-9 absorbs the rounding of e.g. 0.7 · 10 = 7.000000000000001.
    ((threshold * num_perm as f64) - 1e-9).ceil().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(h: &MinHasher, s: &[u32]) -> Vec<u32> {
        let mut out = vec![0; h.num_perm()];
        h.signature(s, &mut out);
        out
    }

    #[test]
    fn chunked_and_remainder_lanes_agree_with_the_definition() {
        let h = MinHasher::new(LANES * 2 + 3);
        let shingles = [5u32, 17, 123_456_789, u32::MAX, 0];
        let got = sig(&h, &shingles);
        for (i, &value) in got.iter().enumerate() {
            let want = shingles
                .iter()
                .map(|&x| permute(h.a[i], h.b[i], u64::from(x)))
                .min()
                .unwrap();
            assert_eq!(value, want, "permutation {i}");
        }
        assert!(sig(&h, &[]).iter().all(|&v| v == u32::MAX));
    }

    #[test]
    fn the_avx2_kernel_and_the_portable_loop_agree() {
        let mut rng = SplitMix64::new(5);
        for num_perm in [16, 33, 128] {
            let h = MinHasher::new(num_perm);
            for len in [0, 1, 7, 66, 300] {
                let shingles: Vec<u32> = (0..len).map(|_| rng.next().unwrap_or(0) as u32).collect();
                let mut portable = vec![0; num_perm];
                h.signature_lanes(&shingles, &mut portable);
                assert_eq!(
                    sig(&h, &shingles),
                    portable,
                    "{num_perm} permutations, {len} shingles"
                );
            }
        }
    }

    #[test]
    fn order_and_repeats_do_not_matter() {
        let h = MinHasher::new(64);
        assert_eq!(sig(&h, &[1, 2, 3]), sig(&h, &[3, 3, 2, 1, 1]));
    }

    #[test]
    fn estimate_tracks_jaccard() {
        // |A ∩ B| = 600, |A ∪ B| = 1000: J = 0.6; the estimate's standard deviation
        // at 512 permutations is about 0.022.
        let h = MinHasher::new(512);
        let a: Vec<u32> = (0..800).map(|i| i * 7919).collect();
        let b: Vec<u32> = (200..1000).map(|i| i * 7919).collect();
        let est = matches(&sig(&h, &a), &sig(&h, &b)) as f64 / 512.0;
        assert!((est - 0.6).abs() < 0.08, "{est}");
    }

    #[test]
    fn min_matches_rounds_up_exactly() {
        assert_eq!(min_matches(0.8, 128), 103); // 102.4
        assert_eq!(min_matches(0.75, 128), 96);
        assert_eq!(min_matches(0.7, 10), 7);
        assert_eq!(min_matches(1.0, 128), 128);
    }
}
