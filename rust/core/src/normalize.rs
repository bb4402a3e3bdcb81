//! `BertNormalizer` + `BertPreTokenizer`, character for character, with each
//! normalized character remembering the byte range of the original character it
//! came from.
//!
//! Hugging Face keeps one alignment per normalized *byte* and maps a token's
//! normalized range back to the original text by taking the smallest start and
//! the largest end over that range. Every BERT normalization step maps one
//! original character to zero or more normalized characters, so one alignment
//! per normalized *char* carries the same information.
//!
//! Text is cut at ASCII space, tab, newline and carriage return into segments
//! (each of these characters is whitespace in every mode, and Unicode
//! normalization never reorders across one). A segment that is printable ASCII
//! takes [`ascii_words`]; any other takes [`exact_words`], which runs the full
//! Unicode pipeline.

use unicode_categories::UnicodeCategories;
use unicode_normalization_alignments::UnicodeNormalization;

use crate::spec::NormalizerFlags;

/// Whitespace as `BertNormalizer::clean_text` sees it.
#[inline]
pub fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control characters (general category C*) except tab, newline and carriage
/// return, which BERT counts as whitespace.
#[inline]
pub fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// The CJK Unified Ideograph blocks that BERT surrounds with spaces. The ranges
/// are those of Hugging Face `tokenizers` (`normalizers/bert.rs`).
#[inline]
pub fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// Punctuation as `BertPreTokenizer` splits it: ASCII punctuation (which
/// includes symbols such as `$`, `+`, `^`) and Unicode category P*.
#[inline]
pub fn is_bert_punc(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// A segment that the ASCII fast path handles exactly: printable ASCII only.
#[inline]
pub fn is_plain_ascii(seg: &[u8]) -> bool {
    seg.iter().all(|&b| (0x20..0x7f).contains(&b))
}

/// Split a printable-ASCII segment into BERT words. Calls `emit(start, end)` with
/// byte ranges relative to the segment. Lowercasing, if any, is the caller's job
/// (ASCII lowercasing never changes lengths, and NFD and accent stripping leave
/// ASCII alone).
#[inline]
pub fn ascii_words(seg: &[u8], mut emit: impl FnMut(usize, usize)) {
    let mut start = 0;
    for (i, &b) in seg.iter().enumerate() {
        if b.is_ascii_punctuation() {
            if start < i {
                emit(start, i);
            }
            emit(i, i + 1);
            start = i + 1;
        } else if b == b' ' {
            if start < i {
                emit(start, i);
            }
            start = i + 1;
        }
    }
    if start < seg.len() {
        emit(start, seg.len());
    }
}

/// A normalized character and the original byte range it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aligned {
    pub c: char,
    pub start: u32,
    pub end: u32,
}

/// Normalize `seg` (whose first byte is at `base` in the original text) with the
/// full `BertNormalizer` pipeline. `flags == None` means "no normalizer".
pub fn normalize(seg: &str, base: u32, flags: Option<&NormalizerFlags>, out: &mut Vec<Aligned>) {
    out.clear();
    let Some(f) = flags else {
        out.extend(seg.char_indices().map(|(i, c)| Aligned {
            c,
            start: base + i as u32,
            end: base + (i + c.len_utf8()) as u32,
        }));
        return;
    };
    for (i, c) in seg.char_indices() {
        let a = Aligned {
            c,
            start: base + i as u32,
            end: base + (i + c.len_utf8()) as u32,
        };
        if f.clean_text {
            if c == '\0' || c == '\u{fffd}' || is_control(c) {
                continue;
            }
            if is_whitespace(c) {
                out.push(Aligned { c: ' ', ..a });
                continue;
            }
        }
        if f.handle_chinese_chars && is_chinese_char(c) {
            out.extend([Aligned { c: ' ', ..a }, a, Aligned { c: ' ', ..a }]);
        } else {
            out.push(a);
        }
    }
    if f.strip_accents {
        strip_accents(out);
    }
    if f.lowercase
        && out
            .iter()
            .any(|a| !a.c.is_ascii() || a.c.is_ascii_uppercase())
    {
        let mut lowered = Vec::with_capacity(out.len());
        for a in out.iter() {
            lowered.extend(a.c.to_lowercase().map(|c| Aligned { c, ..*a }));
        }
        *out = lowered;
    }
}

/// NFD, then drop non-spacing marks (Mn). The NFD iterator reports, for each
/// output char, whether it replaces the next input char (`0`), is inserted after
/// the previous one (`1`) or replaces one and swallows `-n` more; alignments follow
/// that report exactly as `NormalizedString::transform` does.
fn strip_accents(chars: &mut Vec<Aligned>) {
    if chars.iter().all(|a| a.c.is_ascii()) {
        return;
    }
    let text: String = chars.iter().map(|a| a.c).collect();
    let mut out = Vec::with_capacity(chars.len() + 4);
    let mut next = 0usize;
    for (c, change) in text.nfd() {
        let a = if change > 0 {
            // An inserted char shares the alignment of the char before it.
            chars[next.saturating_sub(1)]
        } else {
            let a = chars[next];
            next += 1 + (-change) as usize;
            a
        };
        if !c.is_mark_nonspacing() {
            out.push(Aligned { c, ..a });
        }
    }
    *chars = out;
}

/// `BertPreTokenizer` on normalized chars: whitespace separates words and is
/// dropped, each punctuation char is a word of its own. Calls `emit(start, end)`
/// with index ranges into `chars`.
pub fn split_words(chars: &[Aligned], mut emit: impl FnMut(usize, usize)) {
    let mut start = 0;
    for (i, a) in chars.iter().enumerate() {
        if a.c.is_whitespace() {
            if start < i {
                emit(start, i);
            }
            start = i + 1;
        } else if is_bert_punc(a.c) {
            if start < i {
                emit(start, i);
            }
            emit(i, i + 1);
            start = i + 1;
        }
    }
    if start < chars.len() {
        emit(start, chars.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        let mut out = Vec::new();
        normalize(s, 0, Some(&NormalizerFlags::uncased()), &mut out);
        out.iter().map(|a| a.c).collect()
    }

    #[test]
    fn uncased_normalization() {
        assert_eq!(norm("Héllo"), "hello");
        assert_eq!(norm("a\u{0}b\u{7}c"), "abc");
        assert_eq!(norm("中文"), " 中  文 ");
        assert_eq!(norm("x\u{a0}y"), "x y");
    }

    #[test]
    fn alignments_point_at_source_chars() {
        let mut out = Vec::new();
        normalize("Éa", 10, Some(&NormalizerFlags::uncased()), &mut out);
        assert_eq!(
            out,
            vec![
                Aligned {
                    c: 'e',
                    start: 10,
                    end: 12
                },
                Aligned {
                    c: 'a',
                    start: 12,
                    end: 13
                }
            ]
        );
    }

    #[test]
    fn ascii_words_split_punctuation() {
        let mut words = Vec::new();
        ascii_words(b"don't stop-now", |s, e| words.push((s, e)));
        assert_eq!(
            words,
            vec![(0, 3), (3, 4), (4, 5), (6, 10), (10, 11), (11, 14)]
        );
    }
}
