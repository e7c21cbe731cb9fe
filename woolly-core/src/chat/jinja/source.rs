//! What is done to a template's source before minijinja compiles it: a lexical scan that bounds
//! its size and every tag's operators and nesting, and the rewriting of number literals so
//! that nothing is folded (built) at compile time.

use super::rewrite::RESERVED;
use super::{MAX_SOURCE, MAX_TAG_NESTING, MAX_TAG_OPERATORS};
use crate::{Error, Result};

/// Rejects sources too large, too deeply nested or with too long operator chains, before
/// minijinja parses them, and names reserved for Woolly.
pub(super) fn prescan(src: &str) -> Result<()> {
    if src.len() > MAX_SOURCE {
        return Err(Error::InvalidModel(format!(
            "the model's chat template is {} KiB, more than the {} KiB allowed",
            src.len() >> 10,
            MAX_SOURCE >> 10
        )));
    }
    if src.contains(RESERVED) {
        return Err(Error::InvalidModel(format!(
            "the model's chat template uses the reserved name `{RESERVED}`"
        )));
    }
    let b = src.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        let close: &[u8] = match b[i + 1] {
            b'{' => b"}}",
            b'%' => b"%}",
            b'#' => {
                // A comment runs to `#}`.
                i = find(b, i + 2, b"#}").map_or(b.len(), |e| e + 2);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i;
        i += 2;
        let (mut ops, mut depth, mut max_depth) = (0usize, 0usize, 0usize);
        let mut word = String::new();
        let flush = |word: &mut String, ops: &mut usize| {
            if matches!(
                word.as_str(),
                "and" | "or" | "not" | "is" | "in" | "if" | "else"
            ) {
                *ops += 1;
            }
            word.clear();
        };
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_alphanumeric() || c == b'_' {
                word.push(c as char);
                i += 1;
                continue;
            }
            flush(&mut word, &mut ops);
            if b[i..].starts_with(close) {
                i += 2;
                break;
            }
            match c {
                b'"' | b'\'' => {
                    i += 1;
                    while i < b.len() && b[i] != c {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'(' | b'[' | b'{' => {
                    ops += 1;
                    depth += 1;
                    max_depth = max_depth.max(depth);
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                b'+' | b'-' | b'*' | b'/' | b'%' | b'~' | b'|' | b'.' | b'=' | b'!' | b'<'
                | b'>' => ops += 1,
                _ => {}
            }
            i += 1;
        }
        flush(&mut word, &mut ops);
        let line = src[..start].bytes().filter(|&c| c == b'\n').count() + 1;
        if ops > MAX_TAG_OPERATORS {
            return Err(Error::InvalidModel(format!(
                "the model's chat template has a tag with {ops} operators on line {line} (at most {MAX_TAG_OPERATORS})"
            )));
        }
        if max_depth > MAX_TAG_NESTING {
            return Err(Error::InvalidModel(format!(
                "the model's chat template nests brackets {max_depth} deep on line {line} (at most {MAX_TAG_NESTING})"
            )));
        }
    }
    Ok(())
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..hay.len().saturating_sub(needle.len() - 1)).find(|&j| hay[j..].starts_with(needle))
}

/// The source with every number literal `N` written `(N|int)` (or `(N|float)`), the same value
/// but not a constant: minijinja folds constant expressions while compiling, which would build
/// `'a' * 100000000` and the like before any instruction runs and so outside the budget. Without
/// number constants nothing can be repeated at compile time, and the other constant operations
/// build at most the literals' own text.
pub(super) fn unfold(src: &str) -> Result<String> {
    use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
    let ws = WhitespaceConfig {
        keep_trailing_newline: false,
        lstrip_blocks: true,
        trim_blocks: true,
    };
    let mut out = String::with_capacity(src.len() + 64);
    let mut at = 0usize;
    let mut after_dot = false;
    for t in tokenize(src, false, Default::default(), ws) {
        let Ok((token, span)) = t else {
            // A syntax error: minijinja reports it when it compiles the template.
            return Ok(src.to_string());
        };
        let number = match token {
            Token::Int(_) | Token::Int128(_) => Some("int"),
            Token::Float(_) => Some("float"),
            _ => None,
        };
        if let (Some(filter), false) = (number, after_dot) {
            let (a, b) = (span.start_offset as usize, span.end_offset as usize);
            if a < at || b > src.len() {
                return Err(Error::Internal("chat template spans out of order".into()));
            }
            out.push_str(&src[at..a]);
            out.push('(');
            out.push_str(&src[a..b]);
            out.push('|');
            out.push_str(filter);
            out.push(')');
            at = b;
        }
        after_dot = matches!(token, Token::Dot);
    }
    out.push_str(&src[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prescan_bounds_tags() {
        assert!(prescan("{{ 1 + 1 }}{# {{ 1+1+1+1 }} #}").is_ok());
        let long = format!("{{{{ {} }}}}", vec!["1"; 2000].join(" + "));
        assert!(prescan(&long)
            .unwrap_err()
            .to_string()
            .contains("operators"));
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(100), ")".repeat(100));
        assert!(prescan(&deep).unwrap_err().to_string().contains("nests"));
        // Operators inside strings do not count.
        let s = format!("{{{{ '{}' }}}}", "+".repeat(5000));
        assert!(prescan(&s).is_ok());
        assert!(prescan("{{ __woolly_add(1, 2) }}").is_err());
        assert!(prescan(&" ".repeat(MAX_SOURCE + 1)).is_err());
    }
}
