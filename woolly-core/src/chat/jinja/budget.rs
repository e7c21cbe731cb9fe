//! The byte budget of one render, and the functions the rewritten instructions call to charge
//! it: each measures the operands of the operation that follows (a string's length, a
//! sequence's items, what a text-growing filter or method may build) and passes them through
//! unchanged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{Error as JinjaError, ErrorKind as JinjaErrorKind, State};

/// Why a render stopped early.
pub(super) const OVER_BUDGET: &str = "the chat template used more than its byte budget";
const CANCELLED: &str = "the render was cancelled";

/// The bytes one render may still use, and whether its caller gave up on it.
#[derive(Debug)]
pub(super) struct Budget {
    pub(super) left: AtomicU64,
    pub(super) total: u64,
    pub(super) abandoned: Arc<AtomicBool>,
}

impl Budget {
    fn check(&self) -> std::result::Result<(), JinjaError> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(JinjaError::new(JinjaErrorKind::InvalidOperation, CANCELLED));
        }
        Ok(())
    }

    /// Takes `n` bytes from the budget, or fails without taking any.
    pub(super) fn charge(&self, n: u64) -> std::result::Result<(), JinjaError> {
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

    pub(super) fn left(&self) -> u64 {
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
pub(super) fn deep(v: &Value, limit: u64) -> u64 {
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
pub(super) struct Guard {
    pub(super) kind: GuardKind,
    pub(super) budget: Arc<Budget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GuardKind {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_sum_numbers() {
        assert_eq!(widths("%10s and %5.2f"), 17);
        assert_eq!(widths("{:>100000000}"), 100000000);
    }
}
