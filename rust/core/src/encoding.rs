//! The result of tokenizing one input: ids plus everything label alignment and
//! chunking need (offsets, word ids, sequence ids), and the overflowing windows.
//!
//! `truncate`, `merge_with` and `pad` reproduce Hugging Face `tokenizers`'
//! `Encoding` semantics, because window order and content are part of the
//! parity contract (`return_overflowing_tokens`).

use crate::error::{Error, Result};

pub type Offsets = (u32, u32);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Character offsets into the original string (into the word, for pre-split input).
    pub offsets: Vec<Offsets>,
    pub word_ids: Vec<Option<u32>>,
    /// 0 for the first sequence, 1 for the pair; `None` for special and padding tokens.
    pub sequence_ids: Vec<Option<u8>>,
    pub special_tokens_mask: Vec<u8>,
    pub attention_mask: Vec<u8>,
    pub overflowing: Vec<Encoding>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Left,
    Right,
}

impl Encoding {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Empty every field, keeping the allocations.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.type_ids.clear();
        self.offsets.clear();
        self.word_ids.clear();
        self.sequence_ids.clear();
        self.special_tokens_mask.clear();
        self.attention_mask.clear();
        self.overflowing.clear();
    }

    pub fn with_capacity(n: usize) -> Self {
        Encoding {
            ids: Vec::with_capacity(n),
            type_ids: Vec::with_capacity(n),
            offsets: Vec::with_capacity(n),
            word_ids: Vec::with_capacity(n),
            sequence_ids: Vec::with_capacity(n),
            special_tokens_mask: Vec::with_capacity(n),
            attention_mask: Vec::with_capacity(n),
            overflowing: Vec::new(),
        }
    }

    /// Append one ordinary token.
    #[inline]
    pub fn push(&mut self, id: u32, offsets: Offsets, word: Option<u32>) {
        self.ids.push(id);
        self.type_ids.push(0);
        self.offsets.push(offsets);
        self.word_ids.push(word);
        self.sequence_ids.push(Some(0));
        self.special_tokens_mask.push(0);
        self.attention_mask.push(1);
    }

    /// A run of special tokens, as a template inserts them.
    pub fn special(ids: &[u32], type_id: u32) -> Self {
        let n = ids.len();
        Encoding {
            ids: ids.to_vec(),
            type_ids: vec![type_id; n],
            offsets: vec![(0, 0); n],
            word_ids: vec![None; n],
            sequence_ids: vec![None; n],
            special_tokens_mask: vec![1; n],
            attention_mask: vec![1; n],
            overflowing: Vec::new(),
        }
    }

    fn slice(&self, start: usize, stop: usize) -> Encoding {
        Encoding {
            ids: self.ids[start..stop].to_vec(),
            type_ids: self.type_ids[start..stop].to_vec(),
            offsets: self.offsets[start..stop].to_vec(),
            word_ids: self.word_ids[start..stop].to_vec(),
            sequence_ids: self.sequence_ids[start..stop].to_vec(),
            special_tokens_mask: self.special_tokens_mask[start..stop].to_vec(),
            attention_mask: self.attention_mask[start..stop].to_vec(),
            overflowing: Vec::new(),
        }
    }

    /// Mark every token (and every overflowing window) as belonging to `sequence`
    /// with token type `type_id`.
    pub fn set_sequence(&mut self, sequence: u8, type_id: u32) {
        self.sequence_ids
            .iter_mut()
            .for_each(|s| *s = Some(sequence));
        self.type_ids.iter_mut().for_each(|t| *t = type_id);
    }

    /// Keep the first `max_len` tokens (or the last, for `Direction::Left`); the
    /// rest becomes overflowing windows of `max_len` tokens that overlap by `stride`.
    pub fn truncate(&mut self, max_len: usize, stride: usize, direction: Direction) -> Result<()> {
        let len = self.len();
        if max_len >= len {
            return Ok(());
        }
        if max_len == 0 {
            let all = std::mem::take(self);
            self.overflowing.push(all);
            return Ok(());
        }
        if stride >= max_len {
            return Err(Error::invalid(format!(
                "stride ({stride}) must be smaller than the room left for tokens ({max_len}; \
                 max_length minus the special tokens)"
            )));
        }
        let step = max_len - stride;
        let mut ranges = Vec::new();
        match direction {
            Direction::Right => {
                let mut start = 0;
                loop {
                    let stop = (start + max_len).min(len);
                    ranges.push((start, stop));
                    if stop == len {
                        break;
                    }
                    start += step;
                }
            }
            Direction::Left => {
                let mut stop = len;
                loop {
                    let start = stop.saturating_sub(max_len);
                    ranges.push((start, stop));
                    if start == 0 || stop <= step {
                        break;
                    }
                    stop -= step;
                }
            }
        }
        let mut first = self.slice(ranges[0].0, ranges[0].1);
        first.overflowing = ranges[1..].iter().map(|&(s, e)| self.slice(s, e)).collect();
        *self = first;
        Ok(())
    }

    /// Concatenate `pair` after `self`, combining overflowing windows the way
    /// Hugging Face does: each of ours with the pair and each of its windows, then
    /// ourselves with each of its windows.
    pub fn merge_with(&mut self, pair: Encoding) {
        let mut overflowing = Vec::new();
        for mine in &self.overflowing {
            let mut e = mine.clone();
            e.merge_with(pair.clone());
            overflowing.push(e);
            for theirs in &pair.overflowing {
                let mut e = mine.clone();
                e.merge_with(theirs.clone());
                overflowing.push(e);
            }
        }
        for theirs in &pair.overflowing {
            let mut e = self.clone();
            e.merge_with(theirs.clone());
            overflowing.push(e);
        }
        self.ids.extend(pair.ids);
        self.type_ids.extend(pair.type_ids);
        self.offsets.extend(pair.offsets);
        self.word_ids.extend(pair.word_ids);
        self.sequence_ids.extend(pair.sequence_ids);
        self.special_tokens_mask.extend(pair.special_tokens_mask);
        self.attention_mask.extend(pair.attention_mask);
        self.overflowing = overflowing;
    }

    /// Pad (and pad every overflowing window) to `target` tokens.
    pub fn pad(&mut self, target: usize, pad_id: u32, pad_type_id: u32, direction: Direction) {
        for o in &mut self.overflowing {
            o.pad(target, pad_id, pad_type_id, direction);
        }
        if self.len() >= target {
            return;
        }
        let n = target - self.len();
        fn fill<T: Clone>(v: &mut Vec<T>, n: usize, value: T, direction: Direction) {
            match direction {
                Direction::Right => v.extend(std::iter::repeat_n(value, n)),
                Direction::Left => {
                    v.splice(0..0, std::iter::repeat_n(value, n));
                }
            }
        }
        fill(&mut self.ids, n, pad_id, direction);
        fill(&mut self.type_ids, n, pad_type_id, direction);
        fill(&mut self.offsets, n, (0, 0), direction);
        fill(&mut self.word_ids, n, None, direction);
        fill(&mut self.sequence_ids, n, None, direction);
        fill(&mut self.special_tokens_mask, n, 1, direction);
        fill(&mut self.attention_mask, n, 0, direction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(n: u32) -> Encoding {
        let mut e = Encoding::default();
        for i in 0..n {
            e.push(i, (i, i + 1), Some(i));
        }
        e
    }

    #[test]
    fn truncate_right_with_stride_makes_overlapping_windows() {
        let mut e = enc(5);
        e.truncate(4, 2, Direction::Right).unwrap();
        assert_eq!(e.ids, vec![0, 1, 2, 3]);
        assert_eq!(e.overflowing.len(), 1);
        assert_eq!(e.overflowing[0].ids, vec![2, 3, 4]);
    }

    #[test]
    fn truncate_left_keeps_the_end() {
        let mut e = enc(5);
        e.truncate(2, 0, Direction::Left).unwrap();
        assert_eq!(e.ids, vec![3, 4]);
        let windows: Vec<Vec<u32>> = e.overflowing.iter().map(|o| o.ids.clone()).collect();
        assert_eq!(windows, vec![vec![1, 2], vec![0]]);
    }

    #[test]
    fn stride_too_large_is_an_error() {
        assert!(enc(5).truncate(2, 2, Direction::Right).is_err());
    }
}
