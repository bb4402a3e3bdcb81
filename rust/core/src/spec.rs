//! What a BERT WordPiece tokenizer is made of, read from a Hugging Face model
//! folder: `tokenizer.json` when present, else `vocab.txt` (+ `tokenizer_config.json`).
//!
//! Anything this encoder does not reproduce exactly is reported as
//! [`Error::Unsupported`], never approximated: the Python layer then falls back
//! to Hugging Face `tokenizers` for ids and offsets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// The flags of Hugging Face's `BertNormalizer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizerFlags {
    pub clean_text: bool,
    pub handle_chinese_chars: bool,
    pub strip_accents: bool,
    pub lowercase: bool,
}

impl NormalizerFlags {
    pub fn uncased() -> Self {
        Self {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: true,
            lowercase: true,
        }
    }
    pub fn cased() -> Self {
        Self {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: false,
            lowercase: false,
        }
    }
}

/// A token matched verbatim in the raw text before normalization
/// (`added_tokens` with `normalized: false`, e.g. `[CLS]`, `[SEP]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub id: u32,
    pub special: bool,
}

/// One piece of a post-processing template such as `[CLS] $A [SEP] $B:1 [SEP]:1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Special { ids: Vec<u32>, type_id: u32 },
    SequenceA { type_id: u32 },
    SequenceB { type_id: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub single: Vec<Piece>,
    pub pair: Vec<Piece>,
}

impl Template {
    /// `[CLS] $A [SEP]` / `[CLS] $A [SEP] $B:1 [SEP]:1`, what `BertProcessing` does.
    pub fn bert(cls: u32, sep: u32) -> Self {
        let special = |id, type_id| Piece::Special {
            ids: vec![id],
            type_id,
        };
        Template {
            single: vec![
                special(cls, 0),
                Piece::SequenceA { type_id: 0 },
                special(sep, 0),
            ],
            pair: vec![
                special(cls, 0),
                Piece::SequenceA { type_id: 0 },
                special(sep, 0),
                Piece::SequenceB { type_id: 1 },
                special(sep, 1),
            ],
        }
    }

    pub fn added_tokens(&self, is_pair: bool) -> usize {
        let pieces = if is_pair { &self.pair } else { &self.single };
        pieces
            .iter()
            .map(|p| match p {
                Piece::Special { ids, .. } => ids.len(),
                _ => 0,
            })
            .sum()
    }
}

/// Everything needed to build a [`crate::Tokenizer`].
#[derive(Clone, Debug)]
pub struct TokenizerSpec {
    /// Token strings indexed by id.
    pub vocab: Vec<String>,
    pub unk_token: String,
    pub continuing_subword_prefix: String,
    pub max_input_chars_per_word: usize,
    /// `None` when the tokenizer has no normalizer at all.
    pub normalizer: Option<NormalizerFlags>,
    pub added_tokens: Vec<AddedToken>,
    pub template: Option<Template>,
    pub pad_token: Option<String>,
    /// The file the spec was read from, for error messages.
    pub source: PathBuf,
}

impl TokenizerSpec {
    pub fn id_of(&self, token: &str) -> Option<u32> {
        self.vocab.iter().position(|t| t == token).map(|i| i as u32)
    }

    /// Read a model folder, a `tokenizer.json` or a `vocab.txt`.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            let json = path.join("tokenizer.json");
            if json.is_file() {
                return Self::from_tokenizer_json(&json);
            }
            let vocab = path.join("vocab.txt");
            if vocab.is_file() {
                return Self::from_vocab_txt(&vocab);
            }
            return Err(Error::bad_file(
                path,
                "model folder has neither tokenizer.json nor vocab.txt",
            ));
        }
        if !path.exists() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_tokenizer_json(path)
        } else {
            Self::from_vocab_txt(path)
        }
    }

    /// Parse a Hugging Face `tokenizer.json`.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let text = read_utf8(path)?;
        let root: Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(path, format!("not valid JSON: {e}")))?;
        let field = |v: &Value, name: &str| -> Option<Value> { v.get(name).cloned() };
        let model = root
            .get("model")
            .ok_or_else(|| Error::bad_file(path, "missing field `model`"))?;
        if !model.is_object() {
            return Err(Error::bad_file(path, "`model` is not an object"));
        }
        let model_type = model.get("type").and_then(Value::as_str).unwrap_or("");
        if model_type != "WordPiece" {
            return Err(Error::Unsupported(format!(
                "{}: model type {model_type:?} is not WordPiece",
                path.display()
            )));
        }
        let vocab_map = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_file(path, "`model.vocab` is missing or not an object"))?;
        if vocab_map.is_empty() {
            return Err(Error::bad_file(path, "`model.vocab` is empty"));
        }
        let mut pairs = Vec::with_capacity(vocab_map.len());
        for (token, id) in vocab_map {
            let id = id
                .as_u64()
                .filter(|&i| i < u32::MAX as u64)
                .ok_or_else(|| {
                    Error::bad_file(path, format!("`model.vocab[{token:?}]` is not a token id"))
                })?;
            pairs.push((token.clone(), id as u32));
        }
        let size = pairs
            .iter()
            .map(|(_, id)| *id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut vocab = vec![String::new(); size];
        let mut seen = vec![false; size];
        for (token, id) in pairs {
            if seen[id as usize] {
                return Err(Error::bad_file(
                    path,
                    format!("token id {id} is used twice in `model.vocab`"),
                ));
            }
            seen[id as usize] = true;
            vocab[id as usize] = token;
        }
        if let Some(hole) = seen.iter().position(|s| !s) {
            return Err(Error::bad_file(
                path,
                format!("`model.vocab` has no token with id {hole}"),
            ));
        }
        let str_field = |name: &str, default: &str| -> String {
            model
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        let unk_token = str_field("unk_token", "[UNK]");
        let continuing_subword_prefix = str_field("continuing_subword_prefix", "##");
        let max_input_chars_per_word = model
            .get("max_input_chars_per_word")
            .and_then(Value::as_u64)
            .unwrap_or(100) as usize;

        let normalizer = match field(&root, "normalizer") {
            None | Some(Value::Null) => None,
            Some(n) => Some(parse_bert_normalizer(path, &n)?),
        };
        match root
            .get("pre_tokenizer")
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        {
            Some("BertPreTokenizer") => {}
            other => {
                return Err(Error::Unsupported(format!(
                    "{}: pre-tokenizer {other:?} is not BertPreTokenizer",
                    path.display()
                )))
            }
        }
        let mut added_tokens = Vec::new();
        if let Some(list) = root.get("added_tokens").and_then(Value::as_array) {
            for (i, t) in list.iter().enumerate() {
                added_tokens.push(parse_added_token(path, i, t)?);
            }
        }
        let lookup: HashMap<&str, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let template = match root.get("post_processor") {
            None | Some(Value::Null) => None,
            Some(p) => Some(parse_post_processor(path, p, &lookup)?),
        };
        let pad_token = root
            .get("padding")
            .and_then(|p| p.get("pad_token"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| lookup.contains_key("[PAD]").then(|| "[PAD]".to_string()));
        let spec = TokenizerSpec {
            vocab,
            unk_token,
            continuing_subword_prefix,
            max_input_chars_per_word,
            normalizer,
            added_tokens,
            template,
            pad_token,
            source: path.to_path_buf(),
        };
        spec.check_unk()?;
        Ok(spec)
    }

    /// Build the spec that `transformers` would convert a slow `BertTokenizer` into,
    /// from `vocab.txt` and the flags in a neighbouring `tokenizer_config.json`.
    pub fn from_vocab_txt(path: &Path) -> Result<Self> {
        let text = read_utf8(path)?;
        // transformers' `load_vocab` strips only the trailing newline of each line.
        let vocab: Vec<String> = text
            .split_inclusive('\n')
            .map(|l| l.strip_suffix('\n').unwrap_or(l).to_string())
            .collect();
        if vocab.is_empty() {
            return Err(Error::bad_file(path, "vocabulary is empty"));
        }
        let config_path = path.with_file_name("tokenizer_config.json");
        let config: Value = if config_path.is_file() {
            serde_json::from_str(&read_utf8(&config_path)?)
                .map_err(|e| Error::bad_file(&config_path, format!("not valid JSON: {e}")))?
        } else {
            Value::Null
        };
        let flag = |name: &str, default: bool| {
            config.get(name).and_then(Value::as_bool).unwrap_or(default)
        };
        let token = |name: &str, default: &str| -> String {
            match config.get(name) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => o
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_string(),
                _ => default.to_string(),
            }
        };
        let lowercase = flag("do_lower_case", true);
        let strip_accents = config
            .get("strip_accents")
            .and_then(Value::as_bool)
            .unwrap_or(lowercase);
        let normalizer = NormalizerFlags {
            clean_text: true,
            handle_chinese_chars: flag("tokenize_chinese_chars", true),
            strip_accents,
            lowercase,
        };
        let lookup: HashMap<&str, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let names = [
            "pad_token",
            "unk_token",
            "cls_token",
            "sep_token",
            "mask_token",
        ];
        let defaults = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        let mut added_tokens = Vec::new();
        let mut resolved = Vec::new();
        for (name, default) in names.iter().zip(defaults) {
            let content = token(name, default);
            let id = *lookup.get(content.as_str()).ok_or_else(|| {
                Error::bad_file(path, format!("{name} {content:?} is not in the vocabulary"))
            })?;
            added_tokens.push(AddedToken {
                content: content.clone(),
                id,
                special: true,
            });
            resolved.push((content, id));
        }
        let spec = TokenizerSpec {
            template: Some(Template::bert(resolved[2].1, resolved[3].1)),
            unk_token: resolved[1].0.clone(),
            pad_token: Some(resolved[0].0.clone()),
            vocab,
            continuing_subword_prefix: "##".to_string(),
            max_input_chars_per_word: 100,
            normalizer: Some(normalizer),
            added_tokens,
            source: path.to_path_buf(),
        };
        spec.check_unk()?;
        Ok(spec)
    }

    fn check_unk(&self) -> Result<()> {
        if self.id_of(&self.unk_token).is_none() {
            return Err(Error::bad_file(
                &self.source,
                format!(
                    "unknown token {:?} is not in the vocabulary",
                    self.unk_token
                ),
            ));
        }
        Ok(())
    }
}

fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn parse_bert_normalizer(path: &Path, n: &Value) -> Result<NormalizerFlags> {
    let kind = n.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "BertNormalizer" {
        return Err(Error::Unsupported(format!(
            "{}: normalizer {kind:?} is not BertNormalizer",
            path.display()
        )));
    }
    let flag = |name: &str, default: bool| n.get(name).and_then(Value::as_bool).unwrap_or(default);
    let lowercase = flag("lowercase", true);
    Ok(NormalizerFlags {
        clean_text: flag("clean_text", true),
        handle_chinese_chars: flag("handle_chinese_chars", true),
        // `strip_accents: null` means "follow lowercase", as in BertNormalizer.
        strip_accents: n
            .get("strip_accents")
            .and_then(Value::as_bool)
            .unwrap_or(lowercase),
        lowercase,
    })
}

fn parse_added_token(path: &Path, index: usize, t: &Value) -> Result<AddedToken> {
    let bad = |what: &str| Error::bad_file(path, format!("`added_tokens[{index}]`: {what}"));
    let content = t
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing `content`"))?;
    let id = t
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("missing `id`"))? as u32;
    let flag = |name: &str| t.get(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("normalized") || flag("lstrip") || flag("rstrip") || flag("single_word") {
        return Err(Error::Unsupported(format!(
            "{}: added token {content:?} uses normalized/lstrip/rstrip/single_word matching",
            path.display()
        )));
    }
    if content.is_empty() {
        return Err(bad("empty `content`"));
    }
    Ok(AddedToken {
        content: content.to_string(),
        id,
        special: flag("special"),
    })
}

fn parse_post_processor(path: &Path, p: &Value, lookup: &HashMap<&str, u32>) -> Result<Template> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    let bad = |what: String| Error::bad_file(path, format!("`post_processor`: {what}"));
    match kind {
        "BertProcessing" => {
            let id_of = |name: &str| -> Result<u32> {
                p.get(name)
                    .and_then(|v| v.get(1))
                    .and_then(Value::as_u64)
                    .map(|v| v as u32)
                    .ok_or_else(|| bad(format!("missing `{name}`")))
            };
            Ok(Template::bert(id_of("cls")?, id_of("sep")?))
        }
        "TemplateProcessing" => {
            let specials = p.get("special_tokens").and_then(Value::as_object);
            let parse = |name: &str| -> Result<Vec<Piece>> {
                let list = p
                    .get(name)
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(format!("missing `{name}`")))?;
                list.iter()
                    .map(|piece| {
                        if let Some(s) = piece.get("SpecialToken") {
                            let id = s.get("id").and_then(Value::as_str).unwrap_or("");
                            let type_id =
                                s.get("type_id").and_then(Value::as_u64).unwrap_or(0) as u32;
                            let ids =
                                match specials.and_then(|m| m.get(id)).and_then(|t| t.get("ids")) {
                                    Some(Value::Array(ids)) => ids
                                        .iter()
                                        .filter_map(Value::as_u64)
                                        .map(|i| i as u32)
                                        .collect(),
                                    _ => vec![*lookup.get(id).ok_or_else(|| {
                                        bad(format!("special token {id:?} is unknown"))
                                    })?],
                                };
                            Ok(Piece::Special { ids, type_id })
                        } else if let Some(s) = piece.get("Sequence") {
                            let type_id =
                                s.get("type_id").and_then(Value::as_u64).unwrap_or(0) as u32;
                            match s.get("id").and_then(Value::as_str) {
                                Some("A") => Ok(Piece::SequenceA { type_id }),
                                Some("B") => Ok(Piece::SequenceB { type_id }),
                                other => Err(bad(format!("unknown sequence id {other:?}"))),
                            }
                        } else {
                            Err(bad(format!("unknown template piece {piece}")))
                        }
                    })
                    .collect()
            };
            Ok(Template {
                single: parse("single")?,
                pair: parse("pair")?,
            })
        }
        other => Err(Error::Unsupported(format!(
            "{}: post-processor {other:?} is not BertProcessing or TemplateProcessing",
            path.display()
        ))),
    }
}
