//! Arguments and results that more than one binding shares: the `*_side` and
//! `padding` strings as core values, and a padded batch as numpy arrays.
//! `WordPieceTokenizer.batch_arrays` and `chunk_batch` both use all three, so
//! their error messages and dicts cannot drift apart.

use fastbert_core::batch::{PaddedBatch, Padding};
use fastbert_core::Direction;
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `truncation_side` / `padding_side` (named by `field` in the error) as a `Direction`.
pub fn side(name: &str, field: &str) -> PyResult<Direction> {
    match name {
        "right" => Ok(Direction::Right),
        "left" => Ok(Direction::Left),
        other => Err(PyValueError::new_err(format!(
            "{field} must be 'right' or 'left', not {other:?}"
        ))),
    }
}

/// `padding` as a `Padding`: "longest", or "max_length" (to `max_length`, which
/// it needs). "do_not_pad" only where `do_not_pad` allows it: `chunk_batch`
/// refuses it, as its windows differ in length, and says so in the error.
pub fn padding(name: &str, max_length: Option<usize>, do_not_pad: bool) -> PyResult<Padding> {
    match name {
        "longest" => Ok(Padding::Longest),
        "max_length" => max_length
            .map(Padding::MaxLength)
            .ok_or_else(|| PyValueError::new_err("padding='max_length' needs max_length")),
        "do_not_pad" if do_not_pad => Ok(Padding::None),
        other if do_not_pad => Err(PyValueError::new_err(format!(
            "padding must be 'longest', 'max_length' or 'do_not_pad', not {other:?}"
        ))),
        other => Err(PyValueError::new_err(format!(
            "padding must be 'longest' or 'max_length' (windows differ in length), not {other:?}"
        ))),
    }
}

/// A padded batch as a dict of int64 numpy arrays named as in `transformers`:
/// `(rows, cols)`, but `offset_mapping` `(rows, cols, 2)` and
/// `overflow_to_sample_mapping` `(rows,)`; the optional ones only if built.
pub fn padded_arrays<'py>(py: Python<'py>, out: PaddedBatch) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let shape2 = [out.rows, out.cols];
    dict.set_item("input_ids", out.input_ids.into_pyarray(py).reshape(shape2)?)?;
    dict.set_item(
        "token_type_ids",
        out.token_type_ids.into_pyarray(py).reshape(shape2)?,
    )?;
    dict.set_item(
        "attention_mask",
        out.attention_mask.into_pyarray(py).reshape(shape2)?,
    )?;
    if let Some(v) = out.special_tokens_mask {
        dict.set_item("special_tokens_mask", v.into_pyarray(py).reshape(shape2)?)?;
    }
    if let Some(v) = out.offset_mapping {
        dict.set_item(
            "offset_mapping",
            v.into_pyarray(py).reshape([out.rows, out.cols, 2])?,
        )?;
    }
    if let Some(v) = out.word_ids {
        dict.set_item("word_ids", v.into_pyarray(py).reshape(shape2)?)?;
    }
    if let Some(v) = out.sequence_ids {
        dict.set_item("sequence_ids", v.into_pyarray(py).reshape(shape2)?)?;
    }
    if let Some(v) = out.overflow_to_sample_mapping {
        dict.set_item("overflow_to_sample_mapping", v.into_pyarray(py))?;
    }
    Ok(dict)
}
