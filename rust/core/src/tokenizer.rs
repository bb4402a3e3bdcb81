//! The BERT WordPiece pipeline: added tokens → `BertNormalizer` →
//! `BertPreTokenizer` → LinMaxMatch → truncation → template → padding.

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::encoding::{Direction, Encoding};
use crate::error::{Error, Result};
use crate::normalize::{self, Aligned};
use crate::spec::{NormalizerFlags, Piece, Template, TokenizerSpec};
use crate::wordpiece::{self, WordPiece};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncationStrategy {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub max_length: usize,
    pub stride: usize,
    pub strategy: TruncationStrategy,
    pub direction: Direction,
}

/// How to encode: the knobs of `encode` that are not the text itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    pub add_special_tokens: bool,
    pub truncation: Option<Truncation>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            add_special_tokens: true,
            truncation: None,
        }
    }
}

/// One input: a text, or words already split by the caller.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Text(&'a str),
    Words(&'a [&'a str]),
}

pub struct Tokenizer {
    spec: TokenizerSpec,
    vocab: Arc<Vec<String>>,
    token_to_id: HashMap<String, u32>,
    wordpiece: WordPiece,
    /// Matches added tokens in the raw text (leftmost-longest, like `tokenizers`).
    added: Option<(AhoCorasick, Vec<u32>)>,
    /// Bytes that start some added token.
    added_first_bytes: [bool; 256],
    unk_id: u32,
    pad_id: u32,
}

/// Per-thread buffers, reused across inputs so that encoding allocates only its result.
#[derive(Default)]
struct Buffers {
    a: Encoding,
    b: Encoding,
    scratch: Scratch,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// Scratch space for one word at a time.
#[derive(Default)]
struct Scratch {
    chars: Vec<Aligned>,
    word: Vec<u8>,
    pieces: Vec<wordpiece::Piece>,
    byte_starts: Vec<u32>,
}

impl Tokenizer {
    pub fn new(spec: TokenizerSpec) -> Result<Self> {
        let token_to_id: HashMap<String, u32> = spec
            .vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let unk_id = *token_to_id
            .get(&spec.unk_token)
            .ok_or_else(|| Error::BadFile {
                path: spec.source.clone(),
                message: format!(
                    "unknown token {:?} is not in the vocabulary",
                    spec.unk_token
                ),
            })?;
        let pad_id = spec
            .pad_token
            .as_ref()
            .and_then(|p| token_to_id.get(p).copied())
            .unwrap_or(0);
        let wordpiece = WordPiece::new(
            &spec.vocab,
            &spec.continuing_subword_prefix,
            unk_id,
            spec.max_input_chars_per_word,
        );
        let added = if spec.added_tokens.is_empty() {
            None
        } else {
            let patterns: Vec<&str> = spec
                .added_tokens
                .iter()
                .map(|t| t.content.as_str())
                .collect();
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .map_err(|e| Error::bad_file(&spec.source, format!("added tokens: {e}")))?;
            Some((ac, spec.added_tokens.iter().map(|t| t.id).collect()))
        };
        let mut added_first_bytes = [false; 256];
        for t in &spec.added_tokens {
            if let Some(&b) = t.content.as_bytes().first() {
                added_first_bytes[b as usize] = true;
            }
        }
        Ok(Tokenizer {
            added_first_bytes,
            vocab: Arc::new(spec.vocab.clone()),
            spec,
            token_to_id,
            wordpiece,
            added,
            unk_id,
            pad_id,
        })
    }

    pub fn from_path(path: &std::path::Path) -> Result<Self> {
        Self::new(TokenizerSpec::from_path(path)?)
    }

    pub fn spec(&self) -> &TokenizerSpec {
        &self.spec
    }
    pub fn vocab(&self) -> &Arc<Vec<String>> {
        &self.vocab
    }
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
    pub fn template(&self) -> Option<&Template> {
        self.spec.template.as_ref()
    }
    pub fn normalizer(&self) -> Option<&NormalizerFlags> {
        self.spec.normalizer.as_ref()
    }

    /// Number of special tokens the template adds.
    pub fn num_special_tokens(&self, is_pair: bool) -> usize {
        self.template().map_or(0, |t| t.added_tokens(is_pair))
    }

    /// Encode `input` (and `pair`) with special tokens and truncation, no padding.
    pub fn encode(
        &self,
        input: Input,
        pair: Option<Input>,
        opts: &EncodeOptions,
    ) -> Result<Encoding> {
        if let Some(t) = &opts.truncation {
            self.check_stride(t)?;
        }
        BUFFERS.with(|cell| {
            let buffers = &mut *cell.borrow_mut();
            let Buffers { a, b, scratch } = buffers;
            self.encode_input_into(input, a, scratch);
            if let Some(p) = pair {
                self.encode_input_into(p, b, scratch);
            }
            let b = pair.map(|_| &*b);
            let total = a.len() + b.map_or(0, Encoding::len);
            let added = if opts.add_special_tokens {
                self.num_special_tokens(b.is_some())
            } else {
                0
            };
            let fits = opts
                .truncation
                .is_none_or(|t| t.max_length > added && total + added <= t.max_length);
            if fits {
                // The common case: nothing to cut, so no windows to combine; build
                // the result in one allocation per field.
                Ok(self.assemble(a, b, opts.add_special_tokens))
            } else {
                self.post_process(a.clone(), b.cloned(), opts)
            }
        })
    }

    /// Reject a stride that leaves no room, whatever the input, as `tokenizers`'
    /// `with_truncation` (and so `transformers`) does when truncation is set up:
    /// `stride > max_length - special tokens of a single sequence` is an error
    /// even for inputs that fit or for `add_special_tokens=false`. Without this
    /// check such a stride only failed on inputs long enough to be cut.
    /// (`tokenizers` computes the difference in wrapping unsigned arithmetic, so it
    /// skips the check when `max_length` is below the special-token count;
    /// `checked_sub` does the same.)
    fn check_stride(&self, t: &Truncation) -> Result<()> {
        let special = self.num_special_tokens(false);
        match t.max_length.checked_sub(special) {
            Some(room) if t.stride > room => Err(Error::invalid(format!(
                "stride ({}) must not exceed max_length minus the special tokens of a single \
                 sequence ({} - {special} = {room})",
                t.stride, t.max_length
            ))),
            _ => Ok(()),
        }
    }

    /// Special tokens + sequences, when no truncation happens (see `post_process`).
    fn assemble(&self, a: &Encoding, b: Option<&Encoding>, add_special_tokens: bool) -> Encoding {
        let is_pair = b.is_some();
        let n = a.len() + b.map_or(0, Encoding::len) + self.num_special_tokens(is_pair);
        let mut out = Encoding::with_capacity(n);
        let extend = |out: &mut Encoding, e: &Encoding, seq: u8, type_id: u32| {
            out.ids.extend_from_slice(&e.ids);
            out.type_ids.extend(std::iter::repeat_n(type_id, e.len()));
            out.offsets.extend_from_slice(&e.offsets);
            out.word_ids.extend_from_slice(&e.word_ids);
            out.sequence_ids
                .extend(std::iter::repeat_n(Some(seq), e.len()));
            out.special_tokens_mask
                .extend(std::iter::repeat_n(0, e.len()));
            out.attention_mask.extend(std::iter::repeat_n(1, e.len()));
        };
        match self.template() {
            Some(t) => {
                for piece in if is_pair { &t.pair } else { &t.single } {
                    match piece {
                        Piece::Special { ids, type_id } => {
                            if add_special_tokens {
                                for &id in ids {
                                    out.ids.push(id);
                                    out.type_ids.push(*type_id);
                                    out.offsets.push((0, 0));
                                    out.word_ids.push(None);
                                    out.sequence_ids.push(None);
                                    out.special_tokens_mask.push(1);
                                    out.attention_mask.push(1);
                                }
                            }
                        }
                        Piece::SequenceA { type_id } => extend(&mut out, a, 0, *type_id),
                        Piece::SequenceB { type_id } => {
                            if let Some(b) = b {
                                extend(&mut out, b, 1, *type_id)
                            }
                        }
                    }
                }
            }
            None => {
                extend(&mut out, a, 0, 0);
                if let Some(b) = b {
                    extend(&mut out, b, 1, 1);
                }
            }
        }
        out
    }

    /// Encode one text or word list into tokens, without special tokens. Offsets
    /// are character offsets (per word, for pre-split input, as in `tokenizers`).
    pub fn encode_input(&self, input: Input) -> Encoding {
        let mut enc = Encoding::default();
        self.encode_input_into(input, &mut enc, &mut Scratch::default());
        enc
    }

    fn encode_input_into(&self, input: Input, enc: &mut Encoding, scratch: &mut Scratch) {
        enc.clear();
        match input {
            Input::Text(text) => {
                let mut next_word = 0u32;
                self.encode_text(text, None, &mut next_word, enc, scratch);
                bytes_to_chars(text, &mut enc.offsets[..]);
            }
            Input::Words(words) => {
                for (w, word) in words.iter().enumerate() {
                    let first = enc.len();
                    let mut next_word = 0u32;
                    self.encode_text(word, Some(w as u32), &mut next_word, enc, scratch);
                    bytes_to_chars(word, &mut enc.offsets[first..]);
                }
            }
        }
    }

    /// Append the tokens of `text` to `enc` with byte offsets into `text`. Word ids
    /// count pre-tokenized words from `next_word` unless `fixed_word` is given.
    fn encode_text(
        &self,
        text: &str,
        fixed_word: Option<u32>,
        next_word: &mut u32,
        enc: &mut Encoding,
        scratch: &mut Scratch,
    ) {
        let mut last = 0;
        // Most texts contain no byte that can start an added token (`[` for BERT):
        // one scan over the bytes is cheaper than setting up the automaton search.
        let may_contain_added = text.bytes().any(|b| self.added_first_bytes[b as usize]);
        if let (Some((ac, ids)), true) = (&self.added, may_contain_added) {
            for m in ac.find_iter(text) {
                self.encode_plain(
                    &text[last..m.start()],
                    last as u32,
                    fixed_word,
                    next_word,
                    enc,
                    scratch,
                );
                let word = fixed_word.unwrap_or(*next_word);
                *next_word += 1;
                enc.push(
                    ids[m.pattern().as_usize()],
                    (m.start() as u32, m.end() as u32),
                    Some(word),
                );
                last = m.end();
            }
        }
        self.encode_plain(
            &text[last..],
            last as u32,
            fixed_word,
            next_word,
            enc,
            scratch,
        );
    }

    /// Normalize, pre-tokenize and WordPiece a stretch of text with no added tokens in it.
    fn encode_plain(
        &self,
        text: &str,
        base: u32,
        fixed_word: Option<u32>,
        next_word: &mut u32,
        enc: &mut Encoding,
        scratch: &mut Scratch,
    ) {
        let bytes = text.as_bytes();
        let flags = self.spec.normalizer.as_ref();
        let lowercase = flags.is_some_and(|f| f.lowercase);
        let mut seg_start = 0;
        while seg_start < bytes.len() {
            let seg_end = bytes[seg_start..]
                .iter()
                .position(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .map_or(bytes.len(), |p| seg_start + p);
            if seg_end > seg_start {
                let seg = &bytes[seg_start..seg_end];
                let seg_base = base + seg_start as u32;
                if flags.is_some() && normalize::is_plain_ascii(seg) {
                    normalize::ascii_words(seg, |s, e| {
                        scratch.word.clear();
                        if lowercase {
                            scratch
                                .word
                                .extend(seg[s..e].iter().map(u8::to_ascii_lowercase));
                        } else {
                            scratch.word.extend_from_slice(&seg[s..e]);
                        }
                        scratch.pieces.clear();
                        self.wordpiece
                            .tokenize_word(&scratch.word, e - s, &mut scratch.pieces);
                        let word = fixed_word.unwrap_or(*next_word);
                        *next_word += 1;
                        let at = seg_base + s as u32;
                        for p in &scratch.pieces {
                            enc.push(p.id, (at + p.start, at + p.end), Some(word));
                        }
                    });
                } else {
                    // `seg` was cut at ASCII bytes, so it is valid UTF-8 on its own.
                    let seg_str = &text[seg_start..seg_end];
                    self.encode_exact(seg_str, seg_base, fixed_word, next_word, enc, scratch);
                }
            }
            seg_start = seg_end + 1;
        }
    }

    /// The full Unicode path for a segment that is not plain ASCII.
    fn encode_exact(
        &self,
        seg: &str,
        base: u32,
        fixed_word: Option<u32>,
        next_word: &mut u32,
        enc: &mut Encoding,
        scratch: &mut Scratch,
    ) {
        let mut chars = std::mem::take(&mut scratch.chars);
        normalize::normalize(seg, base, self.spec.normalizer.as_ref(), &mut chars);
        normalize::split_words(&chars, |s, e| {
            let word_chars = &chars[s..e];
            scratch.word.clear();
            scratch.byte_starts.clear();
            for a in word_chars {
                scratch.byte_starts.push(scratch.word.len() as u32);
                let mut buf = [0u8; 4];
                scratch
                    .word
                    .extend_from_slice(a.c.encode_utf8(&mut buf).as_bytes());
            }
            scratch.pieces.clear();
            self.wordpiece
                .tokenize_word(&scratch.word, word_chars.len(), &mut scratch.pieces);
            let word = fixed_word.unwrap_or(*next_word);
            *next_word += 1;
            for p in &scratch.pieces {
                // Chars whose first byte lies in the piece's byte range.
                let first = scratch.byte_starts.partition_point(|&b| b < p.start);
                let last = scratch.byte_starts.partition_point(|&b| b < p.end);
                let covered = &word_chars[first..last];
                let start = covered.iter().map(|a| a.start).min().unwrap_or(0);
                let end = covered.iter().map(|a| a.end).max().unwrap_or(0);
                enc.push(p.id, (start, end), Some(word));
            }
        });
        scratch.chars = chars;
    }

    /// Truncate, add special tokens and merge, as `Tokenizer::post_process` does.
    pub fn post_process(
        &self,
        mut a: Encoding,
        mut b: Option<Encoding>,
        opts: &EncodeOptions,
    ) -> Result<Encoding> {
        if let Some(t) = opts.truncation {
            let added = if opts.add_special_tokens {
                self.num_special_tokens(b.is_some())
            } else {
                0
            };
            let max_length = t.max_length.checked_sub(added).ok_or_else(|| {
                Error::invalid(format!(
                    "max_length ({}) is smaller than the {added} special tokens that must be added",
                    t.max_length
                ))
            })?;
            truncate_pair(&mut a, b.as_mut(), &Truncation { max_length, ..t })?;
        }
        // `PostProcessor::process`: sequence i gets sequence id i and type id i,
        // its windows only the sequence id.
        let mut seqs = vec![a];
        seqs.extend(b);
        for (i, e) in seqs.iter_mut().enumerate() {
            e.set_sequence(i as u8, i as u32);
            // Windows keep the type id the sequence was encoded with (0 or 1).
            for o in &mut e.overflowing {
                o.set_sequence(i as u8, i as u32);
            }
        }
        let is_pair = seqs.len() == 2;
        let mut parts = Vec::new();
        match self.template() {
            Some(template) => {
                let pieces = if is_pair {
                    &template.pair
                } else {
                    &template.single
                };
                let mut seqs: Vec<Option<Encoding>> = seqs.into_iter().map(Some).collect();
                for piece in pieces {
                    match piece {
                        Piece::Special { ids, type_id } => {
                            if opts.add_special_tokens {
                                parts.push(Encoding::special(ids, *type_id));
                            }
                        }
                        Piece::SequenceA { type_id } | Piece::SequenceB { type_id } => {
                            let i = usize::from(matches!(piece, Piece::SequenceB { .. }));
                            let mut e =
                                seqs.get_mut(i).and_then(Option::take).ok_or_else(|| {
                                    Error::invalid(
                                        "the template names a sequence that was not given",
                                    )
                                })?;
                            e.set_sequence(i as u8, *type_id);
                            parts.push(e);
                        }
                    }
                }
            }
            None => parts = seqs,
        }
        let mut merged = Encoding::default();
        for part in parts {
            merged.merge_with(part);
        }
        Ok(merged)
    }
}

/// `truncate_encodings` of `tokenizers`.
pub fn truncate_pair(a: &mut Encoding, b: Option<&mut Encoding>, t: &Truncation) -> Result<()> {
    let total = a.len() + b.as_ref().map_or(0, |b| b.len());
    if t.max_length == 0 {
        a.truncate(0, t.stride, t.direction)?;
        if let Some(b) = b {
            b.truncate(0, t.stride, t.direction)?;
        }
        return Ok(());
    }
    if total <= t.max_length {
        return Ok(());
    }
    let to_remove = total - t.max_length;
    match t.strategy {
        TruncationStrategy::LongestFirst => match b {
            Some(b) => {
                let (mut n1, mut n2) = (a.len(), b.len());
                let swap = n1 > n2;
                if swap {
                    std::mem::swap(&mut n1, &mut n2);
                }
                if n1 > t.max_length {
                    n2 = n1;
                } else {
                    n2 = n1.max(t.max_length - n1);
                }
                if n1 + n2 > t.max_length {
                    n1 = t.max_length / 2;
                    n2 = n1 + t.max_length % 2;
                }
                if swap {
                    std::mem::swap(&mut n1, &mut n2);
                }
                a.truncate(n1, t.stride, t.direction)?;
                b.truncate(n2, t.stride, t.direction)?;
            }
            None => a.truncate(total - to_remove, t.stride, t.direction)?,
        },
        TruncationStrategy::OnlyFirst | TruncationStrategy::OnlySecond => {
            let target = if t.strategy == TruncationStrategy::OnlyFirst {
                a
            } else {
                b.ok_or_else(|| Error::invalid("truncation 'only_second' needs a second sequence"))?
            };
            let len = target.len();
            if len > to_remove {
                target.truncate(len - to_remove, t.stride, t.direction)?;
            } else {
                return Err(Error::invalid(format!(
                    "cannot truncate: the sequence to truncate has {len} tokens but {to_remove} must go \
                     (use truncation='longest_first')"
                )));
            }
        }
    }
    Ok(())
}

/// Turn byte offsets into `text` into character offsets, in place.
pub fn bytes_to_chars(text: &str, offsets: &mut [(u32, u32)]) {
    if text.is_ascii() || offsets.is_empty() {
        return;
    }
    // chars_before[b] = number of chars starting before byte b, for every char boundary b.
    let mut chars_before = vec![0u32; text.len() + 1];
    let mut n = 0u32;
    for (b, _) in text.char_indices() {
        chars_before[b] = n;
        n += 1;
    }
    chars_before[text.len()] = n;
    for o in offsets {
        *o = (chars_before[o.0 as usize], chars_before[o.1 as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny uncased BERT tokenizer: `[CLS] $A [SEP]` around WordPiece over `vocab`.
    fn tokenizer(vocab: &[&str]) -> Tokenizer {
        let vocab: Vec<String> = vocab.iter().map(|t| t.to_string()).collect();
        let id = |t: &str| vocab.iter().position(|v| v == t).unwrap() as u32;
        let spec = TokenizerSpec {
            template: Some(Template::bert(id("[CLS]"), id("[SEP]"))),
            added_tokens: ["[CLS]", "[SEP]"]
                .iter()
                .map(|t| crate::spec::AddedToken {
                    content: t.to_string(),
                    id: id(t),
                    special: true,
                })
                .collect(),
            unk_token: "[UNK]".into(),
            pad_token: Some("[PAD]".into()),
            continuing_subword_prefix: "##".into(),
            max_input_chars_per_word: 100,
            normalizer: Some(NormalizerFlags::uncased()),
            source: "test".into(),
            vocab,
        };
        Tokenizer::new(spec).unwrap()
    }

    fn truncating(max_length: usize, stride: usize, add_special_tokens: bool) -> EncodeOptions {
        EncodeOptions {
            add_special_tokens,
            truncation: Some(Truncation {
                max_length,
                stride,
                strategy: TruncationStrategy::LongestFirst,
                direction: Direction::Right,
            }),
        }
    }

    #[test]
    fn stride_beyond_room_is_an_error_even_when_the_input_fits() {
        let tok = tokenizer(&["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]);
        let short = Input::Text("a");
        // tokenizers: max_length 6 - 2 special tokens = 4 < stride 5 -> error at set-up.
        assert!(tok.encode(short, None, &truncating(6, 5, true)).is_err());
        // ... also when special tokens are not added (it checks at set-up, not per input).
        assert!(tok.encode(short, None, &truncating(2, 1, false)).is_err());
        // stride == room passes the set-up check; it only fails if something is cut.
        assert!(tok.encode(short, None, &truncating(6, 4, true)).is_ok());
        // max_length below the special tokens: tokenizers' check wraps around and passes.
        assert!(tok.encode(short, None, &truncating(1, 1, false)).is_ok());
    }
}
