//! WordPiece in linear time: LinMaxMatch from "Fast WordPiece Tokenization"
//! (Song et al., EMNLP 2021, arXiv:2012.15524).
//!
//! The greedy longest-match-first loop of BERT (and of Hugging Face
//! `tokenizers`) is quadratic in the word length. LinMaxMatch walks a trie of the
//! vocabulary once, byte by byte; when the walk cannot continue it follows a
//! precomputed *failure link* and emits the precomputed *failure pops* (the
//! tokens MaxMatch would have committed to). The output is provably identical to
//! MaxMatch, including the rule that a word which cannot be fully covered
//! becomes a single unknown token.
//!
//! Two tries share one node array: one rooted at `ROOT` for word-initial pieces
//! and one rooted at `SUFFIX_ROOT` for continuation pieces (`##x` is stored as
//! `x` below `SUFFIX_ROOT`). Keeping them apart avoids confusing a literal `##`
//! in the text with the continuation prefix.
//!
//! Working on UTF-8 bytes instead of chars gives the same result: every vocabulary
//! token is valid UTF-8, so every byte-level match ends on a char boundary.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

const NONE: u32 = u32::MAX;
pub const ROOT: u32 = 0;
pub const SUFFIX_ROOT: u32 = 1;
/// Nodes with at least this many children get a dense transition table.
const DENSE_MIN_CHILDREN: usize = 6;

/// One token emitted for a word: id and byte range inside the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub id: u32,
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Debug)]
struct Node {
    /// Children, sorted by byte, as a range into `edge_bytes` / `edge_targets`.
    edges_start: u32,
    edges_len: u32,
    /// Index into `dense`, or NONE.
    dense: u32,
    /// Token id of the string spelled by the path to this node, if it is in the vocabulary.
    token: u32,
    depth: u32,
    fail: u32,
    /// Failure pops: a range into `pops`.
    pops_start: u32,
    pops_len: u32,
}

/// A vocabulary compiled for LinMaxMatch.
#[derive(Clone, Debug)]
pub struct WordPiece {
    nodes: Vec<Node>,
    edge_bytes: Vec<u8>,
    edge_targets: Vec<u32>,
    /// Dense 256-entry transition tables for the nodes with many children (the two
    /// roots and the first levels below them, where most lookups happen); other
    /// nodes scan their few sorted children.
    dense: Vec<[u32; 256]>,
    /// (token id, byte length) of every failure pop.
    pops: Vec<(u32, u32)>,
    /// Whole-word shortcut: a word that is itself a vocabulary entry is its own
    /// longest match, so MaxMatch (and LinMaxMatch) would return exactly it. Most
    /// words of running text take this path.
    whole_words: FxHashMap<Box<[u8]>, u32>,
    unk_id: u32,
    max_input_chars_per_word: usize,
}

/// A trie under construction, with map children (sorted later).
struct Builder {
    children: Vec<Vec<(u8, u32)>>,
    token: Vec<u32>,
    depth: Vec<u32>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            children: vec![Vec::new(), Vec::new()],
            token: vec![NONE, NONE],
            depth: vec![0, 0],
        }
    }

    fn insert(&mut self, root: u32, bytes: &[u8], id: u32) {
        let mut node = root;
        for &b in bytes {
            node = match self.children[node as usize].iter().find(|(c, _)| *c == b) {
                Some(&(_, child)) => child,
                None => {
                    let child = self.token.len() as u32;
                    self.children.push(Vec::new());
                    self.token.push(NONE);
                    self.depth.push(self.depth[node as usize] + 1);
                    self.children[node as usize].push((b, child));
                    child
                }
            };
        }
        // With duplicate strings in a vocabulary, the last id wins, as in a HashMap built in order.
        self.token[node as usize] = id;
    }
}

impl WordPiece {
    /// Compile `vocab` (token strings indexed by id).
    pub fn new(
        vocab: &[String],
        prefix: &str,
        unk_id: u32,
        max_input_chars_per_word: usize,
    ) -> Self {
        let mut b = Builder::new();
        let mut whole_words = FxHashMap::default();
        for (id, token) in vocab.iter().enumerate() {
            if token.is_empty() {
                continue;
            }
            whole_words.insert(token.as_bytes().into(), id as u32);
            b.insert(ROOT, token.as_bytes(), id as u32);
            if !prefix.is_empty() {
                if let Some(rest) = token.strip_prefix(prefix) {
                    if !rest.is_empty() {
                        b.insert(SUFFIX_ROOT, rest.as_bytes(), id as u32);
                    }
                }
            } else {
                // An empty prefix: continuation pieces are plain vocabulary entries.
                b.insert(SUFFIX_ROOT, token.as_bytes(), id as u32);
            }
        }
        let n = b.token.len();
        let mut nodes = Vec::with_capacity(n);
        let mut edge_bytes = Vec::new();
        let mut edge_targets = Vec::new();
        for (i, children) in b.children.iter_mut().enumerate() {
            children.sort_unstable_by_key(|(c, _)| *c);
            nodes.push(Node {
                edges_start: edge_bytes.len() as u32,
                edges_len: children.len() as u32,
                dense: NONE,
                token: b.token[i],
                depth: b.depth[i],
                fail: NONE,
                pops_start: 0,
                pops_len: 0,
            });
            for &(c, t) in children.iter() {
                edge_bytes.push(c);
                edge_targets.push(t);
            }
        }
        let mut wp = WordPiece {
            nodes,
            edge_bytes,
            edge_targets,
            dense: Vec::new(),
            whole_words,
            pops: Vec::new(),
            unk_id,
            max_input_chars_per_word,
        };
        for i in 0..wp.nodes.len() {
            let (start, len) = (
                wp.nodes[i].edges_start as usize,
                wp.nodes[i].edges_len as usize,
            );
            if i as u32 == ROOT || i as u32 == SUFFIX_ROOT || len >= DENSE_MIN_CHILDREN {
                let mut table = [NONE; 256];
                for k in start..start + len {
                    table[wp.edge_bytes[k] as usize] = wp.edge_targets[k];
                }
                wp.nodes[i].dense = wp.dense.len() as u32;
                wp.dense.push(table);
            }
        }
        wp.compute_failure_links();
        wp
    }

    #[inline]
    fn child(&self, node: u32, byte: u8) -> u32 {
        let n = &self.nodes[node as usize];
        if n.dense != NONE {
            return self.dense[n.dense as usize][byte as usize];
        }
        let s = n.edges_start as usize;
        let bytes = &self.edge_bytes[s..s + n.edges_len as usize];
        match bytes.iter().position(|&c| c == byte) {
            Some(k) => self.edge_targets[s + k],
            None => NONE,
        }
    }

    /// Algorithm 2 of the paper: breadth-first over both tries.
    fn compute_failure_links(&mut self) {
        let mut queue = VecDeque::from([ROOT, SUFFIX_ROOT]);
        let mut scratch: Vec<(u32, u32)> = Vec::new();
        while let Some(v) = queue.pop_front() {
            let (s, l) = (
                self.nodes[v as usize].edges_start as usize,
                self.nodes[v as usize].edges_len as usize,
            );
            for k in s..s + l {
                let c = self.edge_bytes[k];
                let u = self.edge_targets[k];
                queue.push_back(u);
                let un = &self.nodes[u as usize];
                if un.token != NONE {
                    let pop = (un.token, un.depth);
                    let start = self.pops.len() as u32;
                    self.pops.push(pop);
                    let un = &mut self.nodes[u as usize];
                    un.fail = SUFFIX_ROOT;
                    un.pops_start = start;
                    un.pops_len = 1;
                    continue;
                }
                let vn = &self.nodes[v as usize];
                let mut z = vn.fail;
                scratch.clear();
                scratch.extend_from_slice(
                    &self.pops[vn.pops_start as usize..(vn.pops_start + vn.pops_len) as usize],
                );
                while z != NONE && self.child(z, c) == NONE {
                    let zn = &self.nodes[z as usize];
                    scratch.extend_from_slice(
                        &self.pops[zn.pops_start as usize..(zn.pops_start + zn.pops_len) as usize],
                    );
                    z = zn.fail;
                }
                if z != NONE {
                    let target = self.child(z, c);
                    let start = self.pops.len() as u32;
                    self.pops.extend_from_slice(&scratch);
                    let un = &mut self.nodes[u as usize];
                    un.fail = target;
                    un.pops_start = start;
                    un.pops_len = scratch.len() as u32;
                }
            }
        }
    }

    /// Tokenize one pre-tokenized, normalized word into `out` (appending).
    /// `n_chars` is the word's length in chars, for `max_input_chars_per_word`.
    pub fn tokenize_word(&self, word: &[u8], n_chars: usize, out: &mut Vec<Piece>) {
        let unk = Piece {
            id: self.unk_id,
            start: 0,
            end: word.len() as u32,
        };
        if n_chars > self.max_input_chars_per_word {
            out.push(unk);
            return;
        }
        if let Some(&id) = self.whole_words.get(word) {
            out.push(Piece {
                id,
                start: 0,
                end: word.len() as u32,
            });
            return;
        }
        let mark = out.len();
        let mut pos: u32 = 0;
        let mut emit = |out: &mut Vec<Piece>, pops: &[(u32, u32)]| {
            for &(id, len) in pops {
                out.push(Piece {
                    id,
                    start: pos,
                    end: pos + len,
                });
                pos += len;
            }
        };
        let mut u = ROOT;
        for &byte in word {
            loop {
                let next = self.child(u, byte);
                if next != NONE {
                    u = next;
                    break;
                }
                let n = &self.nodes[u as usize];
                if n.fail == NONE {
                    out.truncate(mark);
                    out.push(unk);
                    return;
                }
                emit(
                    out,
                    &self.pops[n.pops_start as usize..(n.pops_start + n.pops_len) as usize],
                );
                u = n.fail;
            }
        }
        while u != SUFFIX_ROOT {
            let n = &self.nodes[u as usize];
            if n.fail == NONE {
                out.truncate(mark);
                out.push(unk);
                return;
            }
            emit(
                out,
                &self.pops[n.pops_start as usize..(n.pops_start + n.pops_len) as usize],
            );
            u = n.fail;
        }
    }
}

/// The greedy longest-match-first loop, exactly as BERT and Hugging Face
/// `tokenizers` write it. Quadratic; kept as the readable reference that the
/// tests compare [`WordPiece::tokenize_word`] against.
pub fn reference_max_match(
    word: &str,
    vocab: &std::collections::HashMap<String, u32>,
    prefix: &str,
    unk_id: u32,
    max_input_chars_per_word: usize,
) -> Vec<Piece> {
    let unk = vec![Piece {
        id: unk_id,
        start: 0,
        end: word.len() as u32,
    }];
    if word.chars().count() > max_input_chars_per_word {
        return unk;
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < word.len() {
        let mut end = word.len();
        let mut found = None;
        while start < end {
            let sub = &word[start..end];
            let candidate = if start > 0 {
                format!("{prefix}{sub}")
            } else {
                sub.to_string()
            };
            if let Some(&id) = vocab.get(&candidate) {
                found = Some(Piece {
                    id,
                    start: start as u32,
                    end: end as u32,
                });
                break;
            }
            end -= sub.chars().next_back().map_or(1, char::len_utf8);
        }
        match found {
            Some(p) => {
                pieces.push(p);
                start = p.end as usize;
            }
            None => return unk,
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vocab() -> Vec<String> {
        [
            "[UNK]", "a", "ab", "abc", "##b", "##c", "##cd", "##d", "un", "##aff", "##able", "##a",
            "x", "##",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn check(words: &[&str]) {
        let v = vocab();
        let map: HashMap<String, u32> = v
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let wp = WordPiece::new(&v, "##", 0, 100);
        for w in words {
            let mut out = Vec::new();
            wp.tokenize_word(w.as_bytes(), w.chars().count(), &mut out);
            assert_eq!(
                out,
                reference_max_match(w, &map, "##", 0, 100),
                "word {w:?}"
            );
        }
    }

    #[test]
    fn matches_reference_on_hand_picked_words() {
        check(&[
            "a",
            "ab",
            "abc",
            "abcd",
            "abd",
            "abcdd",
            "unaffable",
            "aa",
            "aaa",
            "b",
            "abx",
            "x",
            "xa",
            "é",
            "abé",
            "#",
            "##",
            "a##",
        ]);
    }

    #[test]
    fn matches_reference_on_all_short_words() {
        let alphabet = ['a', 'b', 'c', 'd', 'x', '#'];
        let mut words = vec![String::new()];
        for _ in 0..5 {
            let next: Vec<String> = words
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(next.iter().cloned());
            words.dedup();
            words = {
                let mut w = words;
                w.sort();
                w.dedup();
                w
            };
        }
        let refs: Vec<&str> = words
            .iter()
            .filter(|w| !w.is_empty())
            .map(String::as_str)
            .collect();
        check(&refs);
    }

    #[test]
    fn long_words_become_unknown() {
        let wp = WordPiece::new(&vocab(), "##", 0, 3);
        let mut out = Vec::new();
        wp.tokenize_word(b"abcd", 4, &mut out);
        assert_eq!(
            out,
            vec![Piece {
                id: 0,
                start: 0,
                end: 4
            }]
        );
    }
}
