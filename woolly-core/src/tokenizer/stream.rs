//! Streaming detokenization: text out as tokens come in, never splitting a UTF-8 character.

use std::borrow::Borrow;

use super::{TokenId, Tokenizer};
use crate::Result;

/// Turns a stream of token ids into text, one token at a time.
///
/// A token may end inside a multi-byte UTF-8 character (byte-fallback tokens carry one byte each);
/// those bytes are held back until the character is complete. Bytes that can never form a valid
/// character become U+FFFD, exactly where [`Tokenizer::decode`] of the whole sequence puts them:
/// the concatenation of everything [`push`](Self::push) and [`finish`](Self::finish) return
/// equals `decode` of all the ids.
///
/// `T` is anything that lends a [`Tokenizer`]: `&Tokenizer`, `Arc<Tokenizer>`, or an owned one.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use woolly_core::tokenizer::{StreamDecoder, Tokenizer};
/// # fn demo(tok: Arc<Tokenizer>, ids: &[u32]) -> woolly_core::Result<()> {
/// let mut stream = StreamDecoder::new(Arc::clone(&tok), false);
/// for &id in ids {
///     print!("{}", stream.push(id)?);
/// }
/// print!("{}", stream.finish());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StreamDecoder<T: Borrow<Tokenizer>> {
    tokenizer: T,
    render_special: bool,
    pending: Vec<u8>,
}

impl<T: Borrow<Tokenizer>> StreamDecoder<T> {
    /// A decoder for `tokenizer`; `render_special` as in [`Tokenizer::decode`].
    pub fn new(tokenizer: T, render_special: bool) -> Self {
        StreamDecoder {
            tokenizer,
            render_special,
            pending: Vec::new(),
        }
    }

    /// The tokenizer this decoder uses.
    pub fn tokenizer(&self) -> &Tokenizer {
        self.tokenizer.borrow()
    }

    /// Adds one token; returns the text it completes (possibly empty). An out-of-range id is an
    /// error and leaves the decoder as it was.
    pub fn push(&mut self, id: TokenId) -> Result<String> {
        let piece = self
            .tokenizer
            .borrow()
            .piece_bytes(id, self.render_special)?;
        if self.pending.is_empty() {
            if let Ok(s) = std::str::from_utf8(piece) {
                return Ok(s.to_owned());
            }
        }
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &after[n.min(after.len())..];
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let start = self.pending.len() - keep;
        self.pending.drain(..start);
        Ok(out)
    }

    /// Ends the stream: returns what is still held back, incomplete bytes as U+FFFD, and resets
    /// the decoder for a new stream.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    /// Whether bytes of an incomplete character are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}
