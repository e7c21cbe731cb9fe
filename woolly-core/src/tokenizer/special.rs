//! Splitting a text on special tokens before tokenization (llama.cpp's `tokenizer_st_partition`).
//!
//! llama.cpp takes the special tokens (control, user-defined and unknown ones) from the longest to
//! the shortest and, for each, cuts every occurrence out of the text pieces that are still raw,
//! left to right. The result is that a longer special token wins over a shorter one wherever they
//! overlap, whatever their positions. Done literally that is O(special tokens × text); here every
//! position's candidates come from one trie walk, and a priority queue replays llama.cpp's order:
//! candidates are taken by (rank, position), rank being the token's place in the longest-first
//! order, and a candidate is kept when it does not overlap one kept before.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::hash::FastMap;
use super::TokenId;

const NONE: u32 = u32::MAX;

/// A piece of a partitioned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Raw text to tokenize: a byte range of the input.
    Text(usize, usize),
    /// A special token found in the text.
    Token(TokenId),
}

/// A special token to match.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpecialToken<'a> {
    pub id: TokenId,
    pub text: &'a str,
    /// Control and unknown tokens are only matched when special tokens are parsed.
    pub needs_parse_special: bool,
    /// Whitespace before the token is dropped (llama.cpp's `LLAMA_TOKEN_ATTR_LSTRIP`).
    pub lstrip: bool,
    /// Whitespace after the token is dropped (`LLAMA_TOKEN_ATTR_RSTRIP`).
    pub rstrip: bool,
}

/// A possible match: (rank, start, length, id, strip), smallest (rank, start) first.
type Candidate = Reverse<(u32, usize, usize, TokenId, u8)>;

const LSTRIP: u8 = 1;
const RSTRIP: u8 = 2;

#[derive(Clone, Copy)]
struct Terminal {
    id: TokenId,
    /// Position in llama.cpp's processing order (longest first; equal lengths by id).
    rank: u32,
    needs_parse_special: bool,
    /// `LSTRIP | RSTRIP`.
    strip: u8,
}

/// A byte trie over the texts of the special tokens.
#[derive(Default)]
pub(crate) struct SpecialMatcher {
    /// Child of the root for each first byte.
    root: Vec<u32>,
    /// Edges below the first level: (node, byte) → node.
    edges: FastMap<(u32, u8), u32>,
    /// Terminal per node, if a token ends there.
    terminals: Vec<Option<Terminal>>,
    /// Whether any token is matched without `parse_special`.
    any_always: bool,
    any: bool,
    /// Unicode noncharacters that occur in the tokens' texts.
    nonchars: Vec<char>,
}

/// Whether `c` is one of Unicode's 66 noncharacters.
pub(crate) fn is_nonchar(c: char) -> bool {
    let u = c as u32;
    (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE
}

impl SpecialMatcher {
    /// Builds the matcher.
    pub(crate) fn new(tokens: &[SpecialToken]) -> SpecialMatcher {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| (Reverse(tokens[i].text.len()), tokens[i].id));
        let mut m = SpecialMatcher {
            root: vec![NONE; 256],
            edges: FastMap::default(),
            terminals: vec![None], // node 0 is the root
            any_always: false,
            any: false,
            nonchars: Vec::new(),
        };
        for (rank, &i) in order.iter().enumerate() {
            let tok = tokens[i];
            let bytes = tok.text.as_bytes();
            if bytes.is_empty() {
                continue;
            }
            for c in tok.text.chars().filter(|&c| is_nonchar(c)) {
                if !m.nonchars.contains(&c) {
                    m.nonchars.push(c);
                }
            }
            let mut node = 0u32;
            for (depth, &byte) in bytes.iter().enumerate() {
                let existing = if depth == 0 {
                    m.root[byte as usize]
                } else {
                    m.edges.get(&(node, byte)).copied().unwrap_or(NONE)
                };
                node = if existing == NONE {
                    let new = m.terminals.len() as u32;
                    m.terminals.push(None);
                    if depth == 0 {
                        m.root[byte as usize] = new;
                    } else {
                        m.edges.insert((node, byte), new);
                    }
                    new
                } else {
                    existing
                };
            }
            // Token texts are unique in a vocabulary, so a node ends at most one token.
            if m.terminals[node as usize].is_none() {
                m.terminals[node as usize] = Some(Terminal {
                    id: tok.id,
                    rank: rank as u32,
                    needs_parse_special: tok.needs_parse_special,
                    strip: (u8::from(tok.lstrip) * LSTRIP) | (u8::from(tok.rstrip) * RSTRIP),
                });
                m.any = true;
                m.any_always |= !tok.needs_parse_special;
            }
        }
        m
    }

    /// The longest eligible special token starting at `pos` and at most `max_len` bytes long.
    fn longest_at(
        &self,
        text: &[u8],
        pos: usize,
        max_len: usize,
        parse_special: bool,
    ) -> Option<(Terminal, usize)> {
        let first = *text.get(pos)?;
        let mut node = self.root[first as usize];
        let mut best = None;
        let mut len = 1;
        while node != NONE && len <= max_len {
            if let Some(t) = self.terminals[node as usize] {
                if parse_special || !t.needs_parse_special {
                    best = Some((t, len));
                }
            }
            let Some(&b) = text.get(pos + len) else {
                break;
            };
            node = self.edges.get(&(node, b)).copied().unwrap_or(NONE);
            len += 1;
        }
        best
    }

    /// Cuts `text` into raw pieces and special tokens, as llama.cpp does.
    #[cfg(test)]
    pub(crate) fn partition(&self, text: &str, parse_special: bool, out: &mut Vec<Fragment>) {
        self.partition_guarded(text, parse_special, &[], out)
    }

    /// Whether a token's text contains `c`.
    pub(crate) fn uses_char(&self, c: char) -> bool {
        self.nonchars.contains(&c)
    }

    /// Whether the text of a token that needs `parse_special` begins at `text[pos..]`.
    pub(crate) fn control_at(&self, text: &[u8], pos: usize) -> bool {
        let Some(&first) = text.get(pos) else {
            return false;
        };
        let Some(&(mut node)) = self.root.get(first as usize) else {
            return false;
        };
        let mut len = 1;
        while node != NONE {
            if self.terminals[node as usize].is_some_and(|t| t.needs_parse_special) {
                return true;
            }
            let Some(&b) = text.get(pos + len) else {
                return false;
            };
            node = self.edges.get(&(node, b)).copied().unwrap_or(NONE);
            len += 1;
        }
        false
    }

    /// [`partition`](Self::partition) where no token that needs `parse_special` may start at
    /// the byte offsets in `guards` (sorted): text there is matched as without `parse_special`.
    pub(crate) fn partition_guarded(
        &self,
        text: &str,
        parse_special: bool,
        guards: &[usize],
        out: &mut Vec<Fragment>,
    ) {
        out.clear();
        let ps = |pos: usize| parse_special && guards.binary_search(&pos).is_err();
        if text.is_empty() {
            return;
        }
        let eligible = if parse_special {
            self.any
        } else {
            self.any_always
        };
        if !eligible {
            out.push(Fragment::Text(0, text.len()));
            return;
        }
        let bytes = text.as_bytes();
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::new();
        for pos in 0..bytes.len() {
            if self.root[bytes[pos] as usize] == NONE {
                continue;
            }
            if let Some((t, len)) = self.longest_at(bytes, pos, usize::MAX, ps(pos)) {
                heap.push(Reverse((t.rank, pos, len, t.id, t.strip)));
            }
        }
        // Kept matches: start → (end, id); `None` for whitespace dropped beside a token (no longer
        // part of any text). They never overlap.
        let mut kept: BTreeMap<usize, (usize, Option<TokenId>)> = BTreeMap::new();
        while let Some(Reverse((_, start, len, id, strip))) = heap.pop() {
            let end = start + len;
            // The kept match that starts last before `end` is the only one that can overlap.
            let overlap = kept
                .range(..end)
                .next_back()
                .is_some_and(|(_, &(e, _))| e > start);
            if !overlap {
                kept.insert(start, (end, Some(id)));
                if strip & LSTRIP != 0 {
                    let lo = kept.range(..start).next_back().map_or(0, |(_, &(e, _))| e);
                    let mut s = start;
                    while s > lo && is_c_space(bytes[s - 1]) {
                        s -= 1;
                    }
                    if s < start {
                        kept.insert(s, (start, None));
                    }
                }
                if strip & RSTRIP != 0 {
                    let hi = kept.range(end..).next().map_or(bytes.len(), |(&s, _)| s);
                    let mut e = end;
                    while e < hi && is_c_space(bytes[e]) {
                        e += 1;
                    }
                    if e > end {
                        kept.insert(end, (e, None));
                    }
                }
                continue;
            }
            // A kept match covers `start` itself: nothing can start here any more.
            if kept
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &(e, _))| e > start)
            {
                continue;
            }
            // Otherwise a kept match starts inside (start, end): only shorter tokens that end
            // before it can still be kept here; they come later in the order.
            let limit = kept
                .range(start + 1..)
                .next()
                .map_or(len - 1, |(&s, _)| (s - start).min(len - 1));
            if let Some((t, l)) = self.longest_at(bytes, start, limit, ps(start)) {
                heap.push(Reverse((t.rank, start, l, t.id, t.strip)));
            }
        }
        let mut at = 0;
        for (&s, &(e, id)) in &kept {
            if s > at {
                out.push(Fragment::Text(at, s));
            }
            if let Some(id) = id {
                out.push(Fragment::Token(id));
            }
            at = e;
        }
        if at < bytes.len() {
            out.push(Fragment::Text(at, bytes.len()));
        }
    }
}

/// C's `isspace` in the "C" locale, which llama.cpp uses to strip around special tokens.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(m: &SpecialMatcher, text: &str, parse: bool) -> Vec<String> {
        let mut out = Vec::new();
        m.partition(text, parse, &mut out);
        out.iter()
            .map(|f| match *f {
                Fragment::Text(a, b) => format!("'{}'", &text[a..b]),
                Fragment::Token(id) => format!("#{id}"),
            })
            .collect()
    }

    fn tok(id: TokenId, text: &str, needs: bool) -> SpecialToken<'_> {
        SpecialToken {
            id,
            text,
            needs_parse_special: needs,
            lstrip: false,
            rstrip: false,
        }
    }

    #[test]
    fn longest_first_wins_everywhere() {
        // llama.cpp takes "bcd" first, although "ab" starts earlier.
        let m = SpecialMatcher::new(&[tok(1, "ab", false), tok(2, "bcd", false)]);
        assert_eq!(parts(&m, "abcd", false), ["'a'", "#2"]);
        assert_eq!(parts(&m, "abab", false), ["#1", "#1"]);
    }

    #[test]
    fn control_tokens_need_parse_special() {
        let m = SpecialMatcher::new(&[tok(5, "<s>", true), tok(6, "\n\n", false)]);
        assert_eq!(parts(&m, "a<s>b\n\n", false), ["'a<s>b'", "#6"]);
        assert_eq!(parts(&m, "a<s>b\n\n", true), ["'a'", "#5", "'b'", "#6"]);
    }

    #[test]
    fn runs_of_spaces() {
        let toks: Vec<(TokenId, String, bool)> = (2..=5)
            .map(|n| (n as TokenId, " ".repeat(n), false))
            .collect();
        let refs: Vec<SpecialToken> = toks.iter().map(|(i, s, b)| tok(*i, s, *b)).collect();
        let m = SpecialMatcher::new(&refs);
        // 12 spaces: 5 + 5 + 2, the longest taken left to right first.
        assert_eq!(parts(&m, &" ".repeat(12), false), ["#5", "#5", "#2"]);
        // 11 spaces: 5 + 5, then a lone space stays text.
        assert_eq!(
            parts(&m, &format!("x{}y", " ".repeat(11)), false),
            ["'x'", "#5", "#5", "' y'"]
        );
    }

    #[test]
    fn guarded_positions_match_only_plain_specials() {
        let m = SpecialMatcher::new(&[tok(5, "<s>", true), tok(6, "<u>", false)]);
        let text = "<s><s><u>";
        let mut out = Vec::new();
        m.partition_guarded(text, true, &[3, 6], &mut out);
        assert_eq!(
            out,
            [Fragment::Token(5), Fragment::Text(3, 6), Fragment::Token(6)]
        );
        assert!(m.control_at(b"a<s>", 1));
        assert!(!m.control_at(b"a<s>", 0));
        assert!(!m.control_at(b"<u>", 0));
        assert!(!m.control_at(b"<s", 0));
    }

    #[test]
    fn strip_whitespace_beside_tokens() {
        let mut t = tok(7, "<|user|>", false);
        t.rstrip = true;
        let mut m = tok(8, "<mask>", false);
        m.lstrip = true;
        let sm = SpecialMatcher::new(&[t, m]);
        assert_eq!(parts(&sm, "a <|user|> \n b", false), ["'a '", "#7", "'b'"]);
        assert_eq!(parts(&sm, "a  <mask> b", false), ["'a'", "#8", "' b'"]);
        assert_eq!(parts(&sm, "<|user|>   ", false), ["#7"]);
    }
}
