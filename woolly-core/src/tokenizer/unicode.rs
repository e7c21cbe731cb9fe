//! The little Unicode knowledge the tokenizers need: character classes for the pre-tokenizers
//! (as llama.cpp's `unicode.cpp` defines them) and GPT-2's byte-to-character mapping.

use std::sync::OnceLock;

use super::unicode_data::{Class, RANGES};

/// `\p{L}`.
pub(crate) const LETTER: u8 = 1;
/// `\p{N}`.
pub(crate) const NUMBER: u8 = 2;
/// `\p{P}`.
pub(crate) const PUNCT: u8 = 4;
/// White space, llama.cpp's definition (Unicode's `White_Space` property).
pub(crate) const SPACE: u8 = 8;

/// Unicode's `White_Space` code points (the set llama.cpp uses for `\s`).
#[inline]
pub(crate) fn is_space(cp: u32) -> bool {
    matches!(
        cp,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

const BLOCK: usize = 256;
const N_BLOCKS: usize = 0x110000 / BLOCK;

/// A two-level lookup table: block index per 256 code points, deduplicated blocks of flags.
struct FlagTable {
    index: Vec<u16>,
    blocks: Vec<[u8; BLOCK]>,
}

fn class_bits(c: Class) -> u8 {
    match c {
        Class::L => LETTER,
        Class::N => NUMBER,
        Class::P => PUNCT,
        Class::O => 0,
    }
}

fn table() -> &'static FlagTable {
    static TABLE: OnceLock<FlagTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut index = Vec::with_capacity(N_BLOCKS);
        let mut blocks: Vec<[u8; BLOCK]> = Vec::new();
        let mut seen: std::collections::HashMap<[u8; BLOCK], u16> = Default::default();
        let mut r = 0usize; // current range
        for b in 0..N_BLOCKS {
            let mut block = [0u8; BLOCK];
            for (i, slot) in block.iter_mut().enumerate() {
                let cp = (b * BLOCK + i) as u32;
                while r + 1 < RANGES.len() && RANGES[r + 1].0 <= cp {
                    r += 1;
                }
                let mut f = class_bits(RANGES[r].1);
                if is_space(cp) {
                    f |= SPACE;
                }
                *slot = f;
            }
            let next = blocks.len() as u16;
            let id = *seen.entry(block).or_insert_with(|| {
                blocks.push(block);
                next
            });
            index.push(id);
        }
        FlagTable { index, blocks }
    })
}

/// Flags of ASCII characters, computed once (the common case in every text).
fn ascii_flags() -> &'static [u8; 128] {
    static ASCII: OnceLock<[u8; 128]> = OnceLock::new();
    ASCII.get_or_init(|| {
        let t = table();
        let mut a = [0u8; 128];
        for (i, slot) in a.iter_mut().enumerate() {
            *slot = t.blocks[t.index[0] as usize][i];
        }
        a
    })
}

/// The class flags ([`LETTER`], [`NUMBER`], [`PUNCT`], [`SPACE`]) of a character.
#[inline]
pub(crate) fn flags(c: char) -> u8 {
    let cp = c as u32;
    if cp < 128 {
        return ascii_flags()[cp as usize];
    }
    let t = table();
    let b = t.index[(cp as usize) / BLOCK] as usize;
    t.blocks[b][(cp as usize) % BLOCK]
}

/// GPT-2's byte-level encoding: the character each byte is written as in byte-level BPE vocabularies.
pub(crate) fn byte_to_char(b: u8) -> char {
    byte_maps().0[b as usize]
}

/// The byte a GPT-2 byte-level character stands for, if it is one of the 256.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 0x144 {
        let b = byte_maps().1[cp as usize];
        if b >= 0 {
            return Some(b as u8);
        }
    }
    None
}

/// (byte → char, code point below 0x144 → byte or -1).
fn byte_maps() -> &'static ([char; 256], [i16; 0x144]) {
    static MAPS: OnceLock<([char; 256], [i16; 0x144])> = OnceLock::new();
    MAPS.get_or_init(|| {
        let printable = |b: u32| {
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
        };
        let mut fwd = ['\0'; 256];
        let mut inv = [-1i16; 0x144];
        let mut n = 0u32;
        for b in 0..256u32 {
            let cp = if printable(b) {
                b
            } else {
                n += 1;
                255 + n
            };
            // Every value here is below 0x144 and a valid scalar value.
            fwd[b as usize] = char::from_u32(cp).unwrap_or('\u{FFFD}');
            inv[cp as usize] = b as i16;
        }
        (fwd, inv)
    })
}

/// Decodes a byte-level BPE token text to the bytes it stands for; `None` if some character is not
/// one of GPT-2's 256.
pub(crate) fn decode_byte_level(text: &str) -> Option<Vec<u8>> {
    text.chars().map(char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(flags('a'), LETTER);
        assert_eq!(flags('Z'), LETTER);
        assert_eq!(flags('7'), NUMBER);
        assert_eq!(flags('!'), PUNCT);
        assert_eq!(flags('$'), 0);
        assert_eq!(flags(' '), SPACE);
        assert_eq!(flags('\n'), SPACE);
        assert_eq!(flags('\u{1c}'), 0);
        assert_eq!(flags('é'), LETTER);
        assert_eq!(flags('日'), LETTER);
        assert_eq!(flags('²'), NUMBER);
        assert_eq!(flags('\u{3000}'), SPACE);
        assert_eq!(flags('\u{85}'), SPACE);
        assert_eq!(flags('\u{2EBF0}'), LETTER); // CJK extension I (Unicode 15.1)
        assert_eq!(flags('\u{1C89}'), 0); // unassigned in 15.1
        assert_eq!(flags('🙂'), 0);
        assert_eq!(flags('\u{10FFFF}'), 0);
    }

    #[test]
    fn byte_level_map_is_a_bijection() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(char_to_byte('日'), None);
        assert_eq!(decode_byte_level("Ġthe").as_deref(), Some(&b" the"[..]));
    }
}
