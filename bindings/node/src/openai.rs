//! OpenAI-shaped requests (`createChatCompletion`, `createCompletion`): the JSON body that
//! `index.js` serializes from the caller's object goes to woolly-core's
//! `openai::{ChatCompletionRequest, CompletionRequest}` untouched. Planning (chat template,
//! tokenizing, compiling a constraint) and generation run off the JavaScript thread: on a
//! worker thread with a session of the model's pool, or on the engine's preparer thread and
//! then in the engine. Events: `{ kind: "planned" }` (the request is planned, and queued in an
//! engine, where its first chunks may come before it), `{ kind: "chunk", chunk }` when
//! streaming, then `{ kind: "done", response }` (the response object, or null when streaming)
//! or an `error` event.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::{json, Value};
use woolly_core::engine::{Engine, Event as EngineEvent};
use woolly_core::generate::{CancelToken, SessionPool};
use woolly_core::model::Model;
use woolly_core::openai::{self, Plan};
use woolly_core::{Error, Result};

use crate::error::{panic_event, to_event};
use crate::task::{send, EventFn};

/// The plan of `body` (a chat completion when `chat`, else a completion) on `model` with a
/// context of `context` tokens; its generation stops when `cancel` is cancelled.
fn plan(
    chat: bool,
    body: &str,
    model: &Model,
    context: usize,
    cancel: &CancelToken,
) -> Result<Plan> {
    let kind = if chat {
        openai::Kind::Chat
    } else {
        openai::Kind::Completion
    };
    let mut plan = openai::plan_json(kind, body.as_bytes(), model, None, context)?;
    plan.params.cancel = Some(cancel.clone());
    Ok(plan)
}

fn done(response: Value) -> Value {
    json!({ "kind": "done", "response": response })
}

fn chunk(chunk: Value) -> Value {
    json!({ "kind": "chunk", "chunk": chunk })
}

/// On a worker thread: plans `body` on a session of `pool` (the session's context is the
/// plan's) and runs it; returns the last event.
pub(crate) fn run_on_session(
    pool: &SessionPool,
    chat: bool,
    body: &str,
    cancel: &CancelToken,
    cb: &EventFn,
) -> Value {
    let run = || -> Result<Value> {
        let mut session = pool.acquire()?;
        let context = session.context_size();
        let plan = plan(chat, body, pool.model(), context, cancel)?;
        // The session's own check, before `planned`: a stream's promise rejects with it.
        let (prompt, requested) = (plan.prompt_ids.len(), plan.params.max_tokens);
        if prompt.saturating_add(requested) > context {
            return Err(Error::ContextOverflow {
                prompt,
                requested,
                context,
            });
        }
        send(cb, json!({ "kind": "planned" }));
        openai::run_session(&mut session, &plan, |c| {
            send(cb, chunk(c));
            true
        })
    };
    match run() {
        Ok(response) => done(response),
        Err(e) => to_event(&e),
    }
}

/// On the engine's preparer thread: plans `body` and submits it to `engine`, whose sink then
/// answers it; a refusal (or a bad body) is its `error` event.
pub(crate) fn submit_to_engine(
    engine: &Engine,
    chat: bool,
    body: &str,
    cancel: &CancelToken,
    cb: Arc<EventFn>,
) {
    let submit = || -> Result<()> {
        let plan = plan(chat, body, engine.model(), engine.context_size(), cancel)?;
        let stream = plan.stream;
        let (request, mut responder) = plan.into_engine();
        let on_event = cb.clone();
        // On the engine's thread; the callback goes with the sink after the last event.
        let sink = Box::new(move |ev: EngineEvent| {
            let end = !matches!(ev, EngineEvent::Token { .. });
            match responder.event(ev) {
                Ok(mut values) if end && !stream => {
                    send(&on_event, done(values.pop().unwrap_or(Value::Null)))
                }
                Ok(values) => {
                    for v in values {
                        send(&on_event, chunk(v));
                    }
                    if end {
                        send(&on_event, done(Value::Null));
                    }
                }
                Err(e) => send(&on_event, to_event(&e)),
            }
        });
        engine.submit_with(request, sink)?;
        Ok(())
    };
    // A panic here must still answer the request (the preparer thread goes on).
    let ev = match catch_unwind(AssertUnwindSafe(submit)) {
        Ok(Ok(())) => json!({ "kind": "planned" }),
        Ok(Err(e)) => to_event(&e),
        Err(p) => panic_event(&*p),
    };
    send(&cb, ev);
}
