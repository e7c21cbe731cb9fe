//! GBNF (llama.cpp's grammar syntax) translated into llguidance's Lark syntax.
//!
//! The syntax read is llama.cpp's (`grammar-parser`): rules `name ::= alternatives`, string
//! literals and character classes with the escapes `\x..`, `\u....`, `\U........`, `\t`, `\n`,
//! `\r`, `\\`, `\"`, `\[`, `\]`, `\-`; `.` for any character; groups; the postfix operators `*`,
//! `+`, `?`, `{m}`, `{m,}`, `{m,n}`, `{,n}`; `#` comments. Newlines end a rule except after
//! `::=`, after `|` and inside parentheses. Generation starts at `root`. Token references
//! (`<...>`) are not supported and are an error.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::{Error, Result};

/// The Lark grammar for GBNF `text`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the line of the first syntax error, an undefined rule or a
/// missing `root`.
pub fn gbnf_to_lark(text: &str) -> Result<String> {
    let mut p = Parser {
        text,
        s: text.as_bytes(),
        pos: 0,
        refs: BTreeSet::new(),
        defined: BTreeSet::new(),
        out: String::new(),
    };
    p.grammar().map_err(|msg| {
        let line = text.as_bytes()[..p.pos.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::InvalidArgument(format!("GBNF grammar, line {line}: {msg}"))
    })?;
    if !p.defined.contains("root") {
        return Err(Error::InvalidArgument(
            "GBNF grammar: no `root` rule (generation starts there)".into(),
        ));
    }
    if let Some(undefined) = p.refs.difference(&p.defined).next() {
        return Err(Error::InvalidArgument(format!(
            "GBNF grammar: rule `{undefined}` is used but never defined"
        )));
    }
    Ok(format!("start: {}\n{}", rule_name("root"), p.out))
}

/// A GBNF rule name as a Lark rule name: `g_` and the name, with `_` doubled and an upper-case
/// letter written as `_` and its lower case (so that different names stay different).
fn rule_name(name: &str) -> String {
    let mut out = String::from("g_");
    for c in name.chars() {
        match c {
            '_' => out.push_str("__"),
            'A'..='Z' => {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            }
            _ => out.push(c),
        }
    }
    out
}

struct Parser<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
    refs: BTreeSet<String>,
    defined: BTreeSet<String>,
    out: String,
}

type PResult<T> = std::result::Result<T, String>;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn space(&mut self, newline_ok: bool) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' => self.pos += 1,
                b'#' => {
                    while self.peek().is_some_and(|b| b != b'\n' && b != b'\r') {
                        self.pos += 1;
                    }
                }
                b'\n' | b'\r' if newline_ok => self.pos += 1,
                _ => break,
            }
        }
    }

    fn name(&mut self) -> PResult<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_word) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err("expected a rule name".into());
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn grammar(&mut self) -> PResult<()> {
        self.space(true);
        while self.peek().is_some() {
            self.rule()?;
        }
        Ok(())
    }

    fn rule(&mut self) -> PResult<()> {
        let name = self.name()?;
        self.space(false);
        if !self.s[self.pos..].starts_with(b"::=") {
            return Err(format!("expected ::= after `{name}`"));
        }
        self.pos += 3;
        self.space(true);
        let body = self.alternates(false)?;
        match self.peek() {
            Some(b'\r') => {
                self.pos += 1;
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
            }
            Some(b'\n') => self.pos += 1,
            None => {}
            Some(_) => return Err("expected the end of the line".into()),
        }
        self.space(true);
        if !self.defined.insert(name.clone()) {
            return Err(format!("rule `{name}` is defined twice"));
        }
        let _ = writeln!(self.out, "{}: {body}", rule_name(&name));
        Ok(())
    }

    fn alternates(&mut self, nested: bool) -> PResult<String> {
        let mut alts = vec![self.sequence(nested)?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            self.space(true);
            alts.push(self.sequence(nested)?);
        }
        Ok(alts.join(" | "))
    }

    fn sequence(&mut self, nested: bool) -> PResult<String> {
        let mut items: Vec<String> = Vec::new();
        while let Some(b) = self.peek() {
            let item = match b {
                b'"' => {
                    let start = self.pos;
                    self.pos += 1;
                    let mut lit = String::new();
                    loop {
                        match self.peek() {
                            None => {
                                // The error names the line where the literal starts.
                                self.pos = start;
                                return Err("unterminated string literal".into());
                            }
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(_) => lit.push(self.char()?),
                        }
                    }
                    serde_json::to_string(&lit).expect("a string serializes")
                }
                b'[' => {
                    self.pos += 1;
                    let mut class = String::from("[");
                    if self.peek() == Some(b'^') {
                        self.pos += 1;
                        class.push('^');
                    }
                    let mut empty = true;
                    loop {
                        match self.peek() {
                            None => return Err("unterminated character class".into()),
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            Some(_) => {
                                let lo = self.char()?;
                                push_class_char(&mut class, lo);
                                if self.peek() == Some(b'-')
                                    && self.s.get(self.pos + 1) != Some(&b']')
                                {
                                    self.pos += 1;
                                    let hi = self.char()?;
                                    if hi < lo {
                                        return Err(format!(
                                            "character range {lo:?}-{hi:?} runs backwards"
                                        ));
                                    }
                                    class.push('-');
                                    push_class_char(&mut class, hi);
                                }
                                empty = false;
                            }
                        }
                    }
                    if empty {
                        return Err("empty character class".into());
                    }
                    class.push(']');
                    format!("/{class}/")
                }
                b'.' => {
                    self.pos += 1;
                    "/(?s:.)/".to_string()
                }
                b'(' => {
                    self.pos += 1;
                    self.space(true);
                    let inner = self.alternates(true)?;
                    if self.peek() != Some(b')') {
                        return Err("expected )".into());
                    }
                    self.pos += 1;
                    format!("({inner})")
                }
                b'*' | b'+' | b'?' => {
                    let Some(last) = items.last_mut() else {
                        return Err(format!("{} with nothing before it", b as char));
                    };
                    self.pos += 1;
                    // Lark repeats an atom: an item already ending in an operator is grouped.
                    if last.ends_with(['*', '+', '?', '}']) {
                        *last = format!("({last})");
                    }
                    last.push(b as char);
                    self.space(nested);
                    continue;
                }
                b'{' => {
                    let Some(last) = items.last_mut() else {
                        return Err("{ with nothing before it".into());
                    };
                    self.pos += 1;
                    self.space(nested);
                    let min = self.number();
                    self.space(nested);
                    let range = if self.peek() == Some(b',') {
                        self.pos += 1;
                        self.space(nested);
                        let max = self.number();
                        self.space(nested);
                        if let (Some(a), Some(b)) = (min, max) {
                            if b < a {
                                return Err(format!("repetition {{{a},{b}}} runs backwards"));
                            }
                        }
                        format!(
                            "{{{},{}}}",
                            min.unwrap_or(0),
                            max.map(|m| m.to_string()).unwrap_or_default()
                        )
                    } else {
                        let Some(n) = min else {
                            return Err("expected a number after {".into());
                        };
                        format!("{{{n}}}")
                    };
                    if self.peek() != Some(b'}') {
                        return Err("expected }".into());
                    }
                    self.pos += 1;
                    if last.ends_with(['*', '+', '?', '}']) {
                        *last = format!("({last})");
                    }
                    last.push_str(&range);
                    self.space(nested);
                    continue;
                }
                b'<' => return Err("token references (<...>) are not supported".into()),
                b if is_word(b) => {
                    let name = self.name()?;
                    let r = rule_name(&name);
                    self.refs.insert(name);
                    r
                }
                _ => break,
            };
            items.push(item);
            self.space(nested);
        }
        Ok(if items.is_empty() {
            "\"\"".to_string()
        } else {
            items.join(" ")
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos])
            .ok()
            .and_then(|d| d.parse().ok())
    }

    /// One character of a literal or class, escapes decoded.
    fn char(&mut self) -> PResult<char> {
        // Every position the parser stops at is a character boundary of the text.
        let rest = &self.text[self.pos..];
        let mut chars = rest.chars();
        let c = chars.next().ok_or("unexpected end")?;
        if c != '\\' {
            self.pos += c.len_utf8();
            return Ok(c);
        }
        let e = chars.next().ok_or("unfinished escape")?;
        self.pos += 2;
        let hex = |p: &mut Self, n: usize| -> PResult<char> {
            let digits =
                p.s.get(p.pos..p.pos + n)
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .ok_or("unfinished escape")?;
            let v =
                u32::from_str_radix(digits, 16).map_err(|_| format!("bad escape {digits:?}"))?;
            p.pos += n;
            char::from_u32(v).ok_or_else(|| format!("escape {v:#x} is not a character"))
        };
        Ok(match e {
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            '\\' | '"' | '[' | ']' | '-' | '/' => e,
            other => return Err(format!("unknown escape \\{other}")),
        })
    }
}

/// `c` inside a regex character class, escaped when it means something there.
fn push_class_char(class: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || (!c.is_ascii() && !c.is_control()) {
        class.push(c);
    } else {
        let _ = write!(class, "\\x{{{:x}}}", c as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_llama_cpp_syntax() {
        let g = gbnf_to_lark(
            "root ::= answer ws\n# a comment\nanswer ::= (\"yes\" | \"no\")\n  \nws ::= [ \\t\\n]{0,3}\n",
        )
        .unwrap();
        assert_eq!(
            g,
            "start: g_root\ng_root: g_answer g_ws\ng_answer: (\"yes\" | \"no\")\ng_ws: /[\\x{20}\\x{9}\\x{a}]/{0,3}\n"
        );
    }

    #[test]
    fn names_stay_distinct() {
        assert_ne!(rule_name("a_b"), rule_name("aB"));
        assert_ne!(rule_name("a-b"), rule_name("a_b"));
        assert_eq!(rule_name("Foo-bar_1"), "g__foo-bar__1");
    }

    #[test]
    fn errors_name_the_line() {
        let e = gbnf_to_lark("root ::= a\na ::= \"x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("unterminated"), "{e}");
        let e = gbnf_to_lark("root ::= missing\n").unwrap_err().to_string();
        assert!(e.contains("`missing`"), "{e}");
        let e = gbnf_to_lark("start ::= \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("root"), "{e}");
        assert!(gbnf_to_lark("root ::= [z-a]\n").is_err());
        assert!(gbnf_to_lark("root ::= \"a\"{3,1}\n").is_err());
        assert!(gbnf_to_lark("root ::= * \"a\"\n").is_err());
        assert!(gbnf_to_lark("root ::= <think>\n").is_err());
        assert!(gbnf_to_lark("root ::= \"a\"\nroot ::= \"b\"\n").is_err());
    }

    #[test]
    fn escapes_and_classes() {
        let g = gbnf_to_lark("root ::= \"\\x41\\u00e9\\\"\" [^\\]a-c] .\n").unwrap();
        assert!(g.contains("\"A\u{e9}\\\"\""), "{g}");
        assert!(g.contains("/[^\\x{5d}a-c]/"), "{g}");
        assert!(g.contains("/(?s:.)/"), "{g}");
    }
}
