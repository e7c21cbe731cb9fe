//! Tokenizers built from a GGUF file's metadata alone, matching llama.cpp token for token.
//!
//! Two families are supported:
//! - SentencePiece-style vocabularies (`tokenizer.ggml.model = "llama"`: Llama 2, Gemma 3), merged
//!   bigram by bigram by token score, with byte fallback `<0xNN>`;
//! - byte-level BPE (`tokenizer.ggml.model = "gpt2"`: Llama 3, Qwen 2, ...), merged by rank after the
//!   pre-tokenizer named by `tokenizer.ggml.pre` has split the text into words.
//!
//! Before either runs, the text is cut on special tokens as llama.cpp does: user-defined tokens
//! always, control tokens only when special tokens are parsed. Everything follows llama.cpp's
//! `llama-vocab.cpp` and `unicode.cpp`, including their defaults when metadata is absent.
//!
//! Decoding is the concatenation of the tokens' pieces (what llama.cpp's `llama_token_to_piece`
//! returns), so [`Tokenizer::decode`] and a [`StreamDecoder`] always agree. Unlike
//! `llama_detokenize` it removes nothing: no leading space of a SentencePiece text, no
//! `clean_up_tokenization_spaces` rewriting (" ," → ","), which suits generated continuations.

mod bpe;
mod hash;
mod load;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod unicode;
mod unicode_data;
mod vocab;

use std::fmt;

pub use stream::StreamDecoder;

use crate::{Error, Result};
use bpe::{BpeModel, BpeScratch};
use pretokenize::{Pass, Splitter};
use special::{Fragment, SpecialMatcher};
use spm::SpmScratch;
use vocab::{attr, Vocab};

/// A token id: an index into the vocabulary.
pub type TokenId = u32;

/// Which algorithm a tokenizer runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenizerKind {
    /// SentencePiece-style (`tokenizer.ggml.model = "llama"`).
    Spm,
    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
    Bpe {
        /// The pre-tokenizer (`tokenizer.ggml.pre`; `"default"` when the file names none).
        pre: String,
    },
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerKind::Spm => write!(f, "SPM"),
            TokenizerKind::Bpe { pre } => write!(f, "BPE ({pre})"),
        }
    }
}

enum Model {
    Spm,
    Bpe {
        bpe: Box<BpeModel>,
        passes: &'static [Pass],
    },
}

/// A tokenizer: text to token ids and back. Immutable once built, so `Send + Sync` and shareable
/// behind an `Arc` by any number of threads.
pub struct Tokenizer {
    kind: TokenizerKind,
    vocab: Vocab,
    model: Model,
    special: SpecialMatcher,
    bos: Option<TokenId>,
    eos: Option<TokenId>,
    eot: Option<TokenId>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// End-of-generation tokens, sorted.
    eog: Vec<TokenId>,
    /// What a layer above derives from the vocabulary once and keeps with it (the constrained
    /// decoder's token trie), built on first use.
    derived: std::sync::Mutex<Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.vocab.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish()
    }
}

impl Tokenizer {
    /// The value `init` builds from this tokenizer, built on the first call and shared by later
    /// ones (one kind of value per tokenizer: a call asking for another type builds it again).
    pub(crate) fn derived<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce(&Tokenizer) -> Result<T>,
    ) -> Result<std::sync::Arc<T>> {
        let mut slot = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.as_ref().and_then(|v| v.clone().downcast::<T>().ok()) {
            return Ok(v);
        }
        let v = std::sync::Arc::new(init(self)?);
        *slot = Some(v.clone());
        Ok(v)
    }

    /// Tokenizes `text`.
    ///
    /// `add_special` adds BOS (and EOS) where the model's flags say (`tokenizer.ggml.add_bos_token`,
    /// `add_eos_token`, with llama.cpp's defaults per tokenizer kind when absent). `parse_special`
    /// turns the text of control tokens, e.g. `<start_of_turn>` or `<|im_start|>`, into those
    /// tokens; without it they are tokenized as plain text. User-defined tokens are always matched.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        self.encode_guarded(text, add_special, parse_special, &[], &|| false)
    }

    /// [`encode`](Self::encode) that stops with [`Error::Cancelled`] once `cancelled` returns
    /// true (it is asked between the pieces of the text, so a long text stops promptly).
    pub fn encode_cancellable(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<TokenId>> {
        self.encode_guarded(text, add_special, parse_special, &[], cancelled)
    }

    /// A character that occurs in no special token's text and in none of `texts`, to mark
    /// positions with [`mark_special`](Self::mark_special): one of Unicode's noncharacters
    /// (U+FDD0..U+FDEF, U+FFFE, U+FFFF, …), which no real text uses. `None` only if every one
    /// of them occurs somewhere.
    pub fn special_mark<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Option<char> {
        let candidates = (0xFDD0u32..=0xFDEF)
            .chain((0..=16u32).flat_map(|p| [p * 0x10000 + 0xFFFE, p * 0x10000 + 0xFFFF]))
            .filter_map(char::from_u32);
        let mut used = std::collections::HashSet::new();
        for t in texts {
            used.extend(t.chars().filter(|&c| special::is_nonchar(c)));
        }
        let mut candidates = candidates;
        candidates.find(|&c| !used.contains(&c) && !self.special.uses_char(c))
    }

    /// `text` with `mark` before every place where a control token's text begins, so
    /// that [`encode_marked`](Self::encode_marked) tokenizes it as `parse_special = false`
    /// would, even inside a larger text whose other parts are parsed for special tokens.
    /// `mark` comes from [`special_mark`](Self::special_mark).
    pub fn mark_special(&self, text: &str, mark: char) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        for (i, c) in text.char_indices() {
            if self.special.control_at(text.as_bytes(), i) {
                out.push(mark);
            }
            out.push(c);
        }
        out
    }

    /// Tokenizes `text` parsing special tokens, except that no control token begins where
    /// [`mark_special`](Self::mark_special) put `mark`; every `mark` is removed first.
    pub fn encode_marked(
        &self,
        text: &str,
        add_special: bool,
        mark: char,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<TokenId>> {
        let mut clean = String::with_capacity(text.len());
        let mut guards = Vec::new();
        for c in text.chars() {
            if c == mark {
                if guards.last() != Some(&clean.len()) {
                    guards.push(clean.len());
                }
            } else {
                clean.push(c);
            }
        }
        self.encode_guarded(&clean, add_special, true, &guards, cancelled)
    }

    fn encode_guarded(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        guards: &[usize],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<TokenId>> {
        if text.len() >= (u32::MAX / 2) as usize {
            return Err(Error::InvalidArgument(format!(
                "text of {} bytes is too long to tokenize",
                text.len()
            )));
        }
        let mut frags = Vec::new();
        if cancelled() {
            return Err(Error::Cancelled);
        }
        self.special
            .partition_guarded(text, parse_special, guards, &mut frags);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.model {
            Model::Spm => {
                let mut scratch = SpmScratch::default();
                let mut buf = String::new();
                // llama.cpp prefixes a space to the first piece and to each piece after a special token.
                let mut prev_special = true;
                for frag in frags {
                    match frag {
                        Fragment::Text(a, b) => {
                            if cancelled() {
                                return Err(Error::Cancelled);
                            }
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in text[a..b].chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm::encode(
                                &self.vocab,
                                &buf,
                                self.vocab.glue(),
                                &mut scratch,
                                &mut out,
                                cancelled,
                            )?;
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe { bpe, passes } => {
                let mut scratch = BpeScratch::default();
                let mut splitter = Splitter::default();
                let mut words = Vec::new();
                for frag in frags {
                    match frag {
                        Fragment::Text(a, b) => {
                            for piece in Chunks::new(&text[a..b]) {
                                if cancelled() {
                                    return Err(Error::Cancelled);
                                }
                                words.clear();
                                splitter.split(piece, passes, &mut words);
                                for &(s, e) in &words {
                                    bpe.encode_word(
                                        &self.vocab,
                                        &piece.as_bytes()[s..e],
                                        &mut scratch,
                                        &mut out,
                                    );
                                }
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    /// Turns token ids back into text: the concatenation of their pieces (see [`piece`](Self::piece)).
    /// Bytes that do not form valid UTF-8 (e.g. an incomplete character from byte tokens) become
    /// U+FFFD. Control tokens are rendered only with `render_special`; an out-of-range id is an error.
    pub fn decode(&self, ids: &[TokenId], render_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            bytes.extend_from_slice(self.piece_bytes(id, render_special)?);
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The bytes token `id` decodes to (llama.cpp's `llama_token_to_piece` without stripping):
    /// spaces unescaped, byte tokens as their byte, user-defined tokens as their text, control and
    /// unknown tokens as their text only with `render_special` (else nothing). The bytes need not
    /// be valid UTF-8 on their own. [`token_bytes`](Self::token_bytes) borrows instead of copying.
    pub fn piece(&self, id: TokenId, render_special: bool) -> Result<Vec<u8>> {
        Ok(self.piece_bytes(id, render_special)?.to_vec())
    }

    /// [`piece`](Self::piece), borrowed.
    pub(crate) fn piece_bytes(&self, id: TokenId, render_special: bool) -> Result<&[u8]> {
        self.check(id)?;
        if !render_special && self.vocab.attrs[id as usize] & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return Ok(&[]);
        }
        Ok(self.vocab.piece(id))
    }

    /// The bytes token `id` decodes to with special tokens rendered; `None` for an out-of-range id.
    pub fn token_bytes(&self, id: TokenId) -> Option<&[u8]> {
        self.piece_bytes(id, true).ok()
    }

    /// Whether encoding puts a space before the text (SentencePiece's `add_space_prefix`), which
    /// decoding then keeps.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// The token's text as written in the vocabulary (e.g. `"▁the"`, `"Ġthe"`, `"<0x0A>"`).
    pub fn token_text(&self, id: TokenId) -> Option<&str> {
        ((id as usize) < self.vocab.len()).then(|| self.vocab.text(id))
    }

    /// The token whose vocabulary text is exactly `text`, e.g. `"<start_of_turn>"`.
    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        self.vocab.token_id(text)
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The beginning-of-sequence token, if the model has one.
    pub fn bos(&self) -> Option<TokenId> {
        self.bos
    }

    /// The end-of-sequence token, if the model has one.
    pub fn eos(&self) -> Option<TokenId> {
        self.eos
    }

    /// The end-of-turn token (`tokenizer.ggml.eot_token_id`, or found by its text such as
    /// `<end_of_turn>` or `<|eot_id|>`), if any.
    pub fn eot(&self) -> Option<TokenId> {
        self.eot
    }

    /// Whether [`encode`](Self::encode) with `add_special` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether [`encode`](Self::encode) with `add_special` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether `id` is a control (or unknown) token: text renders it only when asked to.
    pub fn is_control(&self, id: TokenId) -> bool {
        (id as usize) < self.vocab.len()
            && self.vocab.attrs[id as usize] & (attr::UNKNOWN | attr::CONTROL) != 0
    }

    /// Whether `id` ends generation: EOS, EOT, EOM, and the tokens llama.cpp recognises by their
    /// text (`<end_of_turn>`, `<|eot_id|>`, `<|im_end|>`, `<|endoftext|>`, `<|end|>`, ...).
    pub fn is_eog(&self, id: TokenId) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation tokens, sorted.
    pub fn eog_tokens(&self) -> &[TokenId] {
        &self.eog
    }

    /// The tokenizer's algorithm (and pre-tokenizer, for BPE).
    pub fn kind(&self) -> TokenizerKind {
        self.kind.clone()
    }

    fn check(&self, id: TokenId) -> Result<()> {
        if (id as usize) < self.vocab.len() {
            Ok(())
        } else {
            Err(Error::Tokenizer(format!(
                "token id {id} is out of range (the vocabulary has {} tokens)",
                self.vocab.len()
            )))
        }
    }
}

/// Cuts a long text into pieces that every pre-tokenizer splits exactly as it splits the whole,
/// so that the splitter's working arrays stay small (and in cache) however long the text.
///
/// A cut goes between an ASCII letter and a space that is followed by an ASCII letter (`"a b"` →
/// `"a"`, `" b"`): no pattern of any supported pre-tokenizer matches across it (letter runs stop at
/// the space, the space joins the following letters), and none looks behind.
struct Chunks<'a> {
    rest: &'a str,
}

/// Target size of a chunk, in bytes.
const CHUNK: usize = 16 << 10;

impl<'a> Chunks<'a> {
    fn new(text: &'a str) -> Self {
        Chunks { rest: text }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest.as_bytes();
        let mut cut = b.len();
        if b.len() > 2 * CHUNK {
            let mut i = CHUNK.max(1);
            while i + 1 < b.len() {
                if b[i] == b' ' && b[i - 1].is_ascii_alphabetic() && b[i + 1].is_ascii_alphabetic()
                {
                    cut = i;
                    break;
                }
                i += 1;
            }
        }
        // `cut` is at an ASCII byte or the end, so on a character boundary.
        let (head, tail) = self.rest.split_at(cut);
        self.rest = tail;
        Some(head)
    }
}
