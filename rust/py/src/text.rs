//! Python strings to Rust strings, without crashing on lone surrogates.

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// Borrow the UTF-8 of `s`; if it holds lone surrogates (which UTF-8 cannot
/// encode), copy it with each surrogate replaced by U+FFFD. One code point
/// becomes one code point, so character offsets still index the Python string,
/// and BERT's clean-text step drops U+FFFD like any unusable character.
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    match s.to_str() {
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(_) => {
            let raw = s.call_method1("encode", ("utf-8", "surrogatepass"))?;
            let bytes = raw.cast::<PyBytes>()?.as_bytes();
            Ok(Cow::Owned(replace_surrogates(bytes)))
        }
    }
}

/// Decode UTF-8 that may contain encoded surrogates (`ED A0..BF xx`), mapping each to U+FFFD.
fn replace_surrogates(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(tail) => {
                out.push_str(tail);
                return out;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // Safe by construction: `from_utf8` vouched for this prefix.
                out.push_str(std::str::from_utf8(&rest[..good]).unwrap_or_default());
                out.push('\u{fffd}');
                // A surrogate is always 3 bytes; anything else invalid is skipped per its length.
                let skip =
                    e.error_len().map_or(
                        rest.len() - good,
                        |n| if rest[good] == 0xED { 3 } else { n },
                    );
                rest = &rest[(good + skip).min(rest.len())..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn surrogates_become_one_replacement_char() {
        // "a" + U+D800 (as surrogatepass encodes it) + "b"
        assert_eq!(super::replace_surrogates(b"a\xed\xa0\x80b"), "a\u{fffd}b");
    }
}
