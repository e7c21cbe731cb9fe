//! Rendering a model file's Jinja chat template within fixed bounds.
//!
//! The template comes from the model file, which Woolly does not trust, and it runs inside the
//! host's process, so nothing it does may crash, hang or exhaust the host:
//!
//! - **Size and shape.** The source is at most [`MAX_SOURCE`] bytes, and before minijinja sees it
//!   a lexical scan bounds every tag to [`MAX_TAG_OPERATORS`] operators and [`MAX_TAG_NESTING`]
//!   levels of brackets (minijinja's parser, code generator and syntax-tree drop recurse once per
//!   term of an operator chain).
//! - **Stack.** Parsing and rendering run on a thread of Woolly's with a [`STACK_SIZE`] stack,
//!   never on the caller's, whose stack may be small (a 512 KiB thread) or mostly used.
//! - **Steps.** At most [`FUEL`] VM instructions and [`RECURSION`] levels of macro calls and blocks.
//! - **Bytes.** Every value a render builds, compares, slices or writes is charged, before the
//!   work is done, to a byte budget of [`BASE_BUDGET`] plus [`INPUT_FACTOR`] times the size of the
//!   messages: string concatenation (`~`, `+`), repetition (`*`), list concatenation, comparisons,
//!   `in`, indexing and slicing, every filter and method call (with their arguments' sizes, and
//!   estimates for those that grow text, such as `replace`, `center`, `indent`, `join`, `format`),
//!   and every piece of output, also inside `{% set %}` blocks and macros. So the memory a render
//!   holds and the work it does are bounded by the budget, and the prompt text by [`MAX_OUTPUT`].
//! - **Cancellation.** The caller waits for the render thread and polls its cancellation; when it
//!   gives up, the render stops at its next charged step (its work is bounded anyway), and at
//!   most [`MAX_RENDERS`] renders run at once.
//!
//! The charging works by rewriting the compiled template's instructions: before each operation
//! that may touch many bytes, a call to a Woolly function measures its operands (and passes them
//! through unchanged), then minijinja's own operation runs, so a template means what it means in
//! minijinja.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::{Object, Value, ValueKind};
use minijinja::{
    AutoEscape, Environment, Error as JinjaError, ErrorKind as JinjaErrorKind, Output, State,
};

use super::message::ChatMessage;
use crate::{Error, Result};

/// Longest template source accepted (real chat templates are under 50 KB).
pub const MAX_SOURCE: usize = 256 << 10;
/// Most operators (`+ - * / % ~ | . [ ( == and or not is in if` …) in one `{{ }}` or `{% %}` tag.
pub const MAX_TAG_OPERATORS: usize = 1000;
/// Deepest nesting of `( [ {` in one tag.
pub const MAX_TAG_NESTING: usize = 64;
/// Stack of the thread that parses and renders templates (virtual memory until used).
pub const STACK_SIZE: usize = 64 << 20;
/// VM instructions a render may run. Real templates use tens to hundreds per message, so this
/// allows conversations of thousands of messages, and stops a runaway loop in about a second.
pub const FUEL: u64 = 5_000_000;
/// Nesting of macro calls and blocks a template may reach.
pub const RECURSION: usize = 100;
/// Longest prompt text a template may produce.
pub const MAX_OUTPUT: usize = 64 << 20;
/// Bytes a render may build, compare or write whatever the messages.
pub const BASE_BUDGET: u64 = 64 << 20;
/// Bytes a render may use per byte of the messages, on top of [`BASE_BUDGET`].
pub const INPUT_FACTOR: u64 = 16;
/// Templates rendering at once in the process (more wait for a free place).
pub const MAX_RENDERS: usize = 8;

/// Prefix of the functions the rewritten instructions call; templates may not use it.
const RESERVED: &str = "__woolly";
const G_CONCAT: &str = "__woolly_concat";
const G_ADD: &str = "__woolly_add";
const G_MUL: &str = "__woolly_mul";
const G_TOUCH: &str = "__woolly_touch";
const G_FILTER: &str = "__woolly_filter";
const G_METHOD: &str = "__woolly_method";
const G_RESULT: &str = "__woolly_result";

/// Why a render stopped early.
const OVER_BUDGET: &str = "the chat template used more than its byte budget";
const CANCELLED: &str = "the render was cancelled";

/// The bytes one render may still use, and whether its caller gave up on it.
#[derive(Debug)]
struct Budget {
    left: AtomicU64,
    total: u64,
    abandoned: Arc<AtomicBool>,
}

impl Budget {
    fn check(&self) -> std::result::Result<(), JinjaError> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(JinjaError::new(JinjaErrorKind::InvalidOperation, CANCELLED));
        }
        Ok(())
    }

    /// Takes `n` bytes from the budget, or fails without taking any.
    fn charge(&self, n: u64) -> std::result::Result<(), JinjaError> {
        self.check()?;
        let mut left = self.left.load(Ordering::Relaxed);
        loop {
            if n > left {
                return Err(JinjaError::new(
                    JinjaErrorKind::InvalidOperation,
                    format!("{OVER_BUDGET} ({} MiB)", self.total >> 20),
                ));
            }
            match self.left.compare_exchange_weak(
                left,
                left - n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => left = now,
            }
        }
    }

    /// Fails when an operation would build more than the bytes left (nothing is taken).
    fn fits(&self, n: u64) -> std::result::Result<(), JinjaError> {
        self.check()?;
        if n > self.left.load(Ordering::Relaxed) {
            return Err(JinjaError::new(
                JinjaErrorKind::InvalidOperation,
                format!("{OVER_BUDGET} ({} MiB)", self.total >> 20),
            ));
        }
        Ok(())
    }

    fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }
}

/// What one item of a sequence or map counts for: the size of a value.
const ITEM: u64 = 16;

/// Bytes of `v` itself: a string's length, [`ITEM`] per item of a sequence or map, else 1.
fn shallow(v: &Value) -> u64 {
    match v.kind() {
        ValueKind::String | ValueKind::Bytes => v.as_str().map_or(1, |s| s.len() as u64),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            (v.len().unwrap_or(1) as u64).saturating_mul(ITEM)
        }
        _ => 1,
    }
}

/// Bytes of `v`'s text form, counting every item of its sequences and maps (shared items once
/// per reference), and [`ITEM`] more per item; stops counting past `limit`.
fn deep(v: &Value, limit: u64) -> u64 {
    fn walk(v: &Value, limit: u64, total: &mut u64, depth: usize) {
        if *total > limit {
            return;
        }
        match v.kind() {
            ValueKind::String | ValueKind::Bytes => {
                *total += v.as_str().map_or(1, |s| s.len() as u64).max(1)
            }
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map if depth < 64 => {
                *total += 2;
                let is_map = v.kind() == ValueKind::Map;
                if let Ok(iter) = v.try_iter() {
                    for item in iter {
                        if *total > limit {
                            return;
                        }
                        *total += ITEM;
                        if is_map {
                            if let Ok(val) = v.get_item(&item) {
                                walk(&val, limit, total, depth + 1);
                            }
                        }
                        walk(&item, limit, total, depth + 1);
                    }
                }
            }
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => *total = limit + 1,
            _ => *total += 24,
        }
    }
    let mut total = 0;
    walk(v, limit, &mut total, 0);
    total
}

/// A function the rewritten instructions call.
#[derive(Debug)]
struct Guard {
    kind: GuardKind,
    budget: Arc<Budget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuardKind {
    /// `~`: both operands' text.
    Concat,
    /// `+`: strings or sequences joined.
    Add,
    /// `*`: a string or sequence repeated.
    Mul,
    /// Comparisons, `in`, indexing and slicing: the operands' own sizes.
    Touch,
    /// Before a filter: (arguments…, name).
    Filter,
    /// Before a method: (receiver, arguments…, name).
    Method,
    /// After a call: (result, name); returns the result.
    Result,
}

/// Filters that only count, pick or reorder items (no new text): their cost is the items'.
fn picks_items(name: &str) -> bool {
    matches!(
        name,
        "length"
            | "count"
            | "first"
            | "last"
            | "default"
            | "d"
            | "attr"
            | "int"
            | "float"
            | "bool"
            | "abs"
            | "round"
            | "safe"
            | "list"
            | "reverse"
            | "sort"
            | "dictsort"
            | "unique"
            | "select"
            | "reject"
            | "selectattr"
            | "rejectattr"
            | "batch"
            | "slice"
            | "min"
            | "max"
            | "items"
            | "keys"
            | "values"
            | "get"
            | "groupby"
            | "chain"
            | "zip"
    )
}

fn as_count(v: Option<&Value>) -> u64 {
    v.and_then(|v| {
        if v.kind() == ValueKind::String {
            v.as_str().map(|s| s.len() as u64)
        } else {
            v.as_i64().map(|n| n.max(0) as u64)
        }
    })
    .unwrap_or(0)
}

/// Sum of the numbers written in a format string (its widths and precisions).
fn widths(fmt: &str) -> u64 {
    let mut total = 0u64;
    let mut n = 0u64;
    for c in fmt.chars() {
        if let Some(d) = c.to_digit(10) {
            n = n.saturating_mul(10).saturating_add(d as u64);
        } else {
            total = total.saturating_add(n);
            n = 0;
        }
    }
    total.saturating_add(n)
}

/// What a text-growing filter or method may build, beyond its arguments.
fn growth(name: &str, args: &[Value], limit: u64) -> u64 {
    let s = args.first().and_then(|v| v.as_str()).unwrap_or("");
    let lines = s.bytes().filter(|&b| b == b'\n').count() as u64 + 1;
    match name {
        "replace" => {
            let old = args.get(1).and_then(|v| v.as_str()).unwrap_or("");
            let new = args.get(2).map_or(0, shallow);
            let hits = if old.is_empty() {
                s.chars().count() as u64 + 1
            } else {
                s.matches(old).count() as u64
            };
            hits.saturating_mul(new)
        }
        "center" | "ljust" | "rjust" | "zfill" | "truncate" | "wordwrap" => {
            as_count(args.get(1)).saturating_add(lines)
        }
        "indent" => lines.saturating_mul(as_count(args.get(1)).max(4)),
        "expandtabs" => {
            let tabs = s.bytes().filter(|&b| b == b'\t').count() as u64;
            tabs.saturating_mul(as_count(args.get(1)).max(8))
        }
        "join" => {
            let items = args.get(1).map_or(0, shallow);
            let seq = args.first().map_or(0, shallow);
            // `sep.join(items)` (method) or `items|join(sep)` (filter).
            seq.max(1).saturating_mul(items.max(1))
        }
        "format" => widths(s).saturating_add(
            args.iter()
                .skip(1)
                .map(|a| deep(a, limit))
                .fold(0u64, u64::saturating_add),
        ),
        "tojson" | "pprint" | "string" | "escape" | "e" | "urlencode" => {
            let d = args.first().map_or(0, |a| deep(a, limit));
            d.saturating_mul(6)
                .saturating_add(d.saturating_mul(as_count(args.get(1))))
        }
        _ => 0,
    }
}

impl Object for Guard {
    fn call(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        args: &[Value],
    ) -> std::result::Result<Value, JinjaError> {
        let b = &self.budget;
        let limit = b.left();
        let passthrough =
            |args: &[Value]| Value::from(args.iter().rev().cloned().collect::<Vec<_>>());
        match self.kind {
            GuardKind::Concat => {
                let n = args
                    .iter()
                    .map(|a| deep(a, limit))
                    .fold(0u64, u64::saturating_add);
                b.charge(n)?;
                Ok(passthrough(args))
            }
            GuardKind::Add => {
                let n = args.iter().map(shallow).fold(0u64, u64::saturating_add);
                b.charge(n)?;
                Ok(passthrough(args))
            }
            GuardKind::Mul => {
                let (Some(a), Some(c)) = (args.first(), args.get(1)) else {
                    return Ok(passthrough(args));
                };
                let times = |v: &Value| v.as_i64().map_or(1, |n| n.max(0) as u64);
                let n = if matches!(a.kind(), ValueKind::Number) {
                    shallow(c).saturating_mul(times(a))
                } else {
                    shallow(a).saturating_mul(times(c))
                };
                b.charge(n)?;
                Ok(passthrough(args))
            }
            GuardKind::Touch => {
                let n = args.iter().map(shallow).fold(0u64, u64::saturating_add);
                b.charge(n)?;
                Ok(passthrough(args))
            }
            GuardKind::Filter | GuardKind::Method => {
                let Some((name, rest)) = args.split_last() else {
                    return Ok(Value::from(Vec::<Value>::new()));
                };
                let name = name.as_str().unwrap_or("");
                let cost = if picks_items(name) {
                    rest.iter().map(shallow).fold(0u64, u64::saturating_add)
                } else {
                    rest.iter()
                        .map(|a| deep(a, limit))
                        .fold(0u64, u64::saturating_add)
                };
                b.charge(cost)?;
                b.fits(growth(name, rest, limit))?;
                Ok(passthrough(rest))
            }
            GuardKind::Result => {
                let Some(value) = args.first() else {
                    return Ok(Value::UNDEFINED);
                };
                let name = args.get(1).and_then(|v| v.as_str());
                let cost = if name.is_some_and(picks_items) {
                    shallow(value)
                } else {
                    deep(value, limit)
                };
                b.charge(cost)?;
                Ok(value.clone())
            }
        }
    }
}

/// Rejects sources too large, too deeply nested or with too long operator chains, before
/// minijinja parses them, and names reserved for Woolly.
fn prescan(src: &str) -> Result<()> {
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
fn unfold(src: &str) -> Result<String> {
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

/// The template's instructions with a charging call before (and after) every operation that
/// may touch many bytes, and raw text emitted as a value (so that it is charged too). Jump
/// targets move with the instructions.
fn rewrite<'s>(old: &Instructions<'s>) -> Instructions<'s> {
    let n = old.len();
    let expand = |ins: &Instruction<'s>| -> Vec<Instruction<'s>> {
        use Instruction as I;
        let pre = |name: &'static str, argc: usize, op: Instruction<'s>| {
            vec![
                I::CallFunction(name, Some(argc as u16)),
                I::UnpackList(argc),
                op,
            ]
        };
        match ins {
            I::EmitRaw(s) => vec![I::LoadConst(Value::from(*s)), I::Emit],
            I::StringConcat => pre(G_CONCAT, 2, ins.clone()),
            I::Add => pre(G_ADD, 2, ins.clone()),
            I::Mul => pre(G_MUL, 2, ins.clone()),
            I::Eq
            | I::Ne
            | I::Lt
            | I::Lte
            | I::Gt
            | I::Gte
            | I::In
            | I::GetItem
            | I::CompareAndPreserve(_) => pre(G_TOUCH, 2, ins.clone()),
            I::Slice => pre(G_TOUCH, 4, ins.clone()),
            I::ApplyFilter(name, argc, _) | I::CallMethod(name, argc) => {
                let guard = if matches!(ins, I::ApplyFilter(..)) {
                    G_FILTER
                } else {
                    G_METHOD
                };
                let mut v = Vec::new();
                if let Some(k) = argc {
                    v.push(I::LoadConst(Value::from(*name)));
                    v.push(I::CallFunction(guard, Some(k + 1)));
                    v.push(I::UnpackList(*k as usize));
                }
                v.push(ins.clone());
                v.push(I::LoadConst(Value::from(*name)));
                v.push(I::CallFunction(G_RESULT, Some(2)));
                v
            }
            I::CallFunction(..) | I::CallObject(..) => vec![
                ins.clone(),
                I::LoadConst(Value::from("")),
                I::CallFunction(G_RESULT, Some(2)),
            ],
            other => vec![other.clone()],
        }
    };
    let groups: Vec<Vec<Instruction<'s>>> = (0..n as u32)
        .map(|i| expand(old.get(i).expect("index in range")))
        .collect();
    let mut start = Vec::with_capacity(n + 1);
    let mut at = 0u32;
    for g in &groups {
        start.push(at);
        at += g.len() as u32;
    }
    start.push(at);
    let to = |t: &u32| start.get(*t as usize).copied().unwrap_or(at);
    let mut new = Instructions::new(old.name(), old.source());
    for (i, g) in groups.into_iter().enumerate() {
        let span = old.get_span(i as u32);
        let line = old.get_line(i as u32).unwrap_or(0) as u16;
        for ins in g {
            use Instruction as I;
            let ins = match ins {
                I::Jump(t) => I::Jump(to(&t)),
                I::JumpIfFalse(t) => I::JumpIfFalse(to(&t)),
                I::JumpIfFalseOrPop(t) => I::JumpIfFalseOrPop(to(&t)),
                I::JumpIfTrueOrPop(t) => I::JumpIfTrueOrPop(to(&t)),
                I::Iterate(t) => I::Iterate(to(&t)),
                I::BuildMacro(name, t, flags) => I::BuildMacro(name, to(&t), flags),
                other => other,
            };
            match span {
                Some(s) => new.add_with_span(ins, s),
                None => new.add_with_line(ins, line),
            };
        }
    }
    new
}

fn raise_exception(msg: String) -> std::result::Result<String, JinjaError> {
    Err(JinjaError::new(JinjaErrorKind::InvalidOperation, msg))
}

/// What a render is given.
pub(crate) struct Job {
    pub source: String,
    pub messages: Vec<ChatMessage>,
    pub add_generation_prompt: bool,
    pub bos: String,
    pub eos: String,
}

/// Renders on the calling thread (the caller provides the stack: see [`render`]).
fn render_here(job: &Job, abandoned: Arc<AtomicBool>) -> Result<String> {
    prescan(&job.source)?;
    let input: u64 = job
        .messages
        .iter()
        .map(|m| (m.role.len() + m.content.len()) as u64)
        .sum::<u64>()
        + (job.bos.len() + job.eos.len()) as u64;
    let total = BASE_BUDGET.saturating_add(input.saturating_mul(INPUT_FACTOR));
    let budget = Arc::new(Budget {
        left: AtomicU64::new(total),
        total,
        abandoned,
    });
    let mut env = Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    // HF templates are written for `trim_blocks` and `lstrip_blocks`.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION);
    for (name, kind) in [
        (G_CONCAT, GuardKind::Concat),
        (G_ADD, GuardKind::Add),
        (G_MUL, GuardKind::Mul),
        (G_TOUCH, GuardKind::Touch),
        (G_FILTER, GuardKind::Filter),
        (G_METHOD, GuardKind::Method),
        (G_RESULT, GuardKind::Result),
    ] {
        env.add_global(
            name,
            Value::from_object(Guard {
                kind,
                budget: budget.clone(),
            }),
        );
    }
    let fb = budget.clone();
    env.set_formatter(move |out: &mut Output, state: &State, value: &Value| {
        fb.charge(deep(value, fb.left()))?;
        minijinja::escape_formatter(out, state, value)
    });
    let source = unfold(&job.source)?;
    let tmpl = env.template_from_str(&source).map_err(|e| {
        Error::InvalidModel(format!("the model's chat template does not parse: {e}"))
    })?;
    let compiled = minijinja::machinery::get_compiled_template(&tmpl);
    let root = rewrite(&compiled.instructions);
    let blocks = compiled
        .blocks
        .iter()
        .map(|(k, v)| (*k, rewrite(v)))
        .collect();
    let ctx = minijinja::context! {
        messages => &job.messages,
        add_generation_prompt => job.add_generation_prompt,
        bos_token => &job.bos,
        eos_token => &job.eos,
    };
    // Every write goes through the formatter, which charges it, so the text stays within the
    // budget while it grows; it is held to `MAX_OUTPUT` when it is complete.
    let mut text = String::new();
    let result = {
        let mut out = minijinja::machinery::make_string_output(&mut text);
        minijinja::machinery::Vm::new(&env)
            .eval(&root, ctx, &blocks, &mut out, AutoEscape::None)
            .map(|_| ())
    };
    result.map_err(|e| {
        if budget.abandoned.load(Ordering::Relaxed) {
            return Error::Cancelled;
        }
        let detail = e.detail().unwrap_or("");
        let runaway = matches!(
            e.kind(),
            JinjaErrorKind::OutOfFuel | JinjaErrorKind::WriteFailure
        ) || detail.contains("recursion limit")
            || detail.contains(OVER_BUDGET);
        if runaway {
            // Out of fuel, too deep, too long or too large whatever the messages: the file's fault.
            Error::InvalidModel(format!(
                "the model's chat template ran past its limits: {e} (at most {FUEL} steps, \
                 {RECURSION} levels, {} MiB of work, {} MiB of text)",
                total >> 20,
                MAX_OUTPUT >> 20
            ))
        } else {
            // `raise_exception` from the template, or a type error on these messages.
            Error::InvalidArgument(format!("the chat template refused the messages: {e}"))
        }
    })?;
    if text.len() > MAX_OUTPUT {
        return Err(Error::InvalidModel(format!(
            "the model's chat template ran past its limits: {} MiB of text (at most {} MiB)",
            text.len() >> 20,
            MAX_OUTPUT >> 20
        )));
    }
    Ok(text)
}

/// Places for renders running at once.
static RENDERS: Mutex<usize> = Mutex::new(0);
static RENDER_DONE: Condvar = Condvar::new();

struct Slot;

impl Slot {
    fn take(cancelled: &dyn Fn() -> bool) -> Result<Slot> {
        let mut n = RENDERS.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= MAX_RENDERS {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            n = RENDER_DONE
                .wait_timeout(n, Duration::from_millis(5))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *n += 1;
        Ok(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut n = RENDERS.lock().unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        RENDER_DONE.notify_one();
    }
}

/// Renders `job` on a thread with a [`STACK_SIZE`] stack and waits for it, polling `cancelled`
/// (then it returns [`Error::Cancelled`] at once and the render stops at its next charged step).
pub(crate) fn render(job: Job, cancelled: &dyn Fn() -> bool) -> Result<String> {
    if cancelled() {
        return Err(Error::Cancelled);
    }
    let slot = Slot::take(cancelled)?;
    let abandoned = Arc::new(AtomicBool::new(false));
    let flag = abandoned.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("woolly-template".into())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let _slot = slot;
            let r = render_here(&job, flag);
            // The job (messages and all) is dropped here, before the place is given back.
            drop(job);
            let _ = tx.send(r);
        })
        .map_err(|e| Error::Internal(format!("cannot start the template thread: {e}")))?;
    loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(r) => return r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if cancelled() {
                    abandoned.store(true, Ordering::SeqCst);
                    return Err(Error::Cancelled);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Internal("the template thread failed".into()))
            }
        }
    }
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

    #[test]
    fn number_literals_are_not_constants() {
        assert_eq!(
            unfold("a{{ 'x' * 3 }}{{ x.0 + 1.5 }}{% for i in range(10) %}{% endfor %}").unwrap(),
            "a{{ 'x' * (3|int) }}{{ x.0 + (1.5|float) }}{% for i in range((10|int)) %}{% endfor %}"
        );
        let job = |src: &str| Job {
            source: src.into(),
            messages: vec![ChatMessage::new("user", "hi")],
            add_generation_prompt: true,
            bos: String::new(),
            eos: String::new(),
        };
        let run = |src: &str| render_here(&job(src), Arc::new(AtomicBool::new(false)));
        assert_eq!(
            run("{{ 'ab' * 3 }}|{{ [1, 2] * 2 }}|{{ 7 // 2 }}|{{ -1.5 }}|{{ messages[-1].content }}|{{ 10 is divisibleby 5 }}|{{ (2 ** 10) }}|{{ messages[0:1]|length }}")
                .unwrap(),
            "ababab|[1, 2, 1, 2]|3|-1.5|hi|True|1024|1"
        );
        // Folded at compile time these would be built before the first instruction.
        for src in [
            "{{ ('a' * 100000000) ~ ('a' * 100000000) }}",
            "{{ ('a' * (10 ** 8)) ~ ('a' * ((100000000))) }}",
            "{{ ([1] * 100000000 * 100000000) ~ '' }}",
        ] {
            let e = run(src).unwrap_err();
            assert!(e.to_string().contains("budget"), "{src}: {e}");
        }
    }

    #[test]
    fn renders_as_plain_minijinja_does() {
        let messages = vec![
            ChatMessage::new("system", "  Be brief.  "),
            ChatMessage::new("user", "Hi <b>there</b>"),
            ChatMessage::new("assistant", "Hello!"),
        ];
        for src in [
            "{{ true }} {{ 10 is divisibleby 5 }} {{ none }} {{ 1.0 }} {{ [1, 'a', none] }} {{ {'a': 1} }}",
            "{% for m in messages %}{{ loop.index0 }}:{{ m.role|upper }}={{ m.content|trim }}{% if not loop.last %}, {% endif %}{% endfor %}",
            "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
            "{% macro t(m) %}[{{ m.role }}]{{ caller() if caller else '' }}{% endmacro %}{% for m in messages %}{{ t(m) }}{% endfor %}",
            "{% set x %}{% for m in messages[1:] %}{{ m.content.strip() ~ '|' }}{% endfor %}{% endset %}{{ x|length }}{{ x }}",
            "{{ messages|map(attribute='role')|join(',') }} {{ messages|selectattr('role', 'eq', 'user')|list|length }} {{ messages|tojson }}",
            "{{ '%s-%d'|format('a', 3) }} {{ 'x y'.title() }} {{ 'a,b'.split(',') }} {{ 'ab' in 'cabd' }} {{ (1, 2) < (1, 3) }} {{ 'abc'[::-1] }}",
            "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% endif %}{{ bos_token }}{{ add_generation_prompt }}",
        ] {
            let mut env = Environment::new();
            env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
            env.set_trim_blocks(true);
            env.set_lstrip_blocks(true);
            let want = env
                .render_str(
                    src,
                    minijinja::context! { messages => &messages, add_generation_prompt => true, bos_token => "<s>", eos_token => "</s>" },
                )
                .unwrap();
            let job = Job {
                source: src.into(),
                messages: messages.clone(),
                add_generation_prompt: true,
                bos: "<s>".into(),
                eos: "</s>".into(),
            };
            let got = render_here(&job, Arc::new(AtomicBool::new(false))).unwrap();
            assert_eq!(got, want, "{src}");
        }
    }

    #[test]
    fn widths_sum_numbers() {
        assert_eq!(widths("%10s and %5.2f"), 17);
        assert_eq!(widths("{:>100000000}"), 100000000);
    }
}
