//! `fastbert._core.WordPieceTokenizer` and `Encoding`: extract, release the GIL,
//! call the core, convert. No tokenization logic lives here.

use std::path::PathBuf;
use std::sync::Arc;

use fastbert_core::batch::{self, Extras};
use fastbert_core::{EncodeOptions, Encoding, Tokenizer, Truncation, TruncationStrategy};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert;
use crate::errors::without_gil;

/// The tokens of one input, with everything alignment and chunking need.
#[pyclass(module = "fastbert._core", name = "Encoding", frozen)]
pub struct PyEncoding {
    pub inner: Encoding,
    vocab: Arc<Vec<String>>,
}

impl PyEncoding {
    pub fn new(inner: Encoding, vocab: Arc<Vec<String>>) -> Self {
        PyEncoding { inner, vocab }
    }
}

#[pymethods]
impl PyEncoding {
    #[getter]
    fn ids(&self) -> Vec<u32> {
        self.inner.ids.clone()
    }
    #[getter]
    fn type_ids(&self) -> Vec<u32> {
        self.inner.type_ids.clone()
    }
    #[getter]
    fn tokens(&self) -> Vec<String> {
        self.inner
            .ids
            .iter()
            .map(|&i| self.vocab[i as usize].clone())
            .collect()
    }
    /// `(start, end)` character offsets into the input string (into the word, for pre-split input).
    #[getter]
    fn offsets(&self) -> Vec<(u32, u32)> {
        self.inner.offsets.clone()
    }
    #[getter]
    fn word_ids(&self) -> Vec<Option<u32>> {
        self.inner.word_ids.clone()
    }
    #[getter]
    fn sequence_ids(&self) -> Vec<Option<u8>> {
        self.inner.sequence_ids.clone()
    }
    #[getter]
    fn special_tokens_mask(&self) -> Vec<u32> {
        widen(&self.inner.special_tokens_mask)
    }
    #[getter]
    fn attention_mask(&self) -> Vec<u32> {
        widen(&self.inner.attention_mask)
    }
    #[getter]
    fn overflowing(&self) -> Vec<PyEncoding> {
        self.inner
            .overflowing
            .iter()
            .map(|o| PyEncoding::new(o.clone(), self.vocab.clone()))
            .collect()
    }
    fn __len__(&self) -> usize {
        self.inner.len()
    }
    fn __repr__(&self) -> String {
        format!(
            "Encoding(num_tokens={}, overflowing={})",
            self.inner.len(),
            self.inner.overflowing.len()
        )
    }
}

/// A 0/1 mask as the `list[int]` Python sees.
fn widen(mask: &[u8]) -> Vec<u32> {
    mask.iter().map(|&m| m as u32).collect()
}

fn options(
    add_special_tokens: bool,
    max_length: Option<usize>,
    truncation: Option<&str>,
    stride: usize,
    truncation_side: &str,
) -> PyResult<EncodeOptions> {
    let direction = convert::side(truncation_side, "truncation_side")?;
    let truncation = match truncation {
        None => None,
        Some(name) => {
            let strategy = match name {
                "longest_first" => TruncationStrategy::LongestFirst,
                "only_first" => TruncationStrategy::OnlyFirst,
                "only_second" => TruncationStrategy::OnlySecond,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "truncation must be 'longest_first', 'only_first' or 'only_second', not {other:?}"
                    )))
                }
            };
            let max_length =
                max_length.ok_or_else(|| PyValueError::new_err("truncation needs max_length"))?;
            Some(Truncation {
                max_length,
                stride,
                strategy,
                direction,
            })
        }
    };
    Ok(EncodeOptions {
        add_special_tokens,
        truncation,
    })
}

/// BERT WordPiece tokenizer with Hugging Face `tokenizers` parity.
#[pyclass(module = "fastbert._core", name = "WordPieceTokenizer", frozen)]
pub struct PyTokenizer {
    inner: Arc<Tokenizer>,
}

#[pymethods]
impl PyTokenizer {
    /// Load from a model folder, a `tokenizer.json` or a `vocab.txt`.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = without_gil(py, || Tokenizer::from_path(&path))?;
        Ok(PyTokenizer {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab().len()
    }
    #[getter]
    fn unk_token_id(&self) -> u32 {
        self.inner.unk_id()
    }
    #[getter]
    fn pad_token_id(&self) -> u32 {
        self.inner.pad_id()
    }
    #[getter]
    fn source(&self) -> PathBuf {
        self.inner.spec().source.clone()
    }
    /// `(clean_text, handle_chinese_chars, strip_accents, lowercase)`, or None without a normalizer.
    #[getter]
    fn normalizer(&self) -> Option<(bool, bool, bool, bool)> {
        self.inner.normalizer().map(|f| {
            (
                f.clean_text,
                f.handle_chinese_chars,
                f.strip_accents,
                f.lowercase,
            )
        })
    }
    #[getter]
    fn added_tokens(&self) -> Vec<(String, u32, bool)> {
        self.inner
            .spec()
            .added_tokens
            .iter()
            .map(|t| (t.content.clone(), t.id, t.special))
            .collect()
    }
    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.vocab().get(id as usize).cloned()
    }
    fn get_vocab(&self) -> Vec<String> {
        self.inner.vocab().as_ref().clone()
    }
    fn num_special_tokens_to_add(&self, is_pair: bool) -> usize {
        self.inner.num_special_tokens(is_pair)
    }

    #[pyo3(signature = (inputs, pairs=None, *, is_split_into_words=false, add_special_tokens=true,
                        max_length=None, truncation=None, stride=0, truncation_side="right", num_threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        pairs: Option<&Bound<'py, PyAny>>,
        is_split_into_words: bool,
        add_special_tokens: bool,
        max_length: Option<usize>,
        truncation: Option<&str>,
        stride: usize,
        truncation_side: &str,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let opts = options(
            add_special_tokens,
            max_length,
            truncation,
            stride,
            truncation_side,
        )?;
        let encodings =
            self.run_batch(py, inputs, pairs, is_split_into_words, &opts, num_threads)?;
        let vocab = self.inner.vocab();
        let objects = encodings
            .into_iter()
            .map(|e| untracked(Bound::new(py, PyEncoding::new(e, vocab.clone()))?))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, objects)
    }

    /// Encode and pad in one call; returns a dict of int64 numpy arrays named as in
    /// `transformers`. `padding` is "longest", "max_length" or "do_not_pad".
    #[pyo3(signature = (inputs, pairs=None, *, is_split_into_words=false, add_special_tokens=true,
                        max_length=None, truncation=None, stride=0, truncation_side="right",
                        padding="longest", pad_to_multiple_of=None, padding_side="right",
                        return_offsets_mapping=false, return_special_tokens_mask=false,
                        return_word_ids=false, return_sequence_ids=false,
                        return_overflowing_tokens=false, num_threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn batch_arrays<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        pairs: Option<&Bound<'py, PyAny>>,
        is_split_into_words: bool,
        add_special_tokens: bool,
        max_length: Option<usize>,
        truncation: Option<&str>,
        stride: usize,
        truncation_side: &str,
        padding: &str,
        pad_to_multiple_of: Option<usize>,
        padding_side: &str,
        return_offsets_mapping: bool,
        return_special_tokens_mask: bool,
        return_word_ids: bool,
        return_sequence_ids: bool,
        return_overflowing_tokens: bool,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let opts = options(
            add_special_tokens,
            max_length,
            truncation,
            stride,
            truncation_side,
        )?;
        let padding = convert::padding(padding, max_length, true)?;
        let direction = convert::side(padding_side, "padding_side")?;
        let extras = Extras {
            offsets: return_offsets_mapping,
            special_tokens_mask: return_special_tokens_mask,
            word_ids: return_word_ids,
            sequence_ids: return_sequence_ids,
            overflowing: return_overflowing_tokens,
        };
        let encodings =
            self.run_batch(py, inputs, pairs, is_split_into_words, &opts, num_threads)?;
        let pad_id = self.inner.pad_id();
        let out = without_gil(py, || {
            batch::pad_batch(
                &encodings,
                padding,
                pad_to_multiple_of,
                pad_id,
                direction,
                extras,
                num_threads,
            )
        })?;
        convert::padded_arrays(py, out)
    }
}

impl PyTokenizer {
    pub fn core(&self) -> &Arc<Tokenizer> {
        &self.inner
    }

    fn run_batch(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        pairs: Option<&Bound<'_, PyAny>>,
        split: bool,
        opts: &EncodeOptions,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<Encoding>> {
        let held = crate::inputs::hold(inputs, split, "inputs")?;
        let held_pairs = pairs
            .map(|p| crate::inputs::hold(p, split, "pairs"))
            .transpose()?;
        if let Some(p) = &held_pairs {
            if p.len() != held.len() {
                return Err(PyValueError::new_err(format!(
                    "got {} inputs but {} pairs; they must match one to one",
                    held.len(),
                    p.len()
                )));
            }
        }
        let tok = self.inner.clone();
        crate::inputs::with_inputs(&held, held_pairs.as_ref(), |ins, pair_ins| {
            without_gil(py, || {
                batch::encode_batch(&tok, ins, pair_ins, opts, num_threads)
            })
        })
    }
}

/// Take a freshly made `Encoding` out of the cyclic garbage collector's care.
///
/// PyO3 registers every class with the collector, but an `Encoding` holds no
/// Python references and so can never be part of a cycle. Leaving hundreds of
/// thousands of them tracked makes each collection walk them all, which cost a
/// third of `encode_batch`'s time on large batches.
fn untracked(obj: Bound<'_, PyEncoding>) -> PyResult<Bound<'_, PyEncoding>> {
    // SAFETY: `obj` is a valid, live object; untracking an object that owns no
    // Python references is always sound (CPython's deallocation path checks the
    // tracked flag before untracking again).
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) };
    Ok(obj)
}
