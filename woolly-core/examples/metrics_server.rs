//! Serves Woolly's metrics at `http://127.0.0.1:PORT/metrics` (Prometheus text) and
//! `/metrics.json` while an engine generates on the default model.
//!
//! ```text
//! cargo run --release -p woolly-core --example metrics_server -- 9464 [REQUESTS] [MAX_HTTP]
//! curl -s http://127.0.0.1:9464/metrics
//! ```
//!
//! REQUESTS: generation requests to run (default 64, two at a time); MAX_HTTP: exit after
//! answering that many HTTP requests (default: serve until killed). Woolly's library opens no
//! port by itself: this is how a host application can expose the registry. The server is a
//! plain `std::net::TcpListener` on the loopback address only, single-threaded, reading at
//! most 8 KiB of each request with a 2-second timeout.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use woolly_core::engine::{Engine, EngineParams, Request};
use woolly_core::generate::{GenerateParams, SamplingParams};
use woolly_core::metrics::{Registry, PROMETHEUS_CONTENT_TYPE};
use woolly_core::model::{Model, ModelParams};

const MAX_REQUEST: usize = 8 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: metrics_server PORT [REQUESTS] [MAX_HTTP]")?
        .parse()
        .map_err(|_| "PORT must be a number from 0 to 65535")?;
    let requests: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let max_http: Option<usize> = args.next().map(|s| s.parse()).transpose()?;

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    let addr = listener.local_addr()?;
    eprintln!("loading the default model");
    let model = Model::load(None, &ModelParams::default())?;
    model.metrics().set_label("default");
    let engine = Arc::new(Engine::new(
        model,
        EngineParams {
            max_batch_size: 2,
            max_concurrent: 2,
            context_size: 512,
            ..Default::default()
        },
    )?);
    eprintln!("serving http://{addr}/metrics and /metrics.json; generating {requests} requests");

    // The generator: two requests at a time until `requests` are done.
    let generating = Arc::new(AtomicBool::new(true));
    let generator = {
        let (engine, generating) = (engine.clone(), generating.clone());
        std::thread::spawn(move || {
            let prompts = [
                "The capital of France is",
                "Once upon a time,",
                "def fibonacci(n):",
            ];
            let params = GenerateParams {
                max_tokens: 32,
                sampling: SamplingParams::greedy(),
                ..Default::default()
            };
            let mut done = 0;
            while done < requests && generating.load(Ordering::Relaxed) {
                let batch: Vec<_> = (0..2.min(requests - done))
                    .filter_map(|i| {
                        let p = prompts[(done + i) % prompts.len()];
                        engine.submit(Request::text(p, params.clone())).ok()
                    })
                    .collect();
                done += batch.len().max(1);
                for h in batch {
                    let _ = h.wait();
                }
            }
            generating.store(false, Ordering::Relaxed);
            eprintln!("generation done");
        })
    };

    let mut served = 0;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        Registry::global().observe_engine(&engine.stats());
        if let Err(e) = answer(stream) {
            eprintln!("request failed: {e}");
        }
        served += 1;
        if max_http.is_some_and(|m| served >= m) {
            break;
        }
    }
    // Returning ends the process, and with it a generation still running.
    generating.store(false, Ordering::Relaxed);
    if generator.is_finished() {
        let _ = generator.join();
    }
    Ok(())
}

/// Reads one request (at most `MAX_REQUEST` bytes, up to the end of its headers) and answers
/// it.
fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            );
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n.min(MAX_REQUEST - buf.len())]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        );
    }
    let (ctype, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" => (
            PROMETHEUS_CONTENT_TYPE,
            Registry::global().render_prometheus().into_bytes(),
        ),
        "/metrics.json" => (
            "application/json",
            serde_json::to_vec_pretty(&Registry::global().to_json())?,
        ),
        _ => {
            return respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"try /metrics or /metrics.json\n",
            )
        }
    };
    if method == "HEAD" {
        return head_only(&mut stream, "200 OK", ctype, body.len());
    }
    respond(&mut stream, "200 OK", ctype, &body)
}

fn head_only(stream: &mut TcpStream, status: &str, ctype: &str, len: usize) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    head_only(stream, status, ctype, body.len())?;
    stream.write_all(body)?;
    stream.flush()
}
