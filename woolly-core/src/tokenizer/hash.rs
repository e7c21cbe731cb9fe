//! A small, fast hasher for the tokenizer's lookup tables (token texts, merge pairs, trie edges).
//!
//! The keys come from the model file and are looked up with pieces of user text; SipHash's
//! resistance to chosen collisions buys nothing here (an attacker who controls the text does not
//! choose the table's keys), while its cost would dominate tokenization.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style word-at-a-time hasher with a final avalanche.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash ^ w).wrapping_mul(K).rotate_left(26);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64, so that both the low bits (bucket) and the high bits (tag) are mixed.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Hash of a byte string.
#[inline]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FastHasher::default();
    h.write(bytes);
    h.finish()
}

#[derive(Clone, Copy)]
struct Slot {
    /// High half of the key's hash.
    tag: u32,
    /// `EMPTY` for a free slot.
    id: u32,
    off: u32,
    len: u32,
}

const EMPTY: u32 = u32::MAX;

/// An open-addressing map from byte strings to ids, its keys stored back to back in one buffer.
///
/// Lookups with pieces of text are the tokenizers' inner loop. Compared with a `HashMap` of boxed
/// keys, a probe here touches one 16-byte slot and, on a tag match, the key bytes: no pointer
/// chasing, no allocation per key.
pub(crate) struct BytesTable {
    slots: Vec<Slot>,
    keys: Vec<u8>,
    mask: usize,
    len: usize,
}

impl BytesTable {
    /// A table for about `n` keys.
    pub(crate) fn with_capacity(n: usize) -> BytesTable {
        let cap = (n.max(8) * 2).next_power_of_two();
        BytesTable {
            slots: vec![
                Slot {
                    tag: 0,
                    id: EMPTY,
                    off: 0,
                    len: 0
                };
                cap
            ],
            keys: Vec::new(),
            mask: cap - 1,
            len: 0,
        }
    }

    /// Inserts `key → id` unless `key` is present; returns the id already there, if any.
    /// Keys must total less than 4 GiB and `id` must not be `u32::MAX`.
    pub(crate) fn insert(&mut self, key: &[u8], id: u32) -> Option<u32> {
        if let Some(old) = self.get(key) {
            return Some(old);
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let off = self.keys.len() as u32;
        self.keys.extend_from_slice(key);
        let h = hash_bytes(key);
        self.place(
            Slot {
                tag: (h >> 32) as u32,
                id,
                off,
                len: key.len() as u32,
            },
            h,
        );
        self.len += 1;
        None
    }

    fn place(&mut self, slot: Slot, h: u64) {
        let mut i = h as usize & self.mask;
        while self.slots[i].id != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        let old = std::mem::replace(
            &mut self.slots,
            vec![
                Slot {
                    tag: 0,
                    id: EMPTY,
                    off: 0,
                    len: 0
                };
                cap
            ],
        );
        self.mask = cap - 1;
        for s in old.into_iter().filter(|s| s.id != EMPTY) {
            let h = hash_bytes(&self.keys[s.off as usize..(s.off + s.len) as usize]);
            self.place(s, h);
        }
    }

    /// The id of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<u32> {
        let h = hash_bytes(key);
        let tag = (h >> 32) as u32;
        let mut i = h as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s.id == EMPTY {
                return None;
            }
            if s.tag == tag
                && s.len as usize == key.len()
                && &self.keys[s.off as usize..(s.off + s.len) as usize] == key
            {
                return Some(s.id);
            }
            i = (i + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_table() {
        let mut t = BytesTable::with_capacity(2);
        for i in 0..1000u32 {
            assert_eq!(t.insert(format!("k{i}").as_bytes(), i), None);
        }
        assert_eq!(t.insert(b"k5", 9), Some(5));
        assert_eq!(t.len, 1000);
        for i in 0..1000u32 {
            assert_eq!(t.get(format!("k{i}").as_bytes()), Some(i));
        }
        assert_eq!(t.get(b"k1000"), None);
        assert_eq!(t.get(b""), None);
        assert_eq!(t.insert(b"", 7), None);
        assert_eq!(t.get(b""), Some(7));
    }
}
