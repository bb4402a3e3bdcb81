//! Label alignment for token classification, in one pass over padded arrays.
//!
//! Training direction:
//! - [`word_to_token_labels`]: one label per word → one label per token
//!   (`first`: the first sub-token of a word carries it; `all`: every sub-token does,
//!   with `B-` continuations turned into `I-`).
//! - [`spans_to_bio`]: character spans `(start, end, label)` → BIO token labels.
//!
//! Prediction direction:
//! - [`word_predictions`]: token logits (or label ids) → one label and score per word.
//! - [`entities`]: token logits (or label ids) → BIO-decoded entities with character
//!   offsets and a score.
//!
//! Every array is row-major and flat: `word_ids` is `(rows, cols)`, `offsets` is
//! `(rows, cols, 2)`, logits are `(rows, cols, classes)`. A word id of [`NO_WORD`]
//! (-1) marks special and padding tokens. Per-sample inputs whose length varies
//! (labels, spans) come as a [`Ragged`] buffer.
//!
//! The pure-Python references of all of these live in `python/fastbert/align.py`
//! (`_reference_*`); the property tests compare the two.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// The word id of special and padding tokens.
pub const NO_WORD: i64 = -1;

/// Variable-length per-sample data in one flat buffer: sample `i` owns items
/// `offsets[i]..offsets[i + 1]`, each item `width` consecutive values.
#[derive(Clone, Copy, Debug)]
pub struct Ragged<'a> {
    pub values: &'a [i64],
    pub offsets: &'a [i64],
    pub width: usize,
}

impl<'a> Ragged<'a> {
    /// Check the offsets once, so that [`Ragged::get`] cannot go out of bounds.
    pub fn new(values: &'a [i64], offsets: &'a [i64], width: usize, what: &str) -> Result<Self> {
        let width = width.max(1);
        if offsets.first().is_some_and(|&o| o != 0) {
            return Err(Error::invalid(format!("{what}: offsets must start at 0")));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::invalid(format!(
                "{what}: offsets must not decrease (sample {i})"
            )));
        }
        let items = offsets.last().copied().unwrap_or(0);
        if items as usize * width != values.len() {
            return Err(Error::invalid(format!(
                "{what}: offsets end at {items} items but {} values of width {width} were given",
                values.len()
            )));
        }
        Ok(Ragged {
            values,
            offsets,
            width,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of sample `i` (`width` per item).
    pub fn get(&self, i: usize) -> &'a [i64] {
        let (s, e) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        &self.values[s * self.width..e * self.width]
    }
}

/// How a word's label reaches its sub-tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelStrategy {
    /// The first sub-token of each word carries the label; the rest get the ignore index.
    First,
    /// Every sub-token carries the label; continuations map `B-x` to `I-x`.
    All,
}

impl LabelStrategy {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "first" => Ok(LabelStrategy::First),
            "all" => Ok(LabelStrategy::All),
            other => Err(Error::invalid(format!(
                "strategy must be 'first' or 'all', not {other:?}"
            ))),
        }
    }
}

/// Which sample each row belongs to: `row_to_sample[r]`, or `r` itself.
fn sample_of(
    row_to_sample: Option<&[i64]>,
    row: usize,
    samples: usize,
    what: &str,
) -> Result<usize> {
    let s = match row_to_sample {
        Some(m) => m[row],
        None => row as i64,
    };
    if s < 0 || s as usize >= samples {
        let hint = if row_to_sample.is_none() {
            " (pass row_to_sample when overflowing windows are rows of their own)"
        } else {
            ""
        };
        return Err(Error::invalid(format!(
            "row {row} belongs to sample {s}, but {what} were given for {samples} samples{hint}"
        )));
    }
    Ok(s as usize)
}

/// Rows of a flat `(rows, cols)` array, checking the length.
fn rows_of(len: usize, cols: usize, what: &str) -> Result<usize> {
    if cols == 0 {
        return Ok(0);
    }
    if len % cols != 0 {
        return Err(Error::invalid(format!(
            "{what} has {len} values, not a multiple of {cols} columns"
        )));
    }
    Ok(len / cols)
}

fn check_row_map(row_to_sample: Option<&[i64]>, rows: usize) -> Result<()> {
    match row_to_sample {
        Some(m) if m.len() != rows => Err(Error::invalid(format!(
            "row_to_sample has {} entries but there are {rows} rows",
            m.len()
        ))),
        _ => Ok(()),
    }
}

/// Word labels → token labels, like the usual `word_ids()` loop of Hugging Face's
/// token-classification examples.
///
/// `word_ids`: `(rows, cols)`, -1 for no word. `labels`: one label per word, per
/// sample. A token starts a word when its word id differs from the previous
/// token's (in the same row); such tokens take the word's label. Continuation
/// tokens take `ignore_index` (`First`) or the label mapped through `b_to_i`
/// (`All`; labels absent from the map stay as they are).
///
/// Caveat (as in Hugging Face): in an overflowing window whose first token is the
/// middle of a word, that token counts as the start of the word and is labelled.
pub fn word_to_token_labels(
    word_ids: &[i64],
    cols: usize,
    labels: Ragged<'_>,
    row_to_sample: Option<&[i64]>,
    strategy: LabelStrategy,
    b_to_i: &[(i64, i64)],
    ignore_index: i64,
) -> Result<Vec<i64>> {
    let rows = rows_of(word_ids.len(), cols, "word_ids")?;
    check_row_map(row_to_sample, rows)?;
    let b_to_i: FxHashMap<i64, i64> = b_to_i.iter().copied().collect();
    let mut out = vec![ignore_index; word_ids.len()];
    for r in 0..rows {
        let sample = sample_of(row_to_sample, r, labels.len(), "word labels")?;
        let sample_labels = labels.get(sample);
        let mut previous = NO_WORD;
        for c in 0..cols {
            let w = word_ids[r * cols + c];
            if w == NO_WORD {
                previous = w;
                continue;
            }
            if w < 0 || w as usize >= sample_labels.len() {
                return Err(Error::invalid(format!(
                    "sample {sample} (row {r}, column {c}) has word id {w}, but only {} word labels",
                    sample_labels.len()
                )));
            }
            let label = sample_labels[w as usize];
            out[r * cols + c] = if w != previous {
                label
            } else {
                match strategy {
                    LabelStrategy::First => ignore_index,
                    LabelStrategy::All => b_to_i.get(&label).copied().unwrap_or(label),
                }
            };
            previous = w;
        }
    }
    Ok(out)
}

/// A token is special (or padding) when its word id is -1, or, without word ids,
/// when its character span is empty: only special and padding tokens have one.
fn is_special(word_ids: Option<&[i64]>, offsets: &[i64], i: usize) -> bool {
    match word_ids {
        Some(w) => w[i] == NO_WORD,
        None => offsets[2 * i] >= offsets[2 * i + 1],
    }
}

/// Character spans → BIO token labels.
///
/// `offsets`: `(rows, cols, 2)` character offsets into each sample's text.
/// `spans`: per sample, `(start, end, type)` items with `0 <= type < num_types`,
/// end exclusive. Label ids: `O` = 0, `B-type` = `2 * type + 1`, `I-type` = `2 * type + 2`.
///
/// A token is inside a span when their character ranges overlap. The first token
/// of a span in a row gets `B-`, the following ones `I-`. Spans that overlap each
/// other are an error (naming both); spans that do not overlap but share a token
/// (a span boundary inside a token) give that token to the earlier span.
/// Special tokens get `ignore_index` (see [`is_special`] for how they are found).
#[allow(clippy::too_many_arguments)]
pub fn spans_to_bio(
    offsets: &[i64],
    cols: usize,
    word_ids: Option<&[i64]>,
    spans: Ragged<'_>,
    num_types: usize,
    row_to_sample: Option<&[i64]>,
    ignore_index: i64,
) -> Result<Vec<i64>> {
    let rows = rows_of(offsets.len(), cols * 2, "offsets")?;
    check_row_map(row_to_sample, rows)?;
    if let Some(w) = word_ids {
        if w.len() != rows * cols {
            return Err(Error::invalid(format!(
                "word_ids has {} values but offsets has {rows} x {cols} tokens",
                w.len()
            )));
        }
    }
    if spans.width != 3 {
        return Err(Error::invalid("spans must be (start, end, label) triples"));
    }
    // Per sample, its spans sorted by start, checked once.
    let mut sorted: Vec<Vec<[i64; 3]>> = Vec::with_capacity(spans.len());
    for s in 0..spans.len() {
        let items = spans.get(s);
        let mut v: Vec<(usize, [i64; 3])> = items
            .chunks_exact(3)
            .map(|t| [t[0], t[1], t[2]])
            .enumerate()
            .collect();
        for (j, [start, end, label]) in &v {
            if *start < 0 || end <= start {
                return Err(Error::invalid(format!(
                    "sample {s}, span {j} ({start}, {end}, {label}): needs 0 <= start < end"
                )));
            }
            if *label < 0 || *label as usize >= num_types {
                return Err(Error::invalid(format!(
                    "sample {s}, span {j} ({start}, {end}, {label}): label must be in 0..{num_types}"
                )));
            }
        }
        v.sort_by_key(|(j, t)| (t[0], *j));
        for pair in v.windows(2) {
            let ((i, a), (j, b)) = (pair[0], pair[1]);
            if b[0] < a[1] {
                return Err(Error::invalid(format!(
                    "sample {s}: span {j} ({}, {}, {}) overlaps span {i} ({}, {}, {}); \
                     nested or overlapping spans cannot be written as BIO",
                    b[0], b[1], b[2], a[0], a[1], a[2]
                )));
            }
        }
        sorted.push(v.into_iter().map(|(_, t)| t).collect());
    }
    let mut out = vec![ignore_index; rows * cols];
    for r in 0..rows {
        let sample = sample_of(row_to_sample, r, sorted.len(), "spans")?;
        let sample_spans = &sorted[sample];
        let mut previous: Option<usize> = None;
        for c in 0..cols {
            let i = r * cols + c;
            if is_special(word_ids, offsets, i) {
                continue;
            }
            let (ts, te) = (offsets[2 * i], offsets[2 * i + 1]);
            // Sorted, disjoint spans have sorted ends: the first one ending after
            // the token start is the earliest that can overlap it.
            let k = sample_spans.partition_point(|t| t[1] <= ts);
            let hit = (k < sample_spans.len() && sample_spans[k][0] < te).then_some(k);
            out[i] = match hit {
                None => 0,
                Some(k) => {
                    let kind = if previous == Some(k) { 2 } else { 1 };
                    2 * sample_spans[k][2] + kind
                }
            };
            previous = hit;
        }
    }
    Ok(out)
}

/// How the sub-tokens of a word are combined into one prediction (the
/// `aggregation_strategy` of Hugging Face's token-classification pipeline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// No grouping: every token is its own unit (only for [`entities`]).
    None,
    /// The word takes the prediction of its first sub-token.
    First,
    /// Average the sub-tokens' probabilities, then take the best class.
    Average,
    /// The sub-token with the highest probability decides.
    Max,
}

impl Aggregation {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Aggregation::None),
            "first" => Ok(Aggregation::First),
            "average" => Ok(Aggregation::Average),
            "max" => Ok(Aggregation::Max),
            other => Err(Error::invalid(format!(
                "aggregation must be 'none', 'first', 'average' or 'max', not {other:?}"
            ))),
        }
    }
}

/// Token predictions: logits `(rows, cols, classes)` or label ids `(rows, cols)`.
#[derive(Clone, Copy, Debug)]
pub enum Predictions<'a> {
    Logits { values: &'a [f32], classes: usize },
    Ids(&'a [i64]),
}

impl Predictions<'_> {
    fn check(&self, tokens: usize, aggregation: Aggregation) -> Result<()> {
        match *self {
            Predictions::Logits { values, classes } => {
                if classes == 0 {
                    return Err(Error::invalid("logits need at least one class"));
                }
                if values.len() != tokens * classes {
                    return Err(Error::invalid(format!(
                        "logits have {} values, expected {tokens} tokens x {classes} classes",
                        values.len()
                    )));
                }
            }
            Predictions::Ids(ids) => {
                if ids.len() != tokens {
                    return Err(Error::invalid(format!(
                        "label ids have {} values, expected {tokens} tokens (the shape of word_ids)",
                        ids.len()
                    )));
                }
                if matches!(aggregation, Aggregation::Average | Aggregation::Max) {
                    return Err(Error::invalid(
                        "aggregation 'average' and 'max' need logits, not label ids",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Softmax of one token's logits in f64 (max subtracted, terms summed in order),
/// so the Python reference, written with `math.exp`, gets the same bits.
fn softmax(logits: &[f32], out: &mut Vec<f64>) {
    out.clear();
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    out.extend(logits.iter().map(|&x| (x as f64 - max).exp()));
    let sum: f64 = out.iter().fold(0.0, |s, &x| s + x);
    out.iter_mut().for_each(|p| *p /= sum);
}

/// Index and value of the largest element; the first one on ties.
fn argmax(values: &[f64]) -> (usize, f64) {
    let mut best = (0, values[0]);
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// The prediction of one unit (a word, or a token): label, score, and the span
/// of tokens and characters it covers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Unit {
    label: i64,
    score: f64,
    word: i64,
    start: i64,
    end: i64,
}

/// Aggregate one row's tokens into words, in word-id order. Words absent from
/// the row are left out.
fn row_words(
    r: usize,
    cols: usize,
    word_ids: &[i64],
    offsets: Option<&[i64]>,
    preds: Predictions<'_>,
    aggregation: Aggregation,
    probs: &mut Vec<f64>,
) -> Result<Vec<Unit>> {
    let row = &word_ids[r * cols..(r + 1) * cols];
    let words = row.iter().copied().max().unwrap_or(NO_WORD) + 1;
    let classes = match preds {
        Predictions::Logits { classes, .. } => classes,
        Predictions::Ids(_) => 1,
    };
    // Per word: first token, token count, running probability sum / best token.
    let mut first = vec![usize::MAX; words as usize];
    let mut count = vec![0usize; words as usize];
    let mut sums = vec![
        0f64;
        if aggregation == Aggregation::Average {
            words as usize * classes
        } else {
            0
        }
    ];
    let mut best: Vec<(i64, f64)> = vec![(-1, f64::NEG_INFINITY); words as usize];
    let mut spans = vec![(i64::MAX, i64::MIN); words as usize];
    for (c, &w) in row.iter().enumerate() {
        if w == NO_WORD {
            continue;
        }
        if w < 0 {
            return Err(Error::invalid(format!(
                "row {r}, column {c}: word id {w} is negative (use -1 for no word)"
            )));
        }
        let wu = w as usize;
        let i = r * cols + c;
        if let Some(o) = offsets {
            spans[wu].0 = spans[wu].0.min(o[2 * i]);
            spans[wu].1 = spans[wu].1.max(o[2 * i + 1]);
        }
        count[wu] += 1;
        if first[wu] == usize::MAX {
            first[wu] = i;
        }
        if let Predictions::Logits { values, classes } = preds {
            match aggregation {
                Aggregation::Average => {
                    softmax(&values[i * classes..(i + 1) * classes], probs);
                    for (s, p) in sums[wu * classes..(wu + 1) * classes]
                        .iter_mut()
                        .zip(probs.iter())
                    {
                        *s += p;
                    }
                }
                Aggregation::Max => {
                    softmax(&values[i * classes..(i + 1) * classes], probs);
                    let (k, p) = argmax(probs);
                    if p > best[wu].1 {
                        best[wu] = (k as i64, p);
                    }
                }
                Aggregation::First | Aggregation::None => {}
            }
        }
    }
    let mut units = Vec::new();
    for w in 0..words as usize {
        if count[w] == 0 {
            continue;
        }
        let (label, score) = match (preds, aggregation) {
            (Predictions::Ids(ids), _) => (ids[first[w]], f64::NAN),
            (Predictions::Logits { values, classes }, Aggregation::First | Aggregation::None) => {
                softmax(&values[first[w] * classes..(first[w] + 1) * classes], probs);
                let (k, p) = argmax(probs);
                (k as i64, p)
            }
            (Predictions::Logits { classes, .. }, Aggregation::Average) => {
                let mean: Vec<f64> = sums[w * classes..(w + 1) * classes]
                    .iter()
                    .map(|s| s / count[w] as f64)
                    .collect();
                let (k, p) = argmax(&mean);
                (k as i64, p)
            }
            (Predictions::Logits { .. }, Aggregation::Max) => best[w],
        };
        units.push(Unit {
            label,
            score,
            word: w as i64,
            start: spans[w].0,
            end: spans[w].1,
        });
    }
    Ok(units)
}

/// Per-word predictions: `(rows, words)` labels and scores, `words` being the
/// largest word id + 1 over all rows. Words absent from a row get label -1 and
/// score NaN; so does every score when the predictions are label ids.
pub struct WordPredictions {
    pub words: usize,
    pub labels: Vec<i64>,
    pub scores: Vec<f32>,
}

/// Token predictions → word predictions, aggregating each word's sub-tokens.
///
/// Scores are softmax probabilities: `first` takes the first sub-token's best
/// class; `average` averages the sub-tokens' probability vectors and takes the
/// best class; `max` takes the best class of the sub-token whose best probability
/// is highest (the first such token on ties). Label ids only allow `first`.
pub fn word_predictions(
    word_ids: &[i64],
    cols: usize,
    preds: Predictions<'_>,
    aggregation: Aggregation,
) -> Result<WordPredictions> {
    let rows = rows_of(word_ids.len(), cols, "word_ids")?;
    let aggregation = match aggregation {
        Aggregation::None => {
            return Err(Error::invalid(
                "aggregation 'none' has no meaning for word predictions; use 'first', 'average' or 'max'",
            ))
        }
        a => a,
    };
    preds.check(word_ids.len(), aggregation)?;
    let words = word_ids
        .iter()
        .copied()
        .max()
        .unwrap_or(NO_WORD)
        .max(NO_WORD)
        + 1;
    let words = words as usize;
    let mut labels = vec![-1; rows * words];
    let mut scores = vec![f32::NAN; rows * words];
    let mut probs = Vec::new();
    for r in 0..rows {
        for u in row_words(r, cols, word_ids, None, preds, aggregation, &mut probs)? {
            labels[r * words + u.word as usize] = u.label;
            scores[r * words + u.word as usize] = u.score as f32;
        }
    }
    Ok(WordPredictions {
        words,
        labels,
        scores,
    })
}

/// What a label id means to the BIO decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Outside,
    /// Starts an entity of this type.
    Begin(u32),
    /// Continues an entity of this type (starts one after anything else).
    Inside(u32),
}

/// One decoded entity. `start..end` are character offsets (first token's start to
/// last token's end); `word_start..word_end` the word ids it covers (-1 when its
/// tokens have none); `score` the mean of its units' scores (NaN for label ids).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entity {
    pub row: usize,
    pub entity_type: u32,
    pub start: i64,
    pub end: i64,
    pub word_start: i64,
    pub word_end: i64,
    pub score: f64,
}

/// Token predictions → BIO-decoded entities, in row order.
///
/// With `Aggregation::None` every non-special token is a unit, and a special token
/// ends the entity in progress; otherwise the units are words (see
/// [`word_predictions`]), spanning from their first token's start to their last
/// token's end. Decoding: `Begin(t)` always starts an entity; `Inside(t)` extends
/// an entity of type `t` and starts one otherwise (the lenient rule of Hugging
/// Face's pipeline); `Outside` ends it. `tags[label]` says what each label id means.
pub fn entities(
    offsets: &[i64],
    word_ids: &[i64],
    cols: usize,
    preds: Predictions<'_>,
    tags: &[Tag],
    aggregation: Aggregation,
) -> Result<Vec<Entity>> {
    let rows = rows_of(word_ids.len(), cols, "word_ids")?;
    if offsets.len() != 2 * word_ids.len() {
        return Err(Error::invalid(format!(
            "offsets have {} values, expected {rows} x {cols} x 2 (the shape of word_ids, plus 2)",
            offsets.len()
        )));
    }
    preds.check(word_ids.len(), aggregation)?;
    if let Predictions::Logits { classes, .. } = preds {
        if classes > tags.len() {
            return Err(Error::invalid(format!(
                "logits have {classes} classes but id2label names only {}",
                tags.len()
            )));
        }
    }
    let mut out = Vec::new();
    let mut probs = Vec::new();
    for r in 0..rows {
        // Units of this row, with `None` marking a break (a special token).
        let units: Vec<Option<Unit>> = if aggregation == Aggregation::None {
            (0..cols)
                .map(|c| {
                    let i = r * cols + c;
                    let w = word_ids[i];
                    if w == NO_WORD {
                        return None;
                    }
                    let (label, score) = match preds {
                        Predictions::Ids(ids) => (ids[i], f64::NAN),
                        Predictions::Logits { values, classes } => {
                            softmax(&values[i * classes..(i + 1) * classes], &mut probs);
                            let (k, p) = argmax(&probs);
                            (k as i64, p)
                        }
                    };
                    Some(Unit {
                        label,
                        score,
                        word: w,
                        start: offsets[2 * i],
                        end: offsets[2 * i + 1],
                    })
                })
                .collect()
        } else {
            row_words(
                r,
                cols,
                word_ids,
                Some(offsets),
                preds,
                aggregation,
                &mut probs,
            )?
            .into_iter()
            .map(Some)
            .collect()
        };
        let mut current: Option<(Entity, usize)> = None;
        let mut close = |current: &mut Option<(Entity, usize)>| {
            if let Some((mut e, n)) = current.take() {
                e.score /= n as f64;
                out.push(e);
            }
        };
        for unit in units {
            let Some(u) = unit else {
                close(&mut current);
                continue;
            };
            let tag = usize::try_from(u.label)
                .ok()
                .and_then(|l| tags.get(l))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "row {r}: label id {} is not in id2label (0..{})",
                        u.label,
                        tags.len()
                    ))
                })?;
            let (begin, t) = match *tag {
                Tag::Outside => {
                    close(&mut current);
                    continue;
                }
                Tag::Begin(t) => (true, t),
                Tag::Inside(t) => (false, t),
            };
            match &mut current {
                Some((e, n)) if !begin && e.entity_type == t => {
                    e.end = e.end.max(u.end);
                    e.word_end = u.word + 1;
                    e.score += u.score;
                    *n += 1;
                }
                _ => {
                    close(&mut current);
                    current = Some((
                        Entity {
                            row: r,
                            entity_type: t,
                            start: u.start,
                            end: u.end,
                            word_start: u.word,
                            word_end: u.word + 1,
                            score: u.score,
                        },
                        1,
                    ));
                }
            }
        }
        close(&mut current);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ragged<'a>(values: &'a [i64], offsets: &'a [i64], width: usize) -> Ragged<'a> {
        Ragged::new(values, offsets, width, "test").unwrap()
    }

    #[test]
    fn first_and_all_strategies() {
        // [CLS] w0 w0 w1 [SEP] pad
        let word_ids = [-1, 0, 0, 1, -1, -1];
        let labels = [1, 3];
        let offs = [0, 2];
        let first = word_to_token_labels(
            &word_ids,
            6,
            ragged(&labels, &offs, 1),
            None,
            LabelStrategy::First,
            &[],
            -100,
        )
        .unwrap();
        assert_eq!(first, vec![-100, 1, -100, 3, -100, -100]);
        let all = word_to_token_labels(
            &word_ids,
            6,
            ragged(&labels, &offs, 1),
            None,
            LabelStrategy::All,
            &[(1, 2)],
            -100,
        )
        .unwrap();
        assert_eq!(all, vec![-100, 1, 2, 3, -100, -100]);
    }

    #[test]
    fn word_id_beyond_labels_names_the_sample() {
        let err = word_to_token_labels(
            &[-1, 0, 2],
            3,
            ragged(&[0, 0], &[0, 2], 1),
            None,
            LabelStrategy::First,
            &[],
            -100,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sample 0"), "{err}");
    }

    #[test]
    fn spans_become_bio() {
        // "New York is big": [CLS] new york is big [SEP]
        let offsets = [0, 0, 0, 3, 4, 8, 9, 11, 12, 15, 0, 0];
        let spans = [0, 8, 1];
        let out =
            spans_to_bio(&offsets, 6, None, ragged(&spans, &[0, 1], 3), 2, None, -100).unwrap();
        assert_eq!(out, vec![-100, 3, 4, 0, 0, -100]);
    }

    #[test]
    fn overlapping_spans_are_an_error() {
        let err = spans_to_bio(
            &[0, 3],
            1,
            None,
            ragged(&[0, 5, 0, 3, 8, 0], &[0, 2], 3),
            1,
            None,
            -100,
        )
        .unwrap_err();
        assert!(err.to_string().contains("span 1"), "{err}");
    }

    #[test]
    fn entities_decode_bio_over_words() {
        // id2label: O, B-X, I-X; tokens: [CLS] a ##b c [SEP]
        let tags = [Tag::Outside, Tag::Begin(0), Tag::Inside(0)];
        let word_ids = [-1, 0, 0, 1, -1];
        let offsets = [0, 0, 0, 1, 1, 2, 3, 4, 0, 0];
        let ids = [0, 1, 0, 2, 0];
        let found = entities(
            &offsets,
            &word_ids,
            5,
            Predictions::Ids(&ids),
            &tags,
            Aggregation::First,
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (0, 4));
        assert_eq!((found[0].word_start, found[0].word_end), (0, 2));
    }

    #[test]
    fn average_and_max_aggregate_probabilities() {
        let word_ids = [0, 0];
        let logits = [3.0, 0.0, 0.0, 1.0];
        let avg = word_predictions(
            &word_ids,
            2,
            Predictions::Logits {
                values: &logits,
                classes: 2,
            },
            Aggregation::Average,
        )
        .unwrap();
        assert_eq!(avg.labels, vec![0]);
        let max = word_predictions(
            &word_ids,
            2,
            Predictions::Logits {
                values: &logits,
                classes: 2,
            },
            Aggregation::Max,
        )
        .unwrap();
        assert_eq!(max.labels, vec![0]);
        assert!((max.scores[0] - 0.952_574_1).abs() < 1e-6);
    }
}
