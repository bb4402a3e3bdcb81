//! Sliding windows over long texts, and merging window predictions back.
//!
//! [`chunk_batch`] cuts each input into windows of at most `max_length` tokens
//! (special tokens included) that overlap by `stride` tokens: exactly the windows
//! of Hugging Face `tokenizers`' `enable_truncation(max_length, stride=...)` and
//! `Encoding.overflowing`, because it runs the same [`Tokenizer::post_process`].
//! Each window also records its sample and its token range in the sample's full
//! token sequence (special tokens not counted), so predictions can be merged:
//!
//! - [`vote_windows`] / [`mean_windows`]: one prediction per window → one per sample.
//! - [`merge_tokens_max_context`] / [`merge_tokens_mean`]: one prediction per window
//!   token → one per source token. `max_context` takes each token from the window
//!   where it has the most context on its poorer side, as BERT's SQuAD code does.
//!
//! The pure-Python references live in `python/fastbert/chunk.py` (`_reference_*`).

use crate::encoding::{Direction, Encoding};
use crate::error::{Error, Result};
use crate::pool;
use crate::tokenizer::{
    truncate_pair, EncodeOptions, Input, Tokenizer, Truncation, TruncationStrategy,
};

/// One window: its sample and its tokens `token_start..token_end` of the sample's
/// full token sequence (of the pair, for pair inputs), special tokens not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub sample: usize,
    pub token_start: usize,
    pub token_end: usize,
}

/// The windows of a batch: per input, its encoding (first window, the rest in
/// `overflowing`) and its full length; `windows` in row order (each input's
/// first window, then its overflowing ones).
pub struct Chunks {
    pub encodings: Vec<Encoding>,
    pub windows: Vec<Window>,
    pub sample_num_tokens: Vec<usize>,
    /// The sequence id whose tokens the windows slide over: 0, or 1 for pairs.
    pub target_sequence: u8,
}

/// An encoding whose ids are the token positions `0..n`: truncating it shows
/// which positions each window keeps, without re-deriving the window arithmetic.
fn positions(n: usize) -> Encoding {
    let mut e = Encoding::with_capacity(n);
    for i in 0..n {
        e.push(i as u32, (0, 0), None);
    }
    e
}

/// `(start, end)` of each window of a truncated position encoding.
fn ranges(e: &Encoding) -> Vec<(usize, usize)> {
    std::iter::once(e)
        .chain(e.overflowing.iter())
        .map(|w| match (w.ids.first(), w.ids.last()) {
            (Some(&a), Some(&b)) => (a as usize, b as usize + 1),
            _ => (0, 0),
        })
        .collect()
}

/// One input, cut: its windows, their token ranges, and its full length.
struct Cut {
    encoding: Encoding,
    ranges: Vec<(usize, usize)>,
    full: usize,
}

/// Cut every input into windows. With `pairs`, the pair is the long text that is
/// windowed and the first input is repeated in every window (truncation
/// `only_second`, as for extractive question answering).
pub fn chunk_batch(
    tok: &Tokenizer,
    inputs: &[Input],
    pairs: Option<&[Input]>,
    max_length: usize,
    stride: usize,
    direction: Direction,
    threads: Option<usize>,
) -> Result<Chunks> {
    if let Some(p) = pairs {
        if p.len() != inputs.len() {
            return Err(Error::invalid(format!(
                "got {} texts but {} pairs; they must match one to one",
                inputs.len(),
                p.len()
            )));
        }
    }
    let added = tok.num_special_tokens(pairs.is_some());
    if max_length <= added {
        return Err(Error::invalid(format!(
            "max_length ({max_length}) must be larger than the {added} special tokens of each window"
        )));
    }
    let strategy = if pairs.is_some() {
        TruncationStrategy::OnlySecond
    } else {
        TruncationStrategy::LongestFirst
    };
    let truncation = Truncation {
        max_length,
        stride,
        strategy,
        direction,
    };
    let opts = EncodeOptions {
        add_special_tokens: true,
        truncation: Some(truncation),
    };
    let idx: Vec<usize> = (0..inputs.len()).collect();
    let per_input = pool::map(&idx, threads, |&i| -> Result<Cut> {
        let a = tok.encode_input(inputs[i]);
        let b = pairs.map(|p| tok.encode_input(p[i]));
        let mut pa = positions(a.len());
        let mut pb = b.as_ref().map(|b| positions(b.len()));
        // The same cut as `post_process` makes: room left after the special tokens.
        let room = Truncation {
            max_length: max_length - added,
            ..truncation
        };
        let in_text = |e: Error| Error::invalid(format!("text {i}: {e}"));
        truncate_pair(&mut pa, pb.as_mut(), &room).map_err(in_text)?;
        let (target, full) = match (&pb, &b) {
            (Some(pb), Some(b)) => (ranges(pb), b.len()),
            _ => (ranges(&pa), a.len()),
        };
        let enc = tok.post_process(a, b, &opts).map_err(in_text)?;
        if enc.overflowing.len() + 1 != target.len() {
            return Err(Error::invalid(format!(
                "text {i}: {} windows but {} token ranges; please report this",
                enc.overflowing.len() + 1,
                target.len()
            )));
        }
        Ok(Cut {
            encoding: enc,
            ranges: target,
            full,
        })
    });
    let mut chunks = Chunks {
        encodings: Vec::with_capacity(inputs.len()),
        windows: Vec::new(),
        sample_num_tokens: Vec::with_capacity(inputs.len()),
        target_sequence: u8::from(pairs.is_some()),
    };
    for (sample, r) in per_input.into_iter().enumerate() {
        let Cut {
            encoding: enc,
            ranges: target,
            full,
        } = r?;
        chunks.encodings.push(enc);
        chunks.sample_num_tokens.push(full);
        chunks
            .windows
            .extend(target.into_iter().map(|(token_start, token_end)| Window {
                sample,
                token_start,
                token_end,
            }));
    }
    Ok(chunks)
}

impl Chunks {
    /// Each window's encoding, in row order.
    pub fn rows(&self) -> impl Iterator<Item = &Encoding> {
        self.encodings
            .iter()
            .flat_map(|e| std::iter::once(e).chain(e.overflowing.iter()))
    }

    /// `(rows, cols)`: for each window column, the position of its token in the
    /// sample's full token sequence, or -1 (special tokens, the question of a pair,
    /// padding). Rows are padded to `cols` on the `padding` side, as `pad_batch` does.
    pub fn source_token_index(&self, cols: usize, padding: Direction) -> Result<Vec<i64>> {
        let mut out = vec![-1i64; self.windows.len() * cols];
        for (r, (e, w)) in self.rows().zip(&self.windows).enumerate() {
            if e.len() > cols {
                return Err(Error::invalid(format!(
                    "window {r} has {} tokens, more than the {cols} columns",
                    e.len()
                )));
            }
            let shift = match padding {
                Direction::Right => 0,
                Direction::Left => cols - e.len(),
            };
            let mut next = w.token_start;
            for (k, s) in e.sequence_ids.iter().enumerate() {
                if *s == Some(self.target_sequence) {
                    out[r * cols + shift + k] = next as i64;
                    next += 1;
                }
            }
            if next != w.token_end {
                return Err(Error::invalid(format!(
                    "window {r} holds tokens {}..{next}, not {}..{}; please report this",
                    w.token_start, w.token_start, w.token_end
                )));
            }
        }
        Ok(out)
    }
}

/// Check `window_to_sample` against `num_samples`, naming the bad window.
fn check_samples(window_to_sample: &[i64], num_samples: usize) -> Result<()> {
    match window_to_sample
        .iter()
        .position(|&s| s < 0 || s as usize >= num_samples)
    {
        Some(w) => Err(Error::invalid(format!(
            "window {w} belongs to sample {}, outside 0..{num_samples}",
            window_to_sample[w]
        ))),
        None => Ok(()),
    }
}

/// Majority vote of window predictions: `(labels (samples,), fractions (samples, classes))`.
///
/// `preds`: one class id per window, in `0..classes`. Ties go to the class with the
/// larger summed logits when `logits` (`(windows, classes)`) are given, then to the
/// lowest class id. Samples without windows get label -1 and NaN fractions.
pub fn vote_windows(
    window_to_sample: &[i64],
    num_samples: usize,
    preds: &[i64],
    classes: usize,
    logits: Option<&[f32]>,
) -> Result<(Vec<i64>, Vec<f32>)> {
    check_samples(window_to_sample, num_samples)?;
    if preds.len() != window_to_sample.len() {
        return Err(Error::invalid(format!(
            "{} window predictions for {} windows",
            preds.len(),
            window_to_sample.len()
        )));
    }
    if let Some(l) = logits {
        if l.len() != preds.len() * classes {
            return Err(Error::invalid(format!(
                "logits have {} values, expected {} windows x {classes} classes",
                l.len(),
                preds.len()
            )));
        }
    }
    let mut votes = vec![0u32; num_samples * classes];
    let mut sums = vec![0f64; num_samples * classes];
    let mut windows = vec![0u32; num_samples];
    for (w, (&s, &p)) in window_to_sample.iter().zip(preds).enumerate() {
        if p < 0 || p as usize >= classes {
            return Err(Error::invalid(format!(
                "window {w}: prediction {p} is outside 0..{classes}"
            )));
        }
        let s = s as usize;
        votes[s * classes + p as usize] += 1;
        windows[s] += 1;
        if let Some(l) = logits {
            for k in 0..classes {
                sums[s * classes + k] += l[w * classes + k] as f64;
            }
        }
    }
    let mut labels = vec![-1i64; num_samples];
    let mut fractions = vec![f32::NAN; num_samples * classes];
    for s in 0..num_samples {
        if windows[s] == 0 {
            continue;
        }
        let v = &votes[s * classes..(s + 1) * classes];
        let sum = &sums[s * classes..(s + 1) * classes];
        let mut best = 0;
        for k in 1..classes {
            if (v[k], sum[k]) > (v[best], sum[best]) {
                best = k;
            }
        }
        labels[s] = best as i64;
        for k in 0..classes {
            fractions[s * classes + k] = v[k] as f32 / windows[s] as f32;
        }
    }
    Ok((labels, fractions))
}

/// Mean of window logits per sample: `(labels (samples,), mean logits (samples, classes))`,
/// the label being the mean's argmax (first on ties). Samples without windows get
/// label -1 and NaN.
pub fn mean_windows(
    window_to_sample: &[i64],
    num_samples: usize,
    logits: &[f32],
    classes: usize,
) -> Result<(Vec<i64>, Vec<f32>)> {
    check_samples(window_to_sample, num_samples)?;
    if logits.len() != window_to_sample.len() * classes {
        return Err(Error::invalid(format!(
            "logits have {} values, expected {} windows x {classes} classes",
            logits.len(),
            window_to_sample.len()
        )));
    }
    let mut sums = vec![0f64; num_samples * classes];
    let mut windows = vec![0u32; num_samples];
    for (w, &s) in window_to_sample.iter().enumerate() {
        let s = s as usize;
        windows[s] += 1;
        for k in 0..classes {
            sums[s * classes + k] += logits[w * classes + k] as f64;
        }
    }
    let mut labels = vec![-1i64; num_samples];
    let mut means = vec![f32::NAN; num_samples * classes];
    for s in 0..num_samples {
        if windows[s] == 0 || classes == 0 {
            continue;
        }
        let mut best = 0;
        for k in 0..classes {
            let m = sums[s * classes + k] / windows[s] as f64;
            means[s * classes + k] = m as f32;
            if m > sums[s * classes + best] / windows[s] as f64 {
                best = k;
            }
        }
        labels[s] = best as i64;
    }
    Ok((labels, means))
}

/// Where window predictions go back: the window layout of a [`Chunks`] as arrays.
#[derive(Clone, Copy, Debug)]
pub struct Layout<'a> {
    /// `(windows, cols)`: position in the source sequence, or -1.
    pub source_token_index: &'a [i64],
    pub cols: usize,
    pub window_to_sample: &'a [i64],
    pub window_token_start: &'a [i64],
    pub window_token_end: &'a [i64],
    pub sample_num_tokens: &'a [i64],
}

impl Layout<'_> {
    fn windows(&self) -> usize {
        self.window_to_sample.len()
    }

    /// The longest sample, the second axis of merged outputs.
    pub fn max_tokens(&self) -> usize {
        self.sample_num_tokens
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(0) as usize
    }

    fn check(&self, values: usize, width: usize) -> Result<()> {
        let n = self.windows();
        if self.window_token_start.len() != n || self.window_token_end.len() != n {
            return Err(Error::invalid(format!(
                "window_to_sample, window_token_start and window_token_end differ in length ({n}, {}, {})",
                self.window_token_start.len(),
                self.window_token_end.len()
            )));
        }
        if self.source_token_index.len() != n * self.cols {
            return Err(Error::invalid(format!(
                "source_token_index has {} values, expected {n} windows x {} columns",
                self.source_token_index.len(),
                self.cols
            )));
        }
        if values != n * self.cols * width {
            return Err(Error::invalid(format!(
                "predictions have {values} values, expected {n} windows x {} columns x {width}",
                self.cols
            )));
        }
        check_samples(self.window_to_sample, self.sample_num_tokens.len())?;
        for w in 0..n {
            let s = self.window_to_sample[w] as usize;
            let (a, b) = (self.window_token_start[w], self.window_token_end[w]);
            if a < 0 || b < a || b > self.sample_num_tokens[s] {
                return Err(Error::invalid(format!(
                    "window {w}: token range {a}..{b} is outside sample {s}'s {} tokens",
                    self.sample_num_tokens[s]
                )));
            }
            for c in 0..self.cols {
                let p = self.source_token_index[w * self.cols + c];
                if p != -1 && (p < a || p >= b) {
                    return Err(Error::invalid(format!(
                        "window {w}, column {c}: source token {p} is outside the window's range {a}..{b}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Per source token, the prediction from the window where the token has the most
/// context: score `min(left, right) + 0.01 * window length`, the earliest window
/// on ties (`_check_is_max_context` of BERT's `run_squad.py`, in integers).
///
/// `values`: `(windows, cols, width)`. Returns `(samples, max_tokens, width)`,
/// `fill` where a sample has no such token.
pub fn merge_tokens_max_context<T: Copy>(
    layout: &Layout<'_>,
    values: &[T],
    width: usize,
    fill: T,
) -> Result<Vec<T>> {
    layout.check(values.len(), width)?;
    let t = layout.max_tokens();
    let samples = layout.sample_num_tokens.len();
    let mut out = vec![fill; samples * t * width];
    let mut best = vec![i64::MIN; samples * t];
    for w in 0..layout.windows() {
        let s = layout.window_to_sample[w] as usize;
        let (a, b) = (layout.window_token_start[w], layout.window_token_end[w]);
        for c in 0..layout.cols {
            let p = layout.source_token_index[w * layout.cols + c];
            if p < 0 {
                continue;
            }
            let score = 100 * (p - a).min(b - 1 - p) + (b - a);
            let slot = s * t + p as usize;
            if score > best[slot] {
                best[slot] = score;
                let src = (w * layout.cols + c) * width;
                out[slot * width..(slot + 1) * width].copy_from_slice(&values[src..src + width]);
            }
        }
    }
    Ok(out)
}

/// Per source token, the mean of its predictions over every window that holds it.
/// `values`: `(windows, cols, width)`; returns `(samples, max_tokens, width)`, NaN
/// where a sample has no such token.
pub fn merge_tokens_mean(layout: &Layout<'_>, values: &[f32], width: usize) -> Result<Vec<f32>> {
    layout.check(values.len(), width)?;
    let t = layout.max_tokens();
    let samples = layout.sample_num_tokens.len();
    let mut sums = vec![0f64; samples * t * width];
    let mut counts = vec![0u32; samples * t];
    for w in 0..layout.windows() {
        let s = layout.window_to_sample[w] as usize;
        for c in 0..layout.cols {
            let p = layout.source_token_index[w * layout.cols + c];
            if p < 0 {
                continue;
            }
            let slot = s * t + p as usize;
            counts[slot] += 1;
            let src = (w * layout.cols + c) * width;
            for k in 0..width {
                sums[slot * width + k] += values[src + k] as f64;
            }
        }
    }
    Ok(sums
        .iter()
        .enumerate()
        .map(|(i, &x)| match counts[i / width.max(1)] {
            0 => f32::NAN,
            n => (x / n as f64) as f32,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ranges_follow_truncate() {
        let mut p = positions(10);
        p.truncate(4, 1, Direction::Right).unwrap();
        assert_eq!(ranges(&p), vec![(0, 4), (3, 7), (6, 10)]);
    }

    #[test]
    fn max_context_prefers_the_centred_window() {
        // One sample of 6 tokens, windows 0..4 and 2..6; token 3 is better centred
        // in the second (min(1, 2) = 1) than in the first (min(3, 0) = 0).
        let idx = [0, 1, 2, 3, 2, 3, 4, 5];
        let layout = Layout {
            source_token_index: &idx,
            cols: 4,
            window_to_sample: &[0, 0],
            window_token_start: &[0, 2],
            window_token_end: &[4, 6],
            sample_num_tokens: &[6],
        };
        let values = [10, 11, 12, 13, 22, 23, 24, 25];
        let merged = merge_tokens_max_context(&layout, &values, 1, -1).unwrap();
        assert_eq!(merged, vec![10, 11, 12, 23, 24, 25]);
    }

    #[test]
    fn vote_breaks_ties_by_logits() {
        let (labels, fr) =
            vote_windows(&[0, 0], 1, &[0, 1], 2, Some(&[1.0, 0.0, 0.0, 3.0])).unwrap();
        assert_eq!(labels, vec![1]);
        assert_eq!(fr, vec![0.5, 0.5]);
    }
}
