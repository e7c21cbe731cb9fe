//! The engine on the default model: many threads submitting, batched outputs equal to each
//! request run alone, priorities, deadlines, a full queue, cancellation freeing the slot, and
//! every accepted request answered (also when the engine is dropped).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use woolly_core::engine::{Engine, EngineParams, Event, Priority, Request};
use woolly_core::generate::{GenerateParams, SamplingParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::testing;
use woolly_core::ErrorKind;

fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap())
        .clone()
}

fn engine(params: EngineParams) -> Engine {
    Engine::new(
        model(),
        EngineParams {
            threads: 2,
            context_size: 1024,
            ..params
        },
    )
    .unwrap()
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    }
}

const PROMPTS: [&str; 6] = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The three primary colors are",
    "List the planets of the solar system: Mercury,",
    "A recipe for pancakes needs flour, eggs and",
];

/// Greedy ids of each prompt, for one `max_tokens`.
type Outputs = (usize, Vec<Vec<u32>>);

/// What each prompt gives alone on an engine (no other request running).
fn alone(n: usize) -> Vec<Vec<u32>> {
    static A: OnceLock<Mutex<Option<Outputs>>> = OnceLock::new();
    let slot = A.get_or_init(|| Mutex::new(None));
    let mut g = slot.lock().unwrap();
    if let Some((m, v)) = &*g {
        if *m == n {
            return v.clone();
        }
    }
    let e = engine(EngineParams::default());
    let v: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| {
            e.submit(Request::text(*p, greedy(n)))
                .unwrap()
                .wait()
                .unwrap()
                .generated_ids
        })
        .collect();
    *g = Some((n, v.clone()));
    v
}

#[test]
fn many_threads_submitting_get_what_each_gets_alone() {
    let want = alone(12);
    let e = Arc::new(engine(EngineParams::default()));
    let threads: Vec<_> = (0..PROMPTS.len() * 2)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                let p = PROMPTS[i % PROMPTS.len()];
                let mut streamed = String::new();
                let g = e
                    .submit(Request::text(p, greedy(12)))
                    .unwrap()
                    .wait_with(|_, t| streamed.push_str(t))
                    .unwrap();
                assert_eq!(streamed, g.text);
                (i % PROMPTS.len(), g.generated_ids)
            })
        })
        .collect();
    for t in threads {
        let (i, ids) = t.join().unwrap();
        assert_eq!(ids, want[i], "prompt {i} changed when batched");
    }
    let s = e.stats();
    assert_eq!(s.completed, 12);
    assert!(s.mean_batch_size > 1.5, "steps were not batched: {s:?}");
    assert!(s.decode_step_ms > 0.0);
    // The model's metrics saw every request.
    assert!(model().metrics().snapshot().generations >= 12);
}

#[test]
fn a_long_prompt_is_read_in_chunks_with_the_same_answer() {
    let prompt = "The history of the printing press is long and full of turns. ".repeat(30);
    let run = |chunk| {
        engine(EngineParams {
            prefill_chunk: chunk,
            ..Default::default()
        })
        .submit(Request::text(prompt.clone(), greedy(6)))
        .unwrap()
        .wait()
        .unwrap()
    };
    let whole = run(4096);
    let chunked = run(128);
    assert!(whole.prompt_ids.len() > 300);
    assert_eq!(whole.generated_ids, chunked.generated_ids);
}

/// An engine with one slot, busy with a long request.
fn busy_engine(queue: usize) -> (Engine, woolly_core::engine::RequestHandle) {
    let e = engine(EngineParams {
        max_concurrent: 1,
        queue_capacity: queue,
        ..Default::default()
    });
    let long = e
        .submit(Request::text("Count slowly:", greedy(400)))
        .unwrap();
    // Wait until it runs.
    match long.recv_timeout(Duration::from_secs(30)) {
        Some(Event::Token { .. }) => {}
        other => panic!("{other:?}"),
    }
    (e, long)
}

#[test]
fn priorities_decide_who_starts_first() {
    let (e, long) = busy_engine(16);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for (name, prio, latency) in [
        ("low", Priority::Low, false),
        ("normal", Priority::Normal, false),
        ("normal-latency", Priority::Normal, true),
        ("critical", Priority::Critical, false),
        ("high", Priority::High, false),
    ] {
        let mut r = Request::text("Hello", greedy(2)).with_priority(prio);
        r.latency_sensitive = latency;
        let h = e.submit(r).unwrap();
        let order = order.clone();
        handles.push(std::thread::spawn(move || {
            let g = h.wait().unwrap();
            order.lock().unwrap().push((g.timings.queue_ms, name));
        }));
    }
    long.cancel();
    assert_eq!(long.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    for h in handles {
        h.join().unwrap();
    }
    let mut order = order.lock().unwrap().clone();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let names: Vec<_> = order.iter().map(|x| x.1).collect();
    assert_eq!(
        names,
        ["critical", "high", "normal-latency", "normal", "low"]
    );
}

#[test]
fn an_urgent_request_gets_its_first_token_while_background_work_runs() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{mpsc, Condvar};
    // Every sink runs on the engine's thread, one event after another, so what each background
    // request received before and after the urgent one ended is exact. The background work is
    // held (inside a sink, on the engine's thread) once all four have their first token, until
    // the urgent request is queued: the outcome does not depend on the machine's speed.
    let e = engine(EngineParams::default());
    let high_done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let (tx, rx) = mpsc::channel::<(usize, usize, bool)>();
    for (i, prompt) in PROMPTS.iter().take(4).enumerate() {
        let (high_done, started, gate, tx) =
            (high_done.clone(), started.clone(), gate.clone(), tx.clone());
        let (mut before, mut after) = (0, 0);
        e.submit_with(
            Request::text(*prompt, greedy(120)).with_priority(Priority::Low),
            Box::new(move |ev| match ev {
                Event::Token { .. } => {
                    if before + after == 0 && started.fetch_add(1, Ordering::SeqCst) == 3 {
                        let (open, cv) = &*gate;
                        let mut open = open.lock().unwrap();
                        while !*open {
                            open = cv.wait(open).unwrap();
                        }
                    }
                    if high_done.load(Ordering::SeqCst) {
                        after += 1;
                    } else {
                        before += 1;
                    }
                }
                Event::Done(g) => {
                    let _ = tx.send((before, after, g.generated_ids.len() == 120));
                }
                Event::Error(err) => panic!("low request {i}: {err}"),
            }),
        )
        .unwrap();
    }
    let watchdog = Instant::now();
    while started.load(Ordering::SeqCst) < 4 {
        assert!(
            watchdog.elapsed() < Duration::from_secs(300),
            "the background requests never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (htx, hrx) = mpsc::channel();
    let flag = high_done.clone();
    let mut ids = Vec::new();
    e.submit_with(
        Request::text("The capital of France is", greedy(3)).latency_sensitive(),
        Box::new(move |ev| match ev {
            Event::Token { id, .. } => ids.push(id),
            Event::Done(_) => {
                flag.store(true, Ordering::SeqCst);
                let _ = htx.send(Ok(std::mem::take(&mut ids)));
            }
            Event::Error(err) => {
                let _ = htx.send(Err(err));
            }
        }),
    )
    .unwrap();
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    let high = hrx.recv().unwrap().unwrap();
    assert_eq!(high, alone(3)[0]);
    drop(tx);
    let lows: Vec<_> = rx.iter().collect();
    assert_eq!(lows.len(), 4);
    for (before, after, complete) in lows {
        assert!(complete);
        // The urgent request took a handful of steps; the background ones had 120 tokens each,
        // nearly all still to come when it ended.
        assert!(
            before < 20 && after > 100,
            "{before} tokens before the urgent request ended, {after} after"
        );
    }
}

#[test]
fn deadlines_end_requests_with_an_error() {
    // Before it starts: queued behind a long request.
    let (e, long) = busy_engine(16);
    let r = e
        .submit(Request::text("Hello", greedy(4)).with_timeout(Duration::from_millis(50)))
        .unwrap();
    let err = r.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(
        err.to_string().contains("before the request started"),
        "{err}"
    );
    long.cancel();
    let _ = long.wait();
    // While it runs (a deadline generous enough for the first token on a busy machine, too
    // short for all of them).
    let r = e
        .submit(Request::text("Count:", greedy(1000)).with_timeout(Duration::from_millis(1000)))
        .unwrap();
    let mut tokens = 0;
    let err = loop {
        match r.recv().unwrap() {
            Event::Token { .. } => tokens += 1,
            Event::Done(_) => panic!("finished past its deadline"),
            Event::Error(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(tokens > 0 && tokens < 1000, "{tokens} tokens");
    // Already past at submission: refused at once.
    let mut past = Request::text("Hello", greedy(4));
    past.deadline = Some(Instant::now() - Duration::from_millis(1));
    assert_eq!(
        e.submit(past).err().unwrap().kind(),
        ErrorKind::DeadlineExceeded
    );
    assert!(e.stats().deadline_exceeded >= 2);
}

#[test]
fn a_full_queue_answers_busy() {
    let (e, long) = busy_engine(2);
    let a = e.submit(Request::text("Hello", greedy(2))).unwrap();
    let b = e.submit(Request::text("Hello", greedy(2))).unwrap();
    let err = e.submit(Request::text("Hello", greedy(2))).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_eq!(e.stats().rejected_busy, 1);
    assert!(e.estimated_wait(Priority::Normal) > Duration::ZERO);
    long.cancel();
    a.wait().unwrap();
    b.wait().unwrap();
}

#[test]
fn cancelling_frees_the_slot_from_another_thread() {
    let (e, long) = busy_engine(4);
    let next = e.submit(Request::text("Hello", greedy(3))).unwrap();
    let token = long.cancel_token();
    std::thread::spawn(move || token.cancel()).join().unwrap();
    assert_eq!(long.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(next.wait().unwrap().generated_ids.len(), 3);
    // Cancelled while waiting: ends without running.
    let (e2, long2) = busy_engine(4);
    let queued = e2.submit(Request::text("Hello", greedy(3))).unwrap();
    queued.cancel();
    assert_eq!(queued.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    long2.cancel();
    drop(e);
}

#[test]
fn nothing_is_lost_when_the_engine_goes_away() {
    let (e, long) = busy_engine(8);
    let queued: Vec<_> = (0..4)
        .map(|_| e.submit(Request::text("Hello", greedy(3))).unwrap())
        .collect();
    drop(e);
    assert_eq!(long.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    for q in queued {
        assert_eq!(q.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    }
}

#[test]
fn bad_requests_are_refused_at_submission() {
    let e = engine(EngineParams::default());
    let err = e
        .submit(Request::text("Hello", greedy(5000)))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::ContextOverflow);
    let mut r = Request::text("Hello", greedy(4));
    r.params.sampling.temperature = -1.0;
    assert_eq!(
        e.submit(r).err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
    let r = Request {
        prompt: woolly_core::engine::Prompt::Tokens(vec![u32::MAX]),
        ..Request::text("", greedy(1))
    };
    assert_eq!(
        e.submit(r).err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
    let chat = Request::chat(
        vec![woolly_core::chat::ChatMessage::new("user", "Say hi")],
        greedy(3),
    );
    assert_eq!(
        e.submit(chat).unwrap().wait().unwrap().generated_ids.len(),
        3
    );
}

/// About 400 tokens of prompt.
fn long_prompt() -> String {
    "The history of the printing press is long and full of turns. ".repeat(33)
}

#[test]
fn a_deadline_is_checked_inside_the_prompt_and_never_reports_success() {
    // The whole prompt in one step: before, the deadline was checked only between steps, so
    // this request read its prompt, sampled its one token and reported success long after.
    let e = engine(EngineParams {
        prefill_chunk: 4096,
        ..Default::default()
    });
    let r = e
        .submit(Request::text(long_prompt(), greedy(1)).with_timeout(Duration::from_millis(50)))
        .unwrap();
    let mut tokens = 0;
    let err = loop {
        match r.recv_timeout(Duration::from_secs(120)).expect("watchdog") {
            Event::Token { .. } => tokens += 1,
            Event::Done(g) => panic!("success past the deadline: {:?}", g.timings),
            Event::Error(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(tokens, 0);
    // The prompt step was stopped within its layers, not run to its end.
    assert_eq!(e.stats().steps, 0, "{:?}", e.stats());
    assert_eq!(e.stats().deadline_exceeded, 1);
}

#[test]
fn requests_are_cancelled_by_id() {
    let (e, long) = busy_engine(4);
    let queued = e.submit(Request::text("Hello", greedy(3))).unwrap();
    // Waiting, then running: both by id, from another thread.
    let e = Arc::new(e);
    let (e2, qid, lid) = (e.clone(), queued.id(), long.id());
    std::thread::spawn(move || assert!(e2.cancel(qid) && e2.cancel(lid)))
        .join()
        .unwrap();
    assert_eq!(queued.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(long.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    // Ended: unknown from then on.
    assert!(!e.cancel(qid) && !e.cancel(lid) && !e.cancel(12345));
    let done = e.submit(Request::text("Hello", greedy(2))).unwrap();
    let id = done.id();
    done.wait().unwrap();
    assert!(!e.cancel(id));
}

#[test]
fn a_long_prompt_being_prepared_holds_up_no_cancel() {
    let (e, long) = busy_engine(4);
    let e = Arc::new(e);
    let preparing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (e2, p2, f2) = (e.clone(), preparing.clone(), finished.clone());
    // 4 MiB of text: tokenizing it takes seconds; it then overflows the context.
    let submitter = std::thread::spawn(move || {
        let text = "word ".repeat(4 << 18);
        p2.store(true, std::sync::atomic::Ordering::SeqCst);
        let r = e2.submit(Request::text(text, greedy(1)));
        f2.store(true, std::sync::atomic::Ordering::SeqCst);
        r.err().map(|e| e.kind())
    });
    while !preparing.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(e.cancel(long.id()));
    assert_eq!(long.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    let _ = e.stats();
    assert!(
        !finished.load(std::sync::atomic::Ordering::SeqCst),
        "the cancel waited for the long prompt's preparation"
    );
    assert_eq!(submitter.join().unwrap(), Some(ErrorKind::ContextOverflow));
}

#[test]
fn waiting_or_dropping_the_engine_from_a_sink_never_hangs() {
    let e = Arc::new(Mutex::new(Some(engine(EngineParams::default()))));
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = e.clone();
    let sink = Box::new(move |ev: Event| {
        if let Event::Token { index: 0, .. } = ev {
            // Waiting for a request of the same engine on its own thread: Busy at once.
            let guard = inner.lock().unwrap();
            let h = guard
                .as_ref()
                .unwrap()
                .submit(Request::text("Hello", greedy(2)))
                .unwrap();
            let r = h.wait().map(|_| ()).map_err(|e| e.kind());
            drop(guard);
            // Dropping the engine from its own thread returns at once.
            let engine = inner.lock().unwrap().take();
            drop(engine);
            let _ = tx.send(Some(r));
        } else if !matches!(ev, Event::Token { .. }) {
            let _ = tx.send(None);
            let _ = ev;
        }
    });
    let id = e
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .submit_with(Request::text("Once upon a time", greedy(50)), sink)
        .unwrap();
    assert!(id > 0);
    let first = rx.recv_timeout(Duration::from_secs(120)).expect("watchdog");
    assert_eq!(first, Some(Err(ErrorKind::Busy)));
    // The request ends (cancelled with its engine) and the engine's thread with it.
    let last = rx.recv_timeout(Duration::from_secs(120)).expect("watchdog");
    assert_eq!(last, None);
    assert!(e.lock().unwrap().is_none());
}
