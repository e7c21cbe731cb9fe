//! Byte-level BPE (llama.cpp's `llm_tokenizer_bpe`), on raw bytes.
//!
//! GPT-2-style vocabularies write every byte as one of 256 printable characters; llama.cpp encodes
//! each pre-tokenized word that way and merges characters. The encoding is a bijection between byte
//! strings and strings of those characters, so Woolly decodes the vocabulary and the merges once, at
//! load, and merges raw bytes instead: same lookups, same result, no re-encoding per word.
//!
//! Within a word every byte starts as a symbol; the adjacent pair with the lowest merge rank is
//! merged first (ties: the leftmost), and so on until no pair has a rank. A finished symbol that is
//! not a token falls back, as in llama.cpp, to the single-character tokens of its encoded bytes.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::hash::FastMap;
use super::unicode::byte_to_char;
use super::vocab::Vocab;
use super::TokenId;

pub(crate) const NONE: u32 = u32::MAX;

/// Merge ranks and the strings they mention.
pub(crate) struct BpeModel {
    /// [`pair`] of the (left, right) string ids → rank (lower merges first).
    pub(crate) ranks: FastMap<u64, u32>,
    /// Merge operands and results that are not tokens, with ids from the vocabulary size upwards.
    pub(crate) extra: FastMap<Box<[u8]>, u32>,
    /// A word that is itself a token is emitted whole (Llama 3).
    pub(crate) ignore_merges: bool,
    /// The string id of each single byte.
    pub(crate) byte_sid: [u32; 256],
}

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
    sid: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: u32,
    right: u32,
    left_len: u32,
    right_len: u32,
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Lowest rank first, then leftmost first (the heap pops the greatest).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
            .then_with(|| other.right.cmp(&self.right))
    }
}

/// The key of a merge in [`BpeModel::ranks`].
#[inline]
pub(crate) fn pair(left: u32, right: u32) -> u64 {
    (left as u64) << 32 | right as u64
}

/// Reusable working storage.
#[derive(Default)]
pub(crate) struct BpeScratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Bigram>,
}

impl BpeModel {
    /// The string id of `bytes`: its token id, an id above the vocabulary for merge-only strings,
    /// or `NONE` when no merge can involve it.
    #[inline]
    pub(crate) fn sid(&self, vocab: &Vocab, bytes: &[u8]) -> u32 {
        if let Some(id) = vocab.lookup(bytes) {
            return id;
        }
        if self.extra.is_empty() {
            return NONE;
        }
        self.extra.get(bytes).copied().unwrap_or(NONE)
    }

    /// Tokenizes one pre-tokenized word (raw bytes) and appends the ids to `out`.
    pub(crate) fn encode_word(
        &self,
        vocab: &Vocab,
        word: &[u8],
        scratch: &mut BpeScratch,
        out: &mut Vec<TokenId>,
    ) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(id) = vocab.lookup(word) {
                out.push(id);
                return;
            }
        }
        if word.len() == 1 {
            self.emit(vocab, word, self.byte_sid[word[0] as usize], out);
            return;
        }
        let symbols = &mut scratch.symbols;
        let heap = &mut scratch.heap;
        symbols.clear();
        heap.clear();
        let n = word.len() as u32;
        for i in 0..n {
            symbols.push(Symbol {
                start: i,
                len: 1,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
                sid: self.byte_sid[word[i as usize] as usize],
            });
        }
        let add = |symbols: &[Symbol], heap: &mut BinaryHeap<Bigram>, left: u32, right: u32| {
            if left == NONE || right == NONE {
                return;
            }
            let l = symbols[left as usize];
            let r = symbols[right as usize];
            if l.sid == NONE || r.sid == NONE {
                return;
            }
            if let Some(&rank) = self.ranks.get(&pair(l.sid, r.sid)) {
                heap.push(Bigram {
                    rank,
                    left,
                    right,
                    left_len: l.len,
                    right_len: r.len,
                });
            }
        };
        for i in 1..n {
            add(symbols, heap, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let l = symbols[bg.left as usize];
            let r = symbols[bg.right as usize];
            // Outdated when either side has changed since the pair was queued.
            if l.len == 0 || r.len == 0 || l.len != bg.left_len || r.len != bg.right_len {
                continue;
            }
            let len = l.len + r.len;
            let span = &word[l.start as usize..(l.start + len) as usize];
            symbols[bg.left as usize] = Symbol {
                start: l.start,
                len,
                prev: l.prev,
                next: r.next,
                sid: self.sid(vocab, span),
            };
            symbols[bg.right as usize].len = 0;
            if r.next != NONE {
                symbols[r.next as usize].prev = bg.left;
            }
            add(symbols, heap, l.prev, bg.left);
            add(symbols, heap, bg.left, r.next);
        }
        let mut i = 0;
        while i != NONE {
            let s = symbols[i as usize];
            let span = &word[s.start as usize..(s.start + s.len) as usize];
            self.emit(vocab, span, s.sid, out);
            i = s.next;
        }
    }

    fn emit(&self, vocab: &Vocab, span: &[u8], sid: u32, out: &mut Vec<TokenId>) {
        if (sid as usize) < vocab.len() {
            out.push(sid);
            return;
        }
        // llama.cpp looks up each byte of the encoded symbol as a one-byte string; only ASCII
        // bytes can be tokens, so a byte whose character is not ASCII contributes nothing.
        for &b in span {
            let c = byte_to_char(b);
            let mut buf = [0u8; 4];
            for &x in c.encode_utf8(&mut buf).as_bytes() {
                if let Some(id) = vocab.ascii_token(x) {
                    out.push(id);
                }
            }
        }
    }
}
