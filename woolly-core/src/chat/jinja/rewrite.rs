//! The rewriting of a compiled template's instructions: a call to a charging function (see
//! `budget.rs`) before and after every operation that may touch many bytes, with jump targets
//! moved to match; and the reserved names of those functions.

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::Value;

/// Prefix of the functions the rewritten instructions call; templates may not use it.
pub(super) const RESERVED: &str = "__woolly";
pub(super) const G_CONCAT: &str = "__woolly_concat";
pub(super) const G_ADD: &str = "__woolly_add";
pub(super) const G_MUL: &str = "__woolly_mul";
pub(super) const G_TOUCH: &str = "__woolly_touch";
pub(super) const G_FILTER: &str = "__woolly_filter";
pub(super) const G_METHOD: &str = "__woolly_method";
pub(super) const G_RESULT: &str = "__woolly_result";

/// The template's instructions with a charging call before (and after) every operation that
/// may touch many bytes, and raw text emitted as a value (so that it is charged too). Jump
/// targets move with the instructions.
pub(super) fn rewrite<'s>(old: &Instructions<'s>) -> Instructions<'s> {
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
