//! Pre-tokenizers for byte-level BPE: split a text into the words that BPE merges within.
//!
//! llama.cpp applies a list of regular expressions one after another, each splitting the pieces the
//! previous one produced (`unicode_regex_split`). The common expressions have hand-written splitters
//! in llama.cpp's `unicode.cpp` (GPT-2's and Llama 3's); the others run through `std::regex` on a
//! "collapsed" text where every non-ASCII code point stands for its category. Each pass here
//! reproduces one of those expressions exactly, in linear time and without regex lookaround.

use super::unicode::{flags, LETTER, NUMBER, PUNCT, SPACE};

/// One splitting pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// `[\p{P}<extra>]+`: runs of punctuation (plus the listed ASCII characters) become pieces.
    PunctRun(&'static str),
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    Gpt2,
    /// `\p{N}+`.
    NumberRun,
    /// `\p{N}`: every number character is a piece of its own.
    SingleNumber,
    /// `[0-9][0-9][0-9]`.
    Digits3,
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with `k = max_digits` (3 for Llama 3, 1 for Qwen 2, whose `\p{N}` llama.cpp runs through the
    /// collapsed `std::regex`, which gives the same pieces).
    Llama3 {
        /// Most digits in one piece.
        max_digits: usize,
    },
}

/// Working storage for [`split`], reusable across calls.
#[derive(Default)]
pub(crate) struct Splitter {
    chars: Vec<char>,
    flags: Vec<u8>,
    offs: Vec<usize>,
    segs: Vec<(usize, usize)>,
    next: Vec<(usize, usize)>,
}

impl Splitter {
    /// Splits `text` with `passes` and appends the byte ranges of the pieces, in order, to `words`.
    pub(crate) fn split(&mut self, text: &str, passes: &[Pass], words: &mut Vec<(usize, usize)>) {
        self.chars.clear();
        self.flags.clear();
        self.offs.clear();
        for (i, c) in text.char_indices() {
            self.chars.push(c);
            self.flags.push(flags(c));
            self.offs.push(i);
        }
        self.offs.push(text.len());
        self.segs.clear();
        if !self.chars.is_empty() {
            self.segs.push((0, self.chars.len()));
        }
        for pass in passes {
            self.next.clear();
            for &(a, b) in &self.segs {
                let mut out = Out {
                    segs: &mut self.next,
                };
                match *pass {
                    Pass::PunctRun(extra) => {
                        runs(&self.chars, &self.flags, a, b, &mut out, |c, f| {
                            f & PUNCT != 0 || (c.is_ascii() && extra.contains(c))
                        })
                    }
                    Pass::NumberRun => runs(&self.chars, &self.flags, a, b, &mut out, |_, f| {
                        f & NUMBER != 0
                    }),
                    Pass::SingleNumber => singles(&self.flags, a, b, &mut out),
                    Pass::Digits3 => digits3(&self.chars, a, b, &mut out),
                    Pass::Gpt2 => gpt2(&self.chars, &self.flags, a, b, &mut out),
                    Pass::Llama3 { max_digits } => {
                        llama3(&self.chars, &self.flags, a, b, max_digits.max(1), &mut out)
                    }
                }
            }
            std::mem::swap(&mut self.segs, &mut self.next);
        }
        words.extend(self.segs.iter().map(|&(a, b)| (self.offs[a], self.offs[b])));
    }
}

struct Out<'a> {
    segs: &'a mut Vec<(usize, usize)>,
}

impl Out<'_> {
    #[inline]
    fn emit(&mut self, a: usize, b: usize) {
        if b > a {
            self.segs.push((a, b));
        }
    }
}

/// Maximal runs of characters satisfying `pred` become pieces; the gaps between them too.
fn runs(
    chars: &[char],
    fl: &[u8],
    a: usize,
    b: usize,
    out: &mut Out,
    pred: impl Fn(char, u8) -> bool,
) {
    let mut gap = a;
    let mut i = a;
    while i < b {
        if pred(chars[i], fl[i]) {
            let s = i;
            while i < b && pred(chars[i], fl[i]) {
                i += 1;
            }
            out.emit(gap, s);
            out.emit(s, i);
            gap = i;
        } else {
            i += 1;
        }
    }
    out.emit(gap, b);
}

/// Every number character is a piece; so is each gap between them.
fn singles(fl: &[u8], a: usize, b: usize, out: &mut Out) {
    let mut gap = a;
    for (i, &f) in fl.iter().enumerate().take(b).skip(a) {
        if f & NUMBER != 0 {
            out.emit(gap, i);
            out.emit(i, i + 1);
            gap = i + 1;
        }
    }
    out.emit(gap, b);
}

/// Leftmost non-overlapping triples of ASCII digits are pieces; so is each gap between them.
fn digits3(chars: &[char], a: usize, b: usize, out: &mut Out) {
    let mut gap = a;
    let mut i = a;
    while i + 3 <= b {
        if chars[i..i + 3].iter().all(|c| c.is_ascii_digit()) {
            out.emit(gap, i);
            out.emit(i, i + 3);
            i += 3;
            gap = i;
        } else {
            i += 1;
        }
    }
    out.emit(gap, b);
}

/// llama.cpp's `unicode_regex_split_custom_gpt2`, on the characters `[a, b)`.
fn gpt2(chars: &[char], fl: &[u8], a: usize, b: usize, out: &mut Out) {
    let f = |p: usize| if p < b { fl[p] } else { 0 };
    let mut pos = a;
    while pos < b {
        let c = chars[pos];
        // 's|'t|'re|'ve|'m|'ll|'d
        if c == '\'' && pos + 1 < b {
            let n = chars[pos + 1];
            if matches!(n, 's' | 't' | 'm' | 'd') {
                out.emit(pos, pos + 2);
                pos += 2;
                continue;
            }
            if pos + 2 < b {
                let nn = chars[pos + 2];
                if matches!((n, nn), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    out.emit(pos, pos + 3);
                    pos += 3;
                    continue;
                }
            }
        }
        let sp = usize::from(c == ' ');
        let (f2, in_range) = if c == ' ' {
            (f(pos + 1), pos + 1 < b)
        } else {
            (fl[pos], true)
        };
        //  ?\p{L}+ |  ?\p{N}+
        let class = if f2 & LETTER != 0 {
            LETTER
        } else if f2 & NUMBER != 0 {
            NUMBER
        } else {
            0
        };
        if class != 0 {
            let s = pos;
            pos += sp;
            while pos < b && fl[pos] & class != 0 {
                pos += 1;
            }
            out.emit(s, pos);
            continue;
        }
        //  ?[^\s\p{L}\p{N}]+
        if in_range && f2 & (SPACE | LETTER | NUMBER) == 0 {
            let s = pos;
            pos += sp;
            while pos < b && fl[pos] & (SPACE | LETTER | NUMBER) == 0 {
                pos += 1;
            }
            out.emit(s, pos);
            continue;
        }
        let mut k = 0;
        while f(pos + k) & SPACE != 0 {
            k += 1;
        }
        // \s+(?!\S)
        if k > 1 && pos + k < b {
            out.emit(pos, pos + k - 1);
            pos += k - 1;
            continue;
        }
        // \s+
        if k > 0 {
            out.emit(pos, pos + k);
            pos += k;
            continue;
        }
        out.emit(pos, pos + 1);
        pos += 1;
    }
}

/// llama.cpp's `unicode_regex_split_custom_llama3`, with the digit-group size as a parameter.
fn llama3(chars: &[char], fl: &[u8], a: usize, b: usize, max_digits: usize, out: &mut Out) {
    let f = |p: usize| if p < b { fl[p] } else { 0 };
    let cr_lf = |c: char| c == '\r' || c == '\n';
    let mut pos = a;
    while pos < b {
        let c = chars[pos];
        let fc = fl[pos];
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if c == '\'' && pos + 1 < b {
            let n = chars[pos + 1].to_ascii_lowercase();
            if matches!(n, 's' | 't' | 'm' | 'd') {
                out.emit(pos, pos + 2);
                pos += 2;
                continue;
            }
            if pos + 2 < b {
                let nn = chars[pos + 2].to_ascii_lowercase();
                if matches!((n, nn), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    out.emit(pos, pos + 3);
                    pos += 3;
                    continue;
                }
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(cr_lf(c) || fc & NUMBER != 0) && (fc & LETTER != 0 || f(pos + 1) & LETTER != 0) {
            let s = pos;
            pos += 1;
            while pos < b && fl[pos] & LETTER != 0 {
                pos += 1;
            }
            out.emit(s, pos);
            continue;
        }
        // \p{N}{1,k}
        if fc & NUMBER != 0 {
            let mut ini = pos;
            while pos < b && fl[pos] & NUMBER != 0 {
                pos += 1;
                if pos - ini >= max_digits {
                    out.emit(ini, pos);
                    ini = pos;
                }
            }
            out.emit(ini, pos);
            continue;
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        let (f2, in_range) = if c == ' ' {
            (f(pos + 1), pos + 1 < b)
        } else {
            (fc, true)
        };
        if f2 & (SPACE | LETTER | NUMBER) == 0 {
            // llama.cpp tests the current character here, which is always in range; a lone
            // trailing space takes this branch and becomes a piece by itself.
            let s = pos;
            pos += usize::from(c == ' ');
            if in_range {
                while pos < b && fl[pos] & (SPACE | LETTER | NUMBER) == 0 {
                    pos += 1;
                }
                while pos < b && cr_lf(chars[pos]) {
                    pos += 1;
                }
            }
            out.emit(s, pos);
            continue;
        }
        let mut k = 0;
        let mut last_cr_lf = None;
        while f(pos + k) & SPACE != 0 {
            if cr_lf(chars[pos + k]) {
                last_cr_lf = Some(pos + k + 1);
            }
            k += 1;
        }
        // \s*[\r\n]+
        if let Some(end) = last_cr_lf {
            out.emit(pos, end);
            pos = end;
            continue;
        }
        // \s+(?!\S)
        if k > 1 && pos + k < b {
            out.emit(pos, pos + k - 1);
            pos += k - 1;
            continue;
        }
        // \s+
        if k > 0 {
            out.emit(pos, pos + k);
            pos += k;
            continue;
        }
        out.emit(pos, pos + 1);
        pos += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str, passes: &[Pass]) -> Vec<String> {
        let mut words = Vec::new();
        Splitter::default().split(text, passes, &mut words);
        words.iter().map(|&(a, b)| text[a..b].to_string()).collect()
    }

    #[test]
    fn llama3_pieces() {
        let p = [Pass::Llama3 { max_digits: 3 }];
        assert_eq!(
            pieces("Hello, y'all! How are you 😁 ?", &p),
            ["Hello", ",", " y", "'all", "!", " How", " are", " you", " 😁", " ?"]
        );
        assert_eq!(pieces("1234567", &p), ["123", "456", "7"]);
        assert_eq!(pieces("a  b", &p), ["a", " ", " b"]);
        assert_eq!(pieces("a \n\n b ", &p), ["a", " \n\n", " b", " "]);
        assert_eq!(pieces("I'M", &p), ["I", "'M"]);
        assert_eq!(pieces("x   ", &p), ["x", "   "]);
    }

    #[test]
    fn qwen2_digits() {
        let p = [Pass::Llama3 { max_digits: 1 }];
        assert_eq!(pieces("x 123", &p), ["x", " ", "1", "2", "3"]);
    }

    #[test]
    fn gpt2_pieces() {
        let p = [Pass::Gpt2];
        assert_eq!(
            pieces("Hello world's  end 42!!", &p),
            ["Hello", " world", "'s", " ", " end", " 42", "!!"]
        );
        assert_eq!(pieces("I'M", &p), ["I", "'", "M"]);
    }

    #[test]
    fn default_passes() {
        let p = [
            Pass::PunctRun("$+<=>^~|"),
            Pass::Gpt2,
            Pass::NumberRun,
            Pass::Digits3,
        ];
        assert_eq!(pieces("a+b=12345", &p), ["a", "+", "b", "=", "123", "45"]);
    }
}
