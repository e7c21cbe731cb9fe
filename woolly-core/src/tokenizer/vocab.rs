//! The vocabulary: token texts, scores, attributes, lookup tables and decoded pieces.

use super::hash::{BytesTable, FastMap};
use super::unicode::{char_to_byte, decode_byte_level};
use super::TokenId;

/// Token attributes, with llama.cpp's bit values (`llama_token_attr`).
pub(crate) mod attr {
    pub const UNKNOWN: u8 = 1 << 0;
    pub const UNUSED: u8 = 1 << 1;
    pub const NORMAL: u8 = 1 << 2;
    pub const CONTROL: u8 = 1 << 3;
    pub const USER_DEFINED: u8 = 1 << 4;
    pub const BYTE: u8 = 1 << 5;
}

/// The attribute for a GGUF token type (`tokenizer.ggml.token_type`).
pub(crate) fn attr_from_type(t: i64) -> u8 {
    match t {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => 0, // undefined
    }
}

/// How token texts are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The text itself (SentencePiece: spaces written as U+2581).
    Text,
    /// GPT-2 byte-level: texts are decoded to the bytes they stand for.
    ByteLevel,
}

/// Token texts and everything derived from them.
pub(crate) struct Vocab {
    encoding: Encoding,
    /// All token texts, back to back; token `i` is `texts[offs[i]..offs[i + 1]]`.
    texts: String,
    offs: Vec<u32>,
    scores: Vec<f32>,
    pub(crate) attrs: Vec<u8>,
    /// Lookup form (see [`Encoding`]) → id.
    map: BytesTable,
    /// Byte-level vocabularies only: tokens whose text is not made of the 256 byte characters.
    odd: FastMap<Box<str>, TokenId>,
    /// What each token decodes to, with special tokens rendered; token `i` is
    /// `pieces[piece_offs[i]..piece_offs[i + 1]]`.
    pieces: Vec<u8>,
    piece_offs: Vec<u32>,
    /// SentencePiece byte fallback: the token for each byte.
    spm_bytes: [Option<TokenId>; 256],
    /// Byte-level fallback: the token whose text is this one ASCII character.
    ascii: [Option<TokenId>; 128],
    /// Characters that precede U+2581 inside some token, sorted.
    glue: Vec<char>,
}

impl Vocab {
    /// Builds the lookup tables; `texts` must total less than 4 GiB, and `scores` and `attrs` have
    /// one entry per text. Two equal texts give `Err((first id, second id))`.
    pub(crate) fn new(
        encoding: Encoding,
        texts: &[&str],
        scores: Vec<f32>,
        attrs: Vec<u8>,
    ) -> Result<Vocab, (TokenId, TokenId)> {
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let mut all = String::with_capacity(total);
        let mut offs = Vec::with_capacity(texts.len() + 1);
        let mut map = BytesTable::with_capacity(texts.len());
        let mut odd = FastMap::default();
        for (id, t) in texts.iter().enumerate() {
            offs.push(all.len() as u32);
            all.push_str(t);
            let id = id as TokenId;
            let prev = match encoding {
                Encoding::Text => map.insert(t.as_bytes(), id),
                // Byte-level decoding is injective: equal raw bytes mean equal texts.
                Encoding::ByteLevel => match decode_byte_level(t) {
                    Some(raw) => map.insert(&raw, id),
                    None => odd.insert(Box::from(*t), id),
                },
            };
            if let Some(prev) = prev {
                return Err((prev, id));
            }
        }
        offs.push(all.len() as u32);
        let mut v = Vocab {
            encoding,
            texts: all,
            offs,
            scores,
            attrs,
            map,
            odd,
            pieces: Vec::new(),
            piece_offs: Vec::new(),
            spm_bytes: [None; 256],
            ascii: [None; 128],
            glue: Vec::new(),
        };
        if encoding == Encoding::Text {
            let mut glue = std::collections::BTreeSet::new();
            for t in texts {
                let mut prev = None;
                for c in t.chars() {
                    if let (Some(p), '\u{2581}') = (prev, c) {
                        glue.insert(p);
                    }
                    prev = Some(c);
                }
            }
            v.glue = glue.into_iter().collect();
        }
        for b in 0..=255u8 {
            v.spm_bytes[b as usize] = v
                .token_id(&format!("<0x{b:02X}>"))
                .or_else(|| std::str::from_utf8(&[b]).ok().and_then(|s| v.token_id(s)));
        }
        for b in 0..128u8 {
            v.ascii[b as usize] = v.token_id(&(b as char).to_string());
        }
        Ok(v)
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.offs.len() - 1
    }

    /// The text of token `id` (which must be in range).
    pub(crate) fn text(&self, id: TokenId) -> &str {
        let (a, b) = (self.offs[id as usize], self.offs[id as usize + 1]);
        &self.texts[a as usize..b as usize]
    }

    /// The score of token `id` (which must be in range).
    #[inline]
    pub(crate) fn score(&self, id: TokenId) -> f32 {
        self.scores[id as usize]
    }

    /// The token whose lookup form is `bytes`.
    #[inline]
    pub(crate) fn lookup(&self, bytes: &[u8]) -> Option<TokenId> {
        self.map.get(bytes)
    }

    /// The token whose text is exactly `text`.
    pub(crate) fn token_id(&self, text: &str) -> Option<TokenId> {
        match self.encoding {
            Encoding::Text => self.lookup(text.as_bytes()),
            Encoding::ByteLevel => match decode_byte_level(text) {
                Some(raw) => self.lookup(&raw),
                None => self.odd.get(text).copied(),
            },
        }
    }

    /// Characters that precede U+2581 inside some token (see [`super::spm::encode`]).
    pub(crate) fn glue(&self) -> &[char] {
        &self.glue
    }

    /// SentencePiece byte fallback (`<0xNN>`, else the byte itself as a token).
    #[inline]
    pub(crate) fn spm_byte_token(&self, b: u8) -> Option<TokenId> {
        self.spm_bytes[b as usize]
    }

    /// The token whose text is the single ASCII character `b`.
    #[inline]
    pub(crate) fn ascii_token(&self, b: u8) -> Option<TokenId> {
        self.ascii.get(b as usize).copied().flatten()
    }

    /// Computes what each token decodes to (llama.cpp's `token_to_piece` with `special = true`).
    /// Call after the attributes are final.
    pub(crate) fn build_pieces(&mut self) {
        let mut pieces = Vec::with_capacity(self.texts.len());
        let mut offs = Vec::with_capacity(self.len() + 1);
        for id in 0..self.len() as TokenId {
            offs.push(pieces.len() as u32);
            let a = self.attrs[id as usize];
            let text = self.text(id);
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                pieces.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                match self.encoding {
                    Encoding::Text => {
                        pieces.extend_from_slice(text.replace('\u{2581}', " ").as_bytes())
                    }
                    Encoding::ByteLevel => decode_text(text, &mut pieces),
                }
            } else if a & attr::BYTE != 0 {
                pieces.push(byte_of_byte_token(text));
            }
        }
        offs.push(pieces.len() as u32);
        self.pieces = pieces;
        self.piece_offs = offs;
    }

    /// What token `id` decodes to, special tokens rendered (`id` must be in range).
    #[inline]
    pub(crate) fn piece(&self, id: TokenId) -> &[u8] {
        let (a, b) = (
            self.piece_offs[id as usize],
            self.piece_offs[id as usize + 1],
        );
        &self.pieces[a as usize..b as usize]
    }
}

/// llama.cpp's `llama_decode_text`: byte-level characters back to bytes; a character outside the
/// 256 is written as `[UNK_BYTE_0x..<text>]`, as llama.cpp does.
fn decode_text(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for x in c.encode_utf8(&mut buf).as_bytes() {
                    out.extend_from_slice(format!("{x:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// The byte of a byte token `<0xNN>`: llama.cpp parses the two characters after `<0x` as hex
/// (`strtol`), stopping at the first non-hex character.
fn byte_of_byte_token(text: &str) -> u8 {
    let digits = text.as_bytes().get(3..).unwrap_or(&[]);
    let mut v: u32 = 0;
    for &d in digits.iter().take(2) {
        match (d as char).to_digit(16) {
            Some(x) => v = v * 16 + x,
            None => break,
        }
    }
    v as u8
}
