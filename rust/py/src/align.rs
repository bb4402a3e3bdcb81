//! Bindings of `fastbert_core::align` and `fastbert_core::chunk`: extract numpy
//! arrays (C-contiguous, int64 / float32: the Python wrappers in
//! `fastbert/align.py` and `fastbert/chunk.py` make them so), release the GIL,
//! call the core, return numpy arrays. No alignment logic lives here.

use fastbert_core::align::{self, Aggregation, LabelStrategy, Predictions, Ragged, Tag};
use fastbert_core::batch::{self, Extras};
use fastbert_core::chunk::{self, Layout};
use numpy::{
    Element, IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::errors::without_gil;
use crate::tokenizer::PyTokenizer;

/// The memory of a C-contiguous array, or a ValueError naming the argument.
fn flat<'a, T: Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
    name: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous array")))
}

fn opt_flat<'a, T: Element, D: numpy::ndarray::Dimension>(
    a: &'a Option<numpy::PyReadonlyArray<'_, T, D>>,
    name: &str,
) -> PyResult<Option<&'a [T]>> {
    a.as_ref().map(|a| flat(a, name)).transpose()
}

/// Word labels → token labels; see `fastbert_core::align::word_to_token_labels`.
/// `labels[label_offsets[i]..label_offsets[i + 1]]` are sample i's word labels.
#[pyfunction]
#[pyo3(signature = (word_ids, labels, label_offsets, row_to_sample, strategy, b_to_i, ignore_index))]
#[allow(clippy::too_many_arguments)]
pub fn word_labels_to_token_labels<'py>(
    py: Python<'py>,
    word_ids: PyReadonlyArray2<'py, i64>,
    labels: PyReadonlyArray1<'py, i64>,
    label_offsets: PyReadonlyArray1<'py, i64>,
    row_to_sample: Option<PyReadonlyArray1<'py, i64>>,
    strategy: &str,
    b_to_i: Vec<(i64, i64)>,
    ignore_index: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = [word_ids.shape()[0], word_ids.shape()[1]];
    let w = flat(&word_ids, "word_ids")?;
    let l = flat(&labels, "labels")?;
    let o = flat(&label_offsets, "label_offsets")?;
    let m = opt_flat(&row_to_sample, "row_to_sample")?;
    let out = without_gil(py, || {
        let strategy = LabelStrategy::parse(strategy)?;
        let labels = Ragged::new(l, o, 1, "word_labels")?;
        align::word_to_token_labels(w, shape[1], labels, m, strategy, &b_to_i, ignore_index)
    })?;
    Ok(out.into_pyarray(py).reshape(shape)?.into_any())
}

/// Character spans → BIO token labels; see `fastbert_core::align::spans_to_bio`.
#[pyfunction]
#[pyo3(signature = (offsets, spans, span_offsets, num_types, word_ids, row_to_sample, ignore_index))]
#[allow(clippy::too_many_arguments)]
pub fn spans_to_bio<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray3<'py, i64>,
    spans: PyReadonlyArray2<'py, i64>,
    span_offsets: PyReadonlyArray1<'py, i64>,
    num_types: usize,
    word_ids: Option<PyReadonlyArray2<'py, i64>>,
    row_to_sample: Option<PyReadonlyArray1<'py, i64>>,
    ignore_index: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = [offsets.shape()[0], offsets.shape()[1]];
    let o = flat(&offsets, "offsets")?;
    let s = flat(&spans, "spans")?;
    let so = flat(&span_offsets, "span_offsets")?;
    let w = opt_flat(&word_ids, "word_ids")?;
    let m = opt_flat(&row_to_sample, "row_to_sample")?;
    let out = without_gil(py, || {
        let spans = Ragged::new(s, so, 3, "spans")?;
        align::spans_to_bio(o, shape[1], w, spans, num_types, m, ignore_index)
    })?;
    Ok(out.into_pyarray(py).reshape(shape)?.into_any())
}

fn predictions<'a>(
    logits: &'a Option<PyReadonlyArray3<'_, f32>>,
    ids: &'a Option<PyReadonlyArray2<'_, i64>>,
) -> PyResult<Predictions<'a>> {
    match (logits, ids) {
        (Some(l), None) => Ok(Predictions::Logits {
            values: flat(l, "logits")?,
            classes: l.shape()[2],
        }),
        (None, Some(i)) => Ok(Predictions::Ids(flat(i, "label ids")?)),
        _ => Err(PyTypeError::new_err("give exactly one of logits and ids")),
    }
}

/// Token predictions → `(labels, scores)`, both `(rows, words)`; see
/// `fastbert_core::align::word_predictions`.
#[pyfunction]
#[pyo3(signature = (word_ids, logits, ids, aggregation))]
pub fn word_predictions<'py>(
    py: Python<'py>,
    word_ids: PyReadonlyArray2<'py, i64>,
    logits: Option<PyReadonlyArray3<'py, f32>>,
    ids: Option<PyReadonlyArray2<'py, i64>>,
    aggregation: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let rows = word_ids.shape()[0];
    let cols = word_ids.shape()[1];
    let w = flat(&word_ids, "word_ids")?;
    let preds = predictions(&logits, &ids)?;
    let out = without_gil(py, || {
        align::word_predictions(w, cols, preds, Aggregation::parse(aggregation)?)
    })?;
    let shape = [rows, out.words];
    Ok((
        out.labels.into_pyarray(py).reshape(shape)?.into_any(),
        out.scores.into_pyarray(py).reshape(shape)?.into_any(),
    ))
}

/// Token predictions → entities, as a dict of 1-D arrays (`row`, `type`, `start`,
/// `end`, `word_start`, `word_end`, `score`). `tags[label]` is `(kind, type)` with
/// kind 0 = outside, 1 = begin, 2 = inside.
#[pyfunction]
#[pyo3(signature = (offsets, word_ids, logits, ids, tags, aggregation))]
pub fn token_entities<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray3<'py, i64>,
    word_ids: PyReadonlyArray2<'py, i64>,
    logits: Option<PyReadonlyArray3<'py, f32>>,
    ids: Option<PyReadonlyArray2<'py, i64>>,
    tags: Vec<(u8, u32)>,
    aggregation: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let cols = word_ids.shape()[1];
    let o = flat(&offsets, "offsets")?;
    let w = flat(&word_ids, "word_ids")?;
    let preds = predictions(&logits, &ids)?;
    let tags: Vec<Tag> = tags
        .into_iter()
        .map(|(kind, t)| match kind {
            1 => Tag::Begin(t),
            2 => Tag::Inside(t),
            _ => Tag::Outside,
        })
        .collect();
    let found = without_gil(py, || {
        align::entities(o, w, cols, preds, &tags, Aggregation::parse(aggregation)?)
    })?;
    let dict = PyDict::new(py);
    let col = |f: &dyn Fn(&align::Entity) -> i64| found.iter().map(f).collect::<Vec<i64>>();
    dict.set_item("row", col(&|e| e.row as i64).into_pyarray(py))?;
    dict.set_item("type", col(&|e| e.entity_type as i64).into_pyarray(py))?;
    dict.set_item("start", col(&|e| e.start).into_pyarray(py))?;
    dict.set_item("end", col(&|e| e.end).into_pyarray(py))?;
    dict.set_item("word_start", col(&|e| e.word_start).into_pyarray(py))?;
    dict.set_item("word_end", col(&|e| e.word_end).into_pyarray(py))?;
    let scores: Vec<f32> = found.iter().map(|e| e.score as f32).collect();
    dict.set_item("score", scores.into_pyarray(py))?;
    Ok(dict)
}

/// Sliding windows over `inputs`: a dict of int64 arrays as `batch_arrays` gives
/// with `return_overflowing_tokens=True`, plus `window_to_sample`,
/// `window_token_start`, `window_token_end`, `source_token_index` and
/// `sample_num_tokens`; see `fastbert_core::chunk`.
#[pyfunction]
#[pyo3(signature = (tokenizer, inputs, pairs=None, *, is_split_into_words=false, max_length,
                    stride=0, truncation_side="right", padding="longest", pad_to_multiple_of=None,
                    padding_side="right", return_offsets_mapping=true,
                    return_special_tokens_mask=false, return_word_ids=true, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn chunk_batch<'py>(
    py: Python<'py>,
    tokenizer: PyRef<'py, PyTokenizer>,
    inputs: &Bound<'py, PyAny>,
    pairs: Option<&Bound<'py, PyAny>>,
    is_split_into_words: bool,
    max_length: usize,
    stride: usize,
    truncation_side: &str,
    padding: &str,
    pad_to_multiple_of: Option<usize>,
    padding_side: &str,
    return_offsets_mapping: bool,
    return_special_tokens_mask: bool,
    return_word_ids: bool,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let direction = convert::side(truncation_side, "truncation_side")?;
    let pad_direction = convert::side(padding_side, "padding_side")?;
    let padding = convert::padding(padding, Some(max_length), false)?;
    let held = crate::inputs::hold(inputs, is_split_into_words, "texts")?;
    let held_pairs = pairs
        .map(|p| crate::inputs::hold(p, is_split_into_words, "pairs"))
        .transpose()?;
    let tok = tokenizer.core().clone();
    let pad_id = tok.pad_id();
    let extras = Extras {
        offsets: return_offsets_mapping,
        special_tokens_mask: return_special_tokens_mask,
        word_ids: return_word_ids,
        sequence_ids: false,
        overflowing: true,
    };
    let (out, chunks, source) =
        crate::inputs::with_inputs(&held, held_pairs.as_ref(), |ins, pair_ins| {
            without_gil(py, || {
                let chunks = chunk::chunk_batch(
                    &tok,
                    ins,
                    pair_ins,
                    max_length,
                    stride,
                    direction,
                    num_threads,
                )?;
                let out = batch::pad_batch(
                    &chunks.encodings,
                    padding,
                    pad_to_multiple_of,
                    pad_id,
                    pad_direction,
                    extras,
                    num_threads,
                )?;
                let source = chunks.source_token_index(out.cols, pad_direction)?;
                Ok((out, chunks.windows, (source, chunks.sample_num_tokens)))
            })
        })?;
    let shape2 = [out.rows, out.cols];
    // `overflow_to_sample_mapping` (each row's sample, as `pad_batch` makes it with
    // `overflowing`) comes in here, in the place `batch_arrays` gives it.
    let dict = convert::padded_arrays(py, out)?;
    let window_col = |f: &dyn Fn(&chunk::Window) -> usize| {
        chunks.iter().map(|w| f(w) as i64).collect::<Vec<i64>>()
    };
    dict.set_item(
        "window_to_sample",
        window_col(&|w| w.sample).into_pyarray(py),
    )?;
    dict.set_item(
        "window_token_start",
        window_col(&|w| w.token_start).into_pyarray(py),
    )?;
    dict.set_item(
        "window_token_end",
        window_col(&|w| w.token_end).into_pyarray(py),
    )?;
    dict.set_item(
        "source_token_index",
        source.0.into_pyarray(py).reshape(shape2)?,
    )?;
    let lengths: Vec<i64> = source.1.iter().map(|&n| n as i64).collect();
    dict.set_item("sample_num_tokens", lengths.into_pyarray(py))?;
    Ok(dict)
}

/// Window predictions → sample predictions by majority vote: `(labels, fractions)`.
#[pyfunction]
#[pyo3(signature = (window_to_sample, num_samples, preds, classes, logits=None))]
pub fn vote_windows<'py>(
    py: Python<'py>,
    window_to_sample: PyReadonlyArray1<'py, i64>,
    num_samples: usize,
    preds: PyReadonlyArray1<'py, i64>,
    classes: usize,
    logits: Option<PyReadonlyArray2<'py, f32>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let m = flat(&window_to_sample, "window_to_sample")?;
    let p = flat(&preds, "predictions")?;
    let l = opt_flat(&logits, "logits")?;
    let (labels, fractions) =
        without_gil(py, || chunk::vote_windows(m, num_samples, p, classes, l))?;
    per_sample(py, labels, fractions, [num_samples, classes])
}

/// Window logits → sample predictions by their mean: `(labels, mean logits)`.
#[pyfunction]
#[pyo3(signature = (window_to_sample, num_samples, logits))]
pub fn mean_windows<'py>(
    py: Python<'py>,
    window_to_sample: PyReadonlyArray1<'py, i64>,
    num_samples: usize,
    logits: PyReadonlyArray2<'py, f32>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let classes = logits.shape()[1];
    let m = flat(&window_to_sample, "window_to_sample")?;
    let l = flat(&logits, "logits")?;
    let (labels, means) = without_gil(py, || chunk::mean_windows(m, num_samples, l, classes))?;
    per_sample(py, labels, means, [num_samples, classes])
}

/// A sample-level result as numpy: `labels` `(samples,)` and `values` `shape`,
/// `(samples, classes)`.
fn per_sample(
    py: Python<'_>,
    labels: Vec<i64>,
    values: Vec<f32>,
    shape: [usize; 2],
) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    Ok((
        labels.into_pyarray(py).into_any(),
        values.into_pyarray(py).reshape(shape)?.into_any(),
    ))
}

/// Window-token predictions `(windows, cols, ...)` → source-token predictions
/// `(samples, max_tokens, ...)`. Exactly one of `values_f32` and `values_i64`;
/// `strategy` is "max_context" or (float only) "mean".
#[pyfunction]
#[pyo3(signature = (source_token_index, window_to_sample, window_token_start, window_token_end,
                    sample_num_tokens, values_f32, values_i64, strategy, fill_i64=-1))]
#[allow(clippy::too_many_arguments)]
pub fn merge_tokens<'py>(
    py: Python<'py>,
    source_token_index: PyReadonlyArray2<'py, i64>,
    window_to_sample: PyReadonlyArray1<'py, i64>,
    window_token_start: PyReadonlyArray1<'py, i64>,
    window_token_end: PyReadonlyArray1<'py, i64>,
    sample_num_tokens: PyReadonlyArray1<'py, i64>,
    values_f32: Option<PyReadonlyArrayDyn<'py, f32>>,
    values_i64: Option<PyReadonlyArrayDyn<'py, i64>>,
    strategy: &str,
    fill_i64: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = Layout {
        source_token_index: flat(&source_token_index, "source_token_index")?,
        cols: source_token_index.shape()[1],
        window_to_sample: flat(&window_to_sample, "window_to_sample")?,
        window_token_start: flat(&window_token_start, "window_token_start")?,
        window_token_end: flat(&window_token_end, "window_token_end")?,
        sample_num_tokens: flat(&sample_num_tokens, "sample_num_tokens")?,
    };
    let shape: Vec<usize> = match (&values_f32, &values_i64) {
        (Some(v), None) => v.shape().to_vec(),
        (None, Some(v)) => v.shape().to_vec(),
        _ => {
            return Err(PyTypeError::new_err(
                "give exactly one of values_f32 and values_i64",
            ))
        }
    };
    if shape.len() < 2 {
        return Err(PyValueError::new_err(format!(
            "predictions must be (windows, cols, ...), got {} dimension(s)",
            shape.len()
        )));
    }
    let width: usize = shape[2..].iter().product();
    let mut out_shape = vec![layout.sample_num_tokens.len(), layout.max_tokens()];
    out_shape.extend_from_slice(&shape[2..]);
    let mean = match strategy {
        "max_context" => false,
        "mean" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "strategy must be 'max_context' or 'mean', not {other:?}"
            )))
        }
    };
    if let Some(v) = &values_f32 {
        let v = flat(v, "predictions")?;
        let out = without_gil(py, || {
            if mean {
                chunk::merge_tokens_mean(&layout, v, width)
            } else {
                chunk::merge_tokens_max_context(&layout, v, width, f32::NAN)
            }
        })?;
        return Ok(out.into_pyarray(py).reshape(out_shape)?.into_any());
    }
    if mean {
        return Err(PyValueError::new_err(
            "strategy 'mean' needs float predictions (logits), not integer labels",
        ));
    }
    let v = opt_flat(&values_i64, "predictions")?.unwrap_or_default();
    let out = without_gil(py, || {
        chunk::merge_tokens_max_context(&layout, v, width, fill_i64)
    })?;
    Ok(out.into_pyarray(py).reshape(out_shape)?.into_any())
}
