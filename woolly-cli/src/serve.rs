//! `woolly serve`: an OpenAI-compatible HTTP server on the Engine.
//!
//! - `POST /v1/chat/completions`, `POST /v1/completions` (JSON, or server-sent events with
//!   `"stream": true`), `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus text).
//! - Requests run on one [`Engine`]: continuous batching, the priority and deadline from the
//!   body's extension fields (`priority`, `deadline_ms`) or the `x-woolly-priority` and
//!   `x-woolly-deadline-ms` headers; a full queue answers 429 with `Retry-After`; a client that
//!   goes away cancels its request (prompt processing included).
//! - Binds 127.0.0.1 unless `--host` says otherwise; with `--api-key`, `/v1/*` needs
//!   `Authorization: Bearer KEY`. Bodies are bounded (`--max-body`); malformed ones get 400 and
//!   oversized ones 413, with OpenAI-style error bodies.
//!
//! The HTTP stack (axum on tokio) lives here; the core has no async runtime: the request's
//! plan is made on tokio's blocking pool, and the engine's events cross to the connection's
//! task through a channel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use woolly_core::engine::{Engine, EngineParams};
use woolly_core::model::{resolve_model_path, Model, ModelParams};
use woolly_core::openai::{self, Plan};
use woolly_core::{Error, ErrorKind};

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: crate::ModelArg,
    /// Address to listen on. Anything but loopback exposes the model to the network: only
    /// when asked.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one; the address is printed on standard output).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* (also read from $WOOLLY_API_KEY).
    #[arg(
        long,
        value_name = "KEY",
        env = "WOOLLY_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Context per request in tokens (0 = the engine's default).
    #[arg(long, default_value_t = 0)]
    pub ctx_size: usize,
    /// Threads for the engine (0 = Woolly's policy).
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    /// Requests decoded together at most.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Requests that may wait; more get 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body: usize,
    /// The model name /v1/models reports (default: the file's name without `.gguf`).
    #[arg(long)]
    pub model_name: Option<String>,
}

struct AppState {
    engine: Engine,
    model_name: String,
    api_key: Option<String>,
    created: u64,
}

type App = Arc<AppState>;

/// An OpenAI-style error response.
fn error_response(e: &Error) -> Response {
    let status = StatusCode::from_u16(openai::http_status(e.kind()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, Json(openai::error_body(e))).into_response();
    if e.kind() == ErrorKind::Busy {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn plain_error(status: StatusCode, ty: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": ty, "param": null, "code": null}})),
    )
        .into_response()
}

fn authorized(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(key) = &app.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time, so that the answer's timing says nothing about the key.
    let ok = given.is_some_and(|g| {
        g.len() == key.len()
            && g.bytes()
                .zip(key.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(plain_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "a valid API key is needed (Authorization: Bearer KEY)".into(),
        ))
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Response> {
    body.map_err(|r| {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than this server accepts".to_string()
        } else {
            format!("the request body could not be read: {r}")
        };
        plain_error(status, "invalid_request_error", message)
    })
}

/// The header extensions, where the body does not set them.
fn header_extensions(headers: &HeaderMap, body: &mut Value) {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(obj) = body.as_object_mut() {
        if let Some(p) = get("x-woolly-priority") {
            obj.entry("priority").or_insert(json!(p));
        }
        if let Some(d) = get("x-woolly-deadline-ms").and_then(|d| d.parse::<u64>().ok()) {
            obj.entry("deadline_ms").or_insert(json!(d));
        }
    }
}

enum Endpoint {
    Chat,
    Completion,
}

async fn complete(
    app: App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    which: Endpoint,
) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    let body = match body_bytes(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(&Error::InvalidArgument(format!(
                "the request body is not JSON: {e}"
            )))
        }
    };
    header_extensions(&headers, &mut value);
    // Templates and tokenizing may take a while: off the async threads.
    let planner = app.clone();
    let plan = tokio::task::spawn_blocking(move || -> woolly_core::Result<Plan> {
        let model = planner.engine.model();
        let ctx = planner.engine.context_size();
        let kind = match which {
            Endpoint::Chat => openai::Kind::Chat,
            Endpoint::Completion => openai::Kind::Completion,
        };
        let body = value.to_string();
        openai::plan_json(kind, body.as_bytes(), model, Some(&planner.model_name), ctx)
    })
    .await;
    let plan = match plan {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return error_response(&e),
        Err(e) => return error_response(&Error::Internal(format!("planning the request: {e}"))),
    };
    let stream = plan.stream;
    let (request, mut responder) = plan.into_engine();
    let (tx, rx) = mpsc::unbounded_channel::<woolly_core::Result<Vec<Value>>>();
    let sink = Box::new(move |ev: woolly_core::engine::Event| {
        let _ = tx.send(responder.event(ev));
    });
    let id = match app.engine.submit_with(request, sink) {
        Ok(id) => id,
        Err(e) => return error_response(&e),
    };
    // Cancels the request when the client goes away (the response or stream is dropped).
    let guard = CancelOnDrop {
        app: app.clone(),
        id,
        done: false,
    };
    if stream {
        sse(rx, guard).into_response()
    } else {
        whole(rx, guard).await
    }
}

struct CancelOnDrop {
    app: App,
    id: u64,
    done: bool,
}

impl CancelOnDrop {
    /// The request ended: nothing to cancel.
    fn disarm(&mut self) {
        self.done = true;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.done {
            self.app.engine.cancel(self.id);
        }
    }
}

async fn whole(
    mut rx: mpsc::UnboundedReceiver<woolly_core::Result<Vec<Value>>>,
    mut guard: CancelOnDrop,
) -> Response {
    while let Some(r) = rx.recv().await {
        match r {
            Ok(mut v) if !v.is_empty() => {
                guard.disarm();
                return Json(v.pop().expect("one")).into_response();
            }
            Ok(_) => {}
            Err(e) => {
                guard.disarm();
                return error_response(&e);
            }
        }
    }
    guard.disarm();
    error_response(&Error::Internal(
        "the engine ended the request without an answer".into(),
    ))
}

fn sse(
    rx: mpsc::UnboundedReceiver<woolly_core::Result<Vec<Value>>>,
    guard: CancelOnDrop,
) -> Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = async_stream(rx, guard);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The events of one streamed response, `data: [DONE]` last; an error after the stream began
/// is sent as an error object (the status line is already gone).
fn async_stream(
    mut rx: mpsc::UnboundedReceiver<woolly_core::Result<Vec<Value>>>,
    mut guard: CancelOnDrop,
) -> impl futures_core::Stream<Item = Result<SseEvent, Infallible>> {
    let (out_tx, out_rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = rx.recv() => {
                    let Some(r) = r else { break };
                    let (events, end) = match r {
                        Ok(chunks) => {
                            let end = chunks.last().is_some_and(|c| {
                                c["choices"].as_array().is_some_and(|a| a.is_empty())
                                    || c["choices"][0]["finish_reason"].is_string()
                            });
                            (chunks, end)
                        }
                        Err(e) => (vec![openai::error_body(&e)], true),
                    };
                    for ev in events {
                        if out_tx.send(Ok(SseEvent::default().data(ev.to_string()))).await.is_err() {
                            return; // the client went away: the guard cancels the request
                        }
                    }
                    if end {
                        guard.disarm();
                        let _ = out_tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
                        return;
                    }
                }
                _ = out_tx.closed() => return,
            }
        }
        guard.disarm();
    });
    ReceiverStream(out_rx)
}

/// A `tokio` receiver as a stream.
struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

async fn chat_completions(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    complete(app, headers, body, Endpoint::Chat).await
}

async fn completions(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    complete(app, headers, body, Endpoint::Completion).await
}

async fn models(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    Json(json!({"object": "list", "data": [{
        "id": app.model_name, "object": "model", "created": app.created, "owned_by": "woolly",
        "context_length": app.engine.context_size(),
    }]}))
    .into_response()
}

async fn health(State(app): State<App>) -> Response {
    let s = app.engine.stats();
    Json(json!({"status": "ok", "model": app.model_name,
                "queued": s.queued, "active": s.active, "completed": s.completed}))
    .into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    let registry = woolly_core::metrics::Registry::global();
    registry.observe_engine(&app.engine.stats());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        registry.render_prometheus(),
    )
        .into_response()
}

async fn not_found() -> Response {
    plain_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "no such endpoint".into(),
    )
}

/// The router over a running engine (for `woolly serve` and its tests).
pub fn router(
    engine: Engine,
    model_name: String,
    api_key: Option<String>,
    max_body: usize,
) -> Router {
    let app = Arc::new(AppState {
        engine,
        model_name,
        api_key,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

pub fn run(a: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = resolve_model_path(a.model.model.as_deref())?;
    let model = Model::load(Some(&path), &ModelParams::default())?;
    let model_name = a
        .model_name
        .clone()
        .unwrap_or_else(|| openai::default_model_name(&model));
    // The constrained decoder's token trie for this vocabulary (some hundreds of milliseconds),
    // built in the background now rather than by the first request with a schema or tools.
    {
        let model = model.clone();
        std::thread::Builder::new()
            .name("woolly-warm-constraints".into())
            .spawn(move || {
                let _ = woolly_core::generate::Constraint::JsonObject.check(model.tokenizer());
            })?;
    }
    let engine = Engine::new(
        model,
        EngineParams {
            threads: a.threads,
            context_size: a.ctx_size,
            max_concurrent: a.parallel.max(1),
            queue_capacity: a.queue.max(1),
            ..Default::default()
        },
    )?;
    let app = router(
        engine,
        model_name,
        a.api_key.filter(|k| !k.is_empty()),
        a.max_body,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("woolly-http")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port)).await?;
        let addr: SocketAddr = listener.local_addr()?;
        // The address, for whoever started the server (port 0 picks one).
        println!("woolly serve: listening on http://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
