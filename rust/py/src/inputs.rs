//! Python inputs (a list of str, or a list of word lists) as Rust `Input`s.
//!
//! Words of pre-split inputs are kept in one flat list with row bounds, so a
//! batch costs a handful of allocations, not one per row.

use std::borrow::Cow;

use fastbert_core::Input;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::text::utf8;

/// Python references kept alive for the duration of a call (while the GIL is released).
pub struct Held<'py> {
    what: &'static str,
    items: Vec<Bound<'py, PyAny>>,
    /// Pre-split input only: every word of every row, and where each row starts.
    words: Vec<Bound<'py, PyAny>>,
    bounds: Option<Vec<usize>>,
}

/// UTF-8 of every input (borrowed from Python where possible).
pub struct Texts<'a> {
    strs: Vec<Cow<'a, str>>,
    bounds: Option<&'a [usize]>,
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Collect `seq` (a sequence of str, or of word sequences when `split`).
pub fn hold<'py>(seq: &Bound<'py, PyAny>, split: bool, what: &'static str) -> PyResult<Held<'py>> {
    if seq.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list of inputs, not a single str"
        )));
    }
    let items: Vec<Bound<'py, PyAny>> = seq.try_iter()?.collect::<PyResult<_>>()?;
    let mut words = Vec::new();
    let mut bounds = None;
    if split {
        let mut b = Vec::with_capacity(items.len() + 1);
        b.push(0);
        for (i, row) in items.iter().enumerate() {
            if row.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(format!(
                    "{what}[{i}] must be a list of words when is_split_into_words=True, not a str"
                )));
            }
            for w in row.try_iter()? {
                words.push(w?);
            }
            b.push(words.len());
        }
        bounds = Some(b);
    }
    Ok(Held {
        what,
        items,
        words,
        bounds,
    })
}

impl<'py> Held<'py> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Borrow the UTF-8 of every str; a non-str names its position in the error.
    pub fn texts(&self) -> PyResult<Texts<'_>> {
        let what = self.what;
        let strs = match &self.bounds {
            None => self
                .items
                .iter()
                .enumerate()
                .map(|(i, obj)| as_str(obj, || format!("{what}[{i}]")))
                .collect::<PyResult<_>>()?,
            Some(bounds) => {
                let mut row = 0;
                self.words
                    .iter()
                    .enumerate()
                    .map(|(k, obj)| {
                        while bounds[row + 1] <= k {
                            row += 1;
                        }
                        as_str(obj, || format!("{what}[{row}][{}]", k - bounds[row]))
                    })
                    .collect::<PyResult<_>>()?
            }
        };
        Ok(Texts {
            strs,
            bounds: self.bounds.as_deref(),
        })
    }
}

/// `where_` names the element for the error message; it is only formatted on error.
fn as_str<'a>(
    obj: &'a Bound<'_, PyAny>,
    where_: impl FnOnce() -> String,
) -> PyResult<Cow<'a, str>> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{} must be a str, not {}",
            where_(),
            type_name(obj)
        ))
    })?;
    utf8(s)
}

impl<'a> Texts<'a> {
    /// Plain `&str`s, in order (all words, flat, for pre-split input).
    pub fn refs(&self) -> Vec<&str> {
        self.strs.iter().map(|s| s.as_ref()).collect()
    }

    /// One `Input` per row, borrowing from `refs` (made by [`Texts::refs`]).
    pub fn inputs<'r>(&self, refs: &'r [&'r str]) -> Vec<Input<'r>> {
        match self.bounds {
            None => refs.iter().map(|t| Input::Text(t)).collect(),
            Some(b) => b
                .windows(2)
                .map(|w| Input::Words(&refs[w[0]..w[1]]))
                .collect(),
        }
    }
}

/// The rows of `held` (and of `pairs`, row for row) as core `Input`s, handed to
/// `f`: they borrow the UTF-8 of Python's strings, so they live only for the call.
pub fn with_inputs<T>(
    held: &Held<'_>,
    pairs: Option<&Held<'_>>,
    f: impl FnOnce(&[Input<'_>], Option<&[Input<'_>]>) -> PyResult<T>,
) -> PyResult<T> {
    let texts = held.texts()?;
    let pair_texts = pairs.map(|h| h.texts()).transpose()?;
    let refs = texts.refs();
    let pair_refs = pair_texts.as_ref().map(|t| t.refs());
    let ins = texts.inputs(&refs);
    let pair_ins = pair_texts
        .as_ref()
        .zip(pair_refs.as_ref())
        .map(|(t, r)| t.inputs(r));
    f(&ins, pair_ins.as_deref())
}
