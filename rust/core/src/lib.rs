//! fastbert-core: the algorithms behind fastbert, in plain Rust with no Python in
//! them. The `fastbert-py` crate binds them; see `../../STYLE.md` for why the two are apart.
//!
//! - [`spec`]: read a Hugging Face model folder into a [`TokenizerSpec`].
//! - [`normalize`]: `BertNormalizer` + `BertPreTokenizer`, with alignments.
//! - [`wordpiece`]: LinMaxMatch, linear-time WordPiece, and its quadratic reference.
//! - [`tokenizer`]: the whole pipeline for one input; [`batch`]: many inputs, padded arrays.
//! - [`encoding`]: the per-input result, truncation windows and merging.
//! - [`align`]: word and span labels to token labels and back.
//! - [`chunk`]: sliding windows over long texts.
//! - [`dedup`]: exact and near-duplicate detection (MinHash + LSH), streaming.
//! - [`dropout`]: dropout scale tensors from a counter-based generator, in parallel.
//! - [`pool`]: a fork-safe parallel map.

pub mod align;
pub mod batch;
pub mod chunk;
pub mod dedup;
pub mod dropout;
pub mod encoding;
pub mod error;
pub mod normalize;
pub mod pool;
pub mod spec;
pub mod tokenizer;
pub mod wordpiece;

pub use encoding::{Direction, Encoding};
pub use error::{Error, Result};
pub use spec::TokenizerSpec;
pub use tokenizer::{EncodeOptions, Input, Tokenizer, Truncation, TruncationStrategy};
