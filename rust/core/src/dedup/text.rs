//! Text → normalised words → the exact-duplicate hash and the shingle hashes.
//!
//! Normalisation, the one definition shared by exact and near duplicates: every
//! character is lowercased (full Unicode mapping, character by character; final
//! sigma ς becomes σ), then words are the maximal runs of letters, marks and numbers
//! (general categories L*, M*, N*); everything else (spaces, punctuation, symbols,
//! emoji, controls) only separates words. The normalised text is the words joined by
//! single spaces. So `"Hello,  World!"` and `"hello world"` are exact duplicates,
//! while `"café"` and `"cafe"` are not (no accent folding, and no NFKC: a
//! full-width `Ａ` stays apart from `A`).
//!
//! Categories come from the `unicode_categories` tables the BERT normaliser uses,
//! and the pure-Python reference reads the same categories from `unicodedata`; the
//! two agree on every character both Unicode versions assign.

use unicode_categories::UnicodeCategories;

use super::hash::{fmix64, fnv_step, fold, fold_windows, FNV_OFFSET};

/// What a shingle is made of: `n` consecutive words, or `n` consecutive characters
/// of the normalised text (spaces between words included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Word,
    Char,
}

impl Unit {
    pub fn parse(name: &str) -> Option<Unit> {
        match name {
            "word" => Some(Unit::Word),
            "char" => Some(Unit::Char),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Word => "word",
            Unit::Char => "char",
        }
    }
}

/// Seeds of the three hashes, so that an exact hash never equals a shingle hash
/// of the same words by construction.
const EXACT_SEED: u64 = 0x6578_6163_745f_7631; // "exact_v1"
const WORD_SEED: u64 = 0x776f_7264_5f76_3100; // "word_v1"
const CHAR_SEED: u64 = 0x6368_6172_5f76_3100; // "char_v1"

/// Whether `c` (already lowercased) is part of a word: general category L, M or N.
#[inline]
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        c.is_letter() || c.is_mark() || c.is_number()
    }
}

/// The normalised text of one document, rebuilt in place for each document so
/// that a worker thread allocates only when a document is longer than any before.
#[derive(Default)]
pub struct Normalized {
    /// The code points of the words joined by single spaces (what character
    /// shingles are cut from), widened to the shingle hash's input.
    chars: Vec<u64>,
    /// [`bytes_hash`] of each word's UTF-8, computed as the word is written.
    word_hashes: Vec<u64>,
}

/// The word being written: FNV-1a state, or `None` between words.
struct Cursor(Option<u64>);

impl Cursor {
    /// Append `c` (lowercased) to the current word, starting one if needed.
    #[inline(always)]
    fn extend(&mut self, c: char, norm: &mut Normalized) {
        let mut h = match self.0 {
            Some(h) => h,
            None => {
                if !norm.chars.is_empty() {
                    norm.chars.push(u64::from(b' '));
                }
                FNV_OFFSET
            }
        };
        if c.is_ascii() {
            h = fnv_step(h, c as u8);
        } else {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                h = fnv_step(h, b);
            }
        }
        norm.chars.push(u64::from(c as u32));
        self.0 = Some(h);
    }

    /// A separator: close the current word, if any.
    #[inline(always)]
    fn end(&mut self, norm: &mut Normalized) {
        if let Some(h) = self.0.take() {
            norm.word_hashes.push(fmix64(h));
        }
    }
}

impl Normalized {
    /// Normalise `raw` into `self`, replacing what was there.
    pub fn fill(&mut self, raw: &str) {
        self.chars.clear();
        self.word_hashes.clear();
        let mut cursor = Cursor(None);
        let bytes = raw.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            // ASCII, most of most text: one byte is one character, lowercased in place.
            if b.is_ascii_alphanumeric() {
                cursor.extend(char::from(b.to_ascii_lowercase()), self);
                i += 1;
                continue;
            }
            if b.is_ascii() {
                cursor.end(self);
                i += 1;
                continue;
            }
            let Some(c) = raw[i..].chars().next() else {
                break;
            };
            i += c.len_utf8();
            for l in c.to_lowercase() {
                // Final sigma is a position-dependent form of σ; fold it, so that
                // ΟΔΟΣ and οδος normalise alike (str.lower writes ς at a word's end).
                let l = if l == 'ς' { 'σ' } else { l };
                if is_word_char(l) {
                    cursor.extend(l, self);
                } else {
                    cursor.end(self);
                }
            }
        }
        cursor.end(self);
    }

    /// The normalised text: words joined by single spaces.
    pub fn text(&self) -> String {
        self.chars
            .iter()
            .filter_map(|&c| char::from_u32(c as u32))
            .collect()
    }

    /// True when the document has no word at all (empty, or only punctuation,
    /// spaces, emoji, ...): it is then neither an exact nor a near duplicate.
    pub fn is_empty(&self) -> bool {
        self.word_hashes.is_empty()
    }

    /// The exact-duplicate hash: the sequence of word hashes, folded.
    pub fn exact_hash(&self) -> u64 {
        fold(EXACT_SEED, self.word_hashes.iter().copied())
    }

    /// The 32-bit hash of every shingle, in order, duplicates included (MinHash
    /// takes the minimum over them, so a repeat changes nothing). A document with
    /// fewer than `n` units has one shingle: all of them.
    pub fn shingles(&self, unit: Unit, n: usize, out: &mut Vec<u32>) {
        out.clear();
        if self.word_hashes.is_empty() {
            return;
        }
        let (seed, units) = match unit {
            Unit::Word => (WORD_SEED, &self.word_hashes),
            Unit::Char => (CHAR_SEED, &self.chars),
        };
        let width = n.min(units.len()).max(1);
        fold_windows(seed, units, width, |h| out.push(to_u32(h)));
    }
}

/// The high half of a 64-bit hash: the 32-bit key the MinHash permutations take.
#[inline]
pub fn to_u32(h: u64) -> u32 {
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> Normalized {
        let mut n = Normalized::default();
        n.fill(text);
        n
    }

    #[test]
    fn punctuation_case_and_spacing_vanish() {
        assert_eq!(norm("  Hello,  WORLD!! :-)").text(), "hello world");
        assert_eq!(
            norm("Hello, world").exact_hash(),
            norm("hello world").exact_hash()
        );
        assert_ne!(
            norm("hello world").exact_hash(),
            norm("world hello").exact_hash()
        );
    }

    #[test]
    fn non_ascii_letters_marks_and_numbers_are_word_characters() {
        assert_eq!(norm("ÉCOLE №5 — ½ 東京🙂x").text(), "école 5 ½ 東京 x");
        // Dotted capital I lowercases to i + U+0307 (a mark), which stays in the word.
        assert_eq!(norm("İz").text(), "i\u{307}z");
        assert_eq!(norm("cafe\u{301}!").text(), "cafe\u{301}");
        assert_eq!(norm("ΟΔΟΣ").text(), norm("οδος").text());
    }

    #[test]
    fn nothing_but_separators_is_empty() {
        for t in ["", "   ", "!!! ...", "🙂🙂", "\u{0}\u{7}"] {
            let n = norm(t);
            assert!(n.is_empty(), "{t:?}");
            let mut out = vec![1];
            n.shingles(Unit::Char, 5, &mut out);
            assert!(out.is_empty());
        }
    }

    #[test]
    fn word_hashes_are_hashes_of_the_words() {
        let n = norm("Ünïcode, words!");
        let want: Vec<u64> = n
            .text()
            .split(' ')
            .map(|w| super::super::hash::bytes_hash(w.as_bytes()))
            .collect();
        assert_eq!(n.word_hashes, want);
    }

    #[test]
    fn shingle_counts() {
        let mut out = Vec::new();
        let n = norm("a b c d e f g");
        n.shingles(Unit::Word, 5, &mut out);
        assert_eq!(out.len(), 3);
        n.shingles(Unit::Char, 5, &mut out);
        assert_eq!(out.len(), "a b c d e f g".len() - 4);
        // Shorter than n: the whole text is one shingle.
        let short = norm("ab c");
        short.shingles(Unit::Word, 5, &mut out);
        assert_eq!(out.len(), 1);
        short.shingles(Unit::Char, 5, &mut out);
        assert_eq!(out.len(), 1);
    }
}
