//! The signatures of the distinct texts of an index: 16 bits per value, in pages.
//!
//! Keeping the low 16 bits of each MinHash value is b-bit minwise hashing (Li & König,
//! 2010) with b = 16: two different values agree by chance with probability 2⁻¹⁶, so
//! the agreement rate of two signatures, which estimates the Jaccard similarity `J`,
//! rises by `(1 − J) · 2⁻¹⁶` (below 2·10⁻⁵, far under the estimate's own spread of
//! `√(J(1 − J)/num_perm)`), for half the memory: `2 · num_perm` bytes per text. Band
//! keys are computed from the full 32-bit values before they are cut.
//!
//! Pages of fixed size are filled one after the other, so a growing index never copies
//! what it holds (a single vector would, each time it doubled) and touches each page
//! of memory once.

/// Signatures per page: 2 MiB pages at 128 permutations.
const PER_PAGE: usize = 8192;

pub struct Signatures {
    num_perm: usize,
    pages: Vec<Vec<u16>>,
    len: usize,
}

impl Signatures {
    pub fn new(num_perm: usize) -> Self {
        Signatures {
            num_perm,
            pages: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Store the low 16 bits of each value of `signature`; returns its index.
    pub fn push(&mut self, signature: &[u32]) -> u32 {
        debug_assert_eq!(signature.len(), self.num_perm);
        if self.len % PER_PAGE == 0 {
            self.pages
                .push(Vec::with_capacity(PER_PAGE * self.num_perm));
        }
        if let Some(page) = self.pages.last_mut() {
            page.extend(signature.iter().map(|&v| v as u16));
        }
        self.len += 1;
        (self.len - 1) as u32
    }

    pub fn get(&self, i: u32) -> &[u16] {
        let (page, slot) = (i as usize / PER_PAGE, i as usize % PER_PAGE);
        &self.pages[page][slot * self.num_perm..(slot + 1) * self.num_perm]
    }

    /// Whether stored signature `i` is `signature` cut to 16 bits.
    pub fn equals(&self, i: u32, signature: &[u32]) -> bool {
        self.get(i)
            .iter()
            .zip(signature)
            .all(|(&a, &b)| a == b as u16)
    }

    /// How many values signatures `i` and `j` agree on.
    pub fn matches(&self, i: u32, j: u32) -> usize {
        self.get(i)
            .iter()
            .zip(self.get(j))
            .filter(|(a, b)| a == b)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_fill_in_order_and_values_keep_their_low_bits() {
        let mut s = Signatures::new(3);
        for i in 0..(PER_PAGE as u32 + 5) {
            assert_eq!(s.push(&[i, 0x1_0000 + i, 7]), i);
        }
        assert_eq!(s.len(), PER_PAGE + 5);
        let last = PER_PAGE as u32 + 4;
        assert_eq!(s.get(last), &[last as u16, last as u16, 7]);
        assert!(s.equals(last, &[last, 0x5_0000 + last, 7]));
        assert!(!s.equals(last, &[last, last, 8]));
        assert_eq!(s.matches(0, 1), 1);
    }
}
