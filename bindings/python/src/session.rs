//! A generation in flight (`Job`): on a session of a model's pool, on its own thread, or as a
//! request of an engine. Its pieces and its end come through a channel that Python polls with
//! the GIL released.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use woolly_core::generate::{
    CancelToken, GenerateParams, Generation, Prompt, SessionPool, TokenLogprob, TopLogprob,
};
use woolly_core::Error;

use crate::errors;

pub enum Event {
    Piece(String),
    Done(Result<Generation, Error>),
}

fn logprob_entry(t: &TopLogprob) -> serde_json::Value {
    serde_json::json!({ "id": t.id, "token": t.token, "bytes": t.bytes, "logprob": t.logprob })
}

/// One token's log probabilities as every front end spells them: `id`, `token`, `bytes`,
/// `logprob` and `top_logprobs` (the alternatives, best first, with the same keys).
fn logprob_json(lp: &TokenLogprob) -> serde_json::Value {
    let mut v = logprob_entry(&lp.chosen);
    v["top_logprobs"] = lp.top.iter().map(logprob_entry).collect();
    v
}

/// A finished generation as the JSON Python reads: `stop_reason` spelled as woolly-core
/// serializes it (`max_tokens`, `end_of_generation`, `stop_string`, `callback`), as the other
/// front ends give it; `logprobs` (one entry per generated token) when `with_logprobs`.
pub fn result_json(g: &Generation, with_logprobs: bool) -> Result<String, serde_json::Error> {
    let mut v = serde_json::json!({
        "text": g.text,
        "prompt_ids": g.prompt_ids,
        "generated_ids": g.generated_ids,
        "stop_reason": serde_json::to_value(g.stop_reason)?,
        "timings": serde_json::to_value(&g.timings)?,
    });
    if with_logprobs {
        v["logprobs"] = g.logprobs.iter().map(logprob_json).collect();
    }
    Ok(v.to_string())
}

/// A generation running on its own thread (or in an engine). Dropping it cancels the
/// generation.
#[pyclass(frozen, module = "woolly._woolly")]
pub struct Job {
    events: Mutex<Receiver<Event>>,
    cancel: CancelToken,
    /// Whether the result carries `logprobs` (the params asked for them).
    logprobs: bool,
}

impl Job {
    /// A job for events that arrive on `events`, stopped by `cancel`, of a generation run with
    /// `params`.
    pub fn new(events: Receiver<Event>, cancel: CancelToken, params: &GenerateParams) -> Job {
        Job {
            events: Mutex::new(events),
            cancel,
            logprobs: params.logprobs.is_some(),
        }
    }

    /// Runs a generation on a session of `pool`, on a new thread.
    pub fn spawn(pool: Arc<SessionPool>, input: Prompt, mut params: GenerateParams) -> Job {
        let (tx, rx) = channel();
        let cancel = CancelToken::new();
        params.cancel = Some(cancel.clone());
        let job = Job::new(rx, cancel, &params);
        let tx_fail = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("woolly-generate".into())
            .spawn(move || {
                let result = run(&pool, &input, &params, &tx);
                let _ = tx.send(Event::Done(result));
            });
        if let Err(e) = spawned {
            // No thread: the job reports the failure as its result.
            let _ = tx_fail.send(Event::Done(Err(Error::Internal(format!(
                "cannot start a generation thread: {e}"
            )))));
        }
        job
    }
}

fn run(
    pool: &SessionPool,
    input: &Prompt,
    params: &GenerateParams,
    tx: &Sender<Event>,
) -> Result<Generation, Error> {
    let mut session = pool.acquire()?;
    // Pieces go to the channel; when nobody listens any more, generation stops.
    let on_token = |ev: &woolly_core::generate::TokenEvent<'_>| {
        ev.text.is_empty() || tx.send(Event::Piece(ev.text.to_string())).is_ok()
    };
    session.run(input, params, on_token)
}

#[pymethods]
impl Job {
    /// Waits up to `timeout` seconds (with the GIL released) for the next event:
    /// `(0, None)` nothing yet, `(1, piece)` text, `(2, result_json)` finished. A failed
    /// generation raises its exception instead; after the end it returns `(3, None)`.
    fn poll(&self, py: Python<'_>, timeout: f64) -> PyResult<(u8, Option<String>)> {
        let timeout = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        let got = py.detach(|| {
            let rx = self.events.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv_timeout(timeout)
        });
        match got {
            Ok(Event::Piece(p)) => Ok((1, Some(p))),
            Ok(Event::Done(Ok(g))) => {
                let json = result_json(&g, self.logprobs).map_err(|e| errors::internal(py, e))?;
                Ok((2, Some(json)))
            }
            Ok(Event::Done(Err(e))) => Err(errors::to_py(py, &e)),
            Err(RecvTimeoutError::Timeout) => Ok((0, None)),
            Err(RecvTimeoutError::Disconnected) => Ok((3, None)),
        }
    }

    /// Asks the generation to stop (also during its prompt); it then ends with CancelledError.
    fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
