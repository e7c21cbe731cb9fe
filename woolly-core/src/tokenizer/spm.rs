//! SentencePiece-style tokenization (llama.cpp's `llm_tokenizer_spm`).
//!
//! The text (spaces already escaped as U+2581) starts as one symbol per character. Every pair of
//! neighbours whose concatenation is a token is a candidate; the candidate with the best token score
//! is merged first (ties: the leftmost), and the new symbol's neighbours become candidates. At the
//! end every symbol is a token, except single characters missing from the vocabulary, which fall
//! back to byte tokens `<0xNN>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;
use super::TokenId;
use crate::{Error, Result};

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy)]
struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Higher score first; among equal scores the leftmost first. Scores are never NaN (the
    /// vocabulary replaces NaN when it loads), so `partial_cmp` is total here.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Reusable working storage.
#[derive(Default)]
pub(crate) struct SpmScratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Bigram>,
}

/// Tokenizes `text` (already escaped) and appends the ids to `out`.
///
/// `glue` lists the characters that precede U+2581 inside some token. Before any other U+2581 no
/// merge can ever cross (no token contains that pair), so the text is cut there and each piece is
/// merged on its own: the same merges happen, in the same relative order, with small heaps.
/// Stops with [`Error::Cancelled`] once `cancelled` returns true (asked between pieces and
/// every few thousand merges).
pub(crate) fn encode(
    vocab: &Vocab,
    text: &str,
    glue: &[char],
    scratch: &mut SpmScratch,
    out: &mut Vec<TokenId>,
    cancelled: &dyn Fn() -> bool,
) -> Result<()> {
    let mut start = 0;
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '\u{2581}' && i > start && prev.is_some_and(|p| glue.binary_search(&p).is_err()) {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            encode_piece(vocab, &text[start..i], scratch, out, cancelled)?;
            start = i;
        }
        prev = Some(c);
    }
    if start < text.len() {
        encode_piece(vocab, &text[start..], scratch, out, cancelled)?;
    }
    Ok(())
}

fn encode_piece(
    vocab: &Vocab,
    text: &str,
    scratch: &mut SpmScratch,
    out: &mut Vec<TokenId>,
    cancelled: &dyn Fn() -> bool,
) -> Result<()> {
    let bytes = text.as_bytes();
    let symbols = &mut scratch.symbols;
    let heap = &mut scratch.heap;
    symbols.clear();
    heap.clear();
    if bytes.len() >= NONE as usize {
        return Err(Error::Tokenizer(format!(
            "text of {} bytes is too long to tokenize",
            bytes.len()
        )));
    }
    let n_chars = text.chars().count();
    for (i, (off, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start: off as u32,
            len: c.len_utf8() as u32,
            prev: if i == 0 { NONE } else { i as u32 - 1 },
            next: if i + 1 == n_chars { NONE } else { i as u32 + 1 },
        });
    }

    let try_add = |symbols: &[Symbol], heap: &mut BinaryHeap<Bigram>, left: u32, right: u32| {
        if left == NONE || right == NONE {
            return;
        }
        let l = symbols[left as usize];
        let r = symbols[right as usize];
        let span = &bytes[l.start as usize..(l.start + l.len + r.len) as usize];
        if let Some(id) = vocab.lookup(span) {
            heap.push(Bigram {
                score: vocab.score(id),
                left,
                right,
                size: l.len + r.len,
            });
        }
    };

    for i in 1..symbols.len() as u32 {
        try_add(symbols, heap, i - 1, i);
    }
    let mut pops = 0u32;
    while let Some(bg) = heap.pop() {
        pops = pops.wrapping_add(1);
        if pops.is_multiple_of(4096) && cancelled() {
            return Err(Error::Cancelled);
        }
        let l = symbols[bg.left as usize];
        let r = symbols[bg.right as usize];
        if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
            continue;
        }
        // Merge the right symbol into the left one.
        let merged = Symbol {
            start: l.start,
            len: l.len + r.len,
            prev: l.prev,
            next: r.next,
        };
        symbols[bg.left as usize] = merged;
        symbols[bg.right as usize].len = 0;
        if r.next != NONE {
            symbols[r.next as usize].prev = bg.left;
        }
        try_add(symbols, heap, merged.prev, bg.left);
        try_add(symbols, heap, bg.left, merged.next);
    }

    let mut i = if symbols.is_empty() { NONE } else { 0 };
    while i != NONE {
        let s = symbols[i as usize];
        let span = &bytes[s.start as usize..(s.start + s.len) as usize];
        match vocab.lookup(span) {
            Some(id) => out.push(id),
            None => {
                for &b in span {
                    out.push(vocab.spm_byte_token(b).ok_or_else(|| {
                        Error::Tokenizer(format!(
                            "the vocabulary has no token for byte 0x{b:02X} (no <0x{b:02X}> byte token)"
                        ))
                    })?);
                }
            }
        }
        i = s.next;
    }
    Ok(())
}
