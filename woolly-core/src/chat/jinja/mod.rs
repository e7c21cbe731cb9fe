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

mod budget;
mod rewrite;
mod source;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use minijinja::value::Value;
use minijinja::{
    AutoEscape, Environment, Error as JinjaError, ErrorKind as JinjaErrorKind, Output, State,
};

use super::message::ChatMessage;
use crate::{Error, Result};
use budget::{deep, Budget, Guard, GuardKind, OVER_BUDGET};
use rewrite::{rewrite, G_ADD, G_CONCAT, G_FILTER, G_METHOD, G_MUL, G_RESULT, G_TOUCH};
use source::{prescan, unfold};

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

fn raise_exception(msg: String) -> std::result::Result<String, JinjaError> {
    Err(JinjaError::new(JinjaErrorKind::InvalidOperation, msg))
}

/// What a render is given.
pub(crate) struct Job {
    pub source: String,
    pub messages: Vec<ChatMessage>,
    /// The template's `tools` variable (undefined when `None`).
    pub tools: Option<serde_json::Value>,
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
        .map(|m| {
            (m.role.len() + m.content.len()) as u64
                + m.tool_calls
                    .as_ref()
                    .map_or(0, |v| v.to_string().len() as u64)
        })
        .sum::<u64>()
        + job.tools.as_ref().map_or(0, |v| v.to_string().len() as u64)
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
        tools => job.tools.as_ref().map(Value::from_serialize),
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
    fn number_literals_are_not_constants() {
        assert_eq!(
            unfold("a{{ 'x' * 3 }}{{ x.0 + 1.5 }}{% for i in range(10) %}{% endfor %}").unwrap(),
            "a{{ 'x' * (3|int) }}{{ x.0 + (1.5|float) }}{% for i in range((10|int)) %}{% endfor %}"
        );
        let job = |src: &str| Job {
            source: src.into(),
            messages: vec![ChatMessage::new("user", "hi")],
            tools: None,
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
                tools: None,
                add_generation_prompt: true,
                bos: "<s>".into(),
                eos: "</s>".into(),
            };
            let got = render_here(&job, Arc::new(AtomicBool::new(false))).unwrap();
            assert_eq!(got, want, "{src}");
        }
    }

    #[test]
    fn tools_and_tool_calls_reach_the_template() {
        let mut call = ChatMessage::new("assistant", "");
        call.tool_calls = Some(serde_json::json!([{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": {"x": 1}}}]));
        let mut result = ChatMessage::new("tool", "42");
        result.tool_call_id = Some("c1".into());
        let job = Job {
            source: "{% for t in tools %}[{{ t.function.name }}]{% endfor %}{% for m in messages %}{{ m.role }}:{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments | tojson }}{% endif %}{% if m.tool_call_id %}{{ m.tool_call_id }}={% endif %}{{ m.content }};{% endfor %}".into(),
            messages: vec![ChatMessage::new("user", "hi"), call, result],
            tools: Some(serde_json::json!([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}])),
            add_generation_prompt: true,
            bos: String::new(),
            eos: String::new(),
        };
        let got = render_here(&job, Arc::new(AtomicBool::new(false))).unwrap();
        assert_eq!(got, "[f][g]user:hi;assistant:{\"x\":1};tool:c1=42;");
    }
}
