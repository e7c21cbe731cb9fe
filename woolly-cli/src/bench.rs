//! `woolly bench`: prompt processing and generation speed, measured the way llama-bench does.

use std::time::Instant;

use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::platform::{process, Hardware};
use woolly_core::tokenizer::TokenId;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: super::ModelArg,
    #[command(flatten)]
    pub gpu: super::gpu::GpuArgs,
    /// Prompt tokens for the prompt-processing test (0 = skip it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    pub n_prompt: usize,
    /// Tokens for the generation test (0 = skip it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    pub n_gen: usize,
    /// Thread counts to measure, comma-separated (0 = Woolly's policy).
    #[arg(short = 't', long, value_delimiter = ',', default_value = "0")]
    pub threads: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long, default_value_t = 3)]
    pub repetitions: usize,
    /// One JSON line per thread count instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Pin worker threads to distinct physical cores.
    #[arg(long)]
    pub pin: bool,
    /// Serve this many concurrent requests through one engine (comma-separated list to
    /// compare) and report aggregate generation speed and time to first token instead.
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Prompt tokens of each concurrent request.
    #[arg(long, default_value_t = 32)]
    pub concurrent_prompt: usize,
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Deterministic prompt tokens spread over the ordinary part of the vocabulary.
fn bench_tokens(model: &Model, n: usize) -> Vec<TokenId> {
    let vocab = model.hparams().n_vocab as u64;
    let lo = 1000.min(vocab / 4);
    let span = (vocab - 2 * lo).max(1);
    let mut x = 0x2545f4914f6cdd1du64;
    let mut ids = Vec::with_capacity(n);
    if let Some(bos) = model.tokenizer().bos() {
        ids.push(bos);
    }
    while ids.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids.push((lo + x % span) as TokenId);
    }
    ids
}

pub fn run(a: BenchArgs) -> super::CliResult {
    if a.repetitions == 0 {
        return Err("--repetitions must be at least 1".into());
    }
    if !a.concurrency.is_empty() {
        return run_concurrent(a);
    }
    let path = woolly_core::model::resolve_model_path(a.model.model.as_deref())?;
    let t0 = Instant::now();
    let model = Model::load(
        Some(&path),
        &ModelParams {
            gpu: a.gpu.params(),
            ..ModelParams::default()
        },
    )?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let hw = Hardware::detect();
    let ctx = (a.n_prompt + a.n_gen + 16).max(64);
    if !a.json {
        outln!(
            "model {} ({}), load {:.0} ms, kernels {}, {} physical / {} logical cores",
            path.display(),
            model.hparams().architecture.name(),
            load_ms,
            woolly_core::kernels::cpu::simd_level(),
            hw.physical_cores,
            hw.logical_cores
        );
        outln!("| threads | test   |          tok/s |  ttft ms | peak RSS MiB |");
        outln!("|--------:|:-------|---------------:|---------:|-------------:|");
    }
    for &threads in &a.threads {
        let mut session = Session::new(
            model.clone(),
            &SessionParams {
                threads,
                context_size: ctx,
                pin_threads: a.pin,
                ..Default::default()
            },
        )?;
        let (pt, gt) = session.threads();
        let prompt = bench_tokens(&model, a.n_prompt);
        let mut pp = Vec::new();
        let mut ttft = Vec::new();
        let mut tg = Vec::new();
        let greedy = |n: usize| GenerateParams {
            max_tokens: n,
            sampling: SamplingParams::greedy(),
            ignore_eos: true,
            ..Default::default()
        };
        // One warm-up of each, then the measured repetitions.
        for rep in 0..=a.repetitions {
            if a.n_prompt > 0 {
                session.reset();
                let g = session.generate_from_tokens(&prompt, &greedy(1), |_| true)?;
                if rep > 0 {
                    pp.push(g.timings.prompt_tok_s);
                    ttft.push(g.timings.ttft_ms);
                }
            }
            if a.n_gen > 0 {
                session.reset();
                let start = bench_tokens(&model, 1);
                // Every generated token after the first costs one forward pass of one token.
                let g = session.generate_from_tokens(&start, &greedy(a.n_gen + 1), |_| true)?;
                if rep > 0 {
                    tg.push(g.timings.gen_tok_s);
                }
            }
        }
        let (pp_m, pp_sd) = mean_sd(&pp);
        let (tg_m, tg_sd) = mean_sd(&tg);
        let (ttft_m, _) = mean_sd(&ttft);
        let peak = process::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
        if a.json {
            let v = serde_json::json!({
                "model": path.display().to_string(),
                "threads": threads,
                "prompt_threads": pt,
                "gen_threads": gt,
                "n_prompt": a.n_prompt,
                "n_gen": a.n_gen,
                "repetitions": a.repetitions,
                "pp_tok_s": pp_m,
                "pp_tok_s_sd": pp_sd,
                "tg_tok_s": tg_m,
                "tg_tok_s_sd": tg_sd,
                "ttft_ms": ttft_m,
                "load_ms": load_ms,
                "peak_rss_bytes": process::peak_rss_bytes(),
                "kernels": woolly_core::kernels::cpu::simd_level(),
            });
            outln!("{v}");
        } else {
            let label = if threads == 0 {
                format!("{pt}/{gt} auto")
            } else {
                threads.to_string()
            };
            if a.n_prompt > 0 {
                outln!(
                    "| {label:>7} | pp{:<4} | {pp_m:>8.1} ± {pp_sd:>4.1} | {ttft_m:>8.0} | {peak:>12.0} |",
                    a.n_prompt
                );
            }
            if a.n_gen > 0 {
                outln!(
                    "| {label:>7} | tg{:<4} | {tg_m:>8.1} ± {tg_sd:>4.1} |          | {peak:>12.0} |",
                    a.n_gen
                );
            }
        }
    }
    Ok(())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// One round: `n` requests submitted at once, each `n_prompt` tokens then `n_gen` generated.
/// Aggregate generation speed counts the tokens generated while all of them were generating
/// (from the last first token to the end), as llama-batched-bench times its generation phase.
fn concurrent_round(
    engine: &woolly_core::engine::Engine,
    model: &Model,
    n: usize,
    n_prompt: usize,
    n_gen: usize,
) -> Result<(f64, Vec<f64>), Box<dyn std::error::Error>> {
    use woolly_core::engine::{Event, Prompt, Request};
    let handles = (0..n)
        .map(|i| {
            // Distinct prompts: the same generator shifted per request.
            let mut ids = bench_tokens(model, n_prompt + i);
            ids.drain(1..1 + i.min(ids.len().saturating_sub(2)));
            engine.submit(Request {
                prompt: Prompt::Tokens(ids),
                ..Request::text(
                    "",
                    GenerateParams {
                        max_tokens: n_gen,
                        sampling: SamplingParams::greedy(),
                        ignore_eos: true,
                        ..Default::default()
                    },
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let collectors: Vec<_> = handles
        .into_iter()
        .map(|h| {
            std::thread::spawn(move || -> Result<(Vec<Instant>, f64), woolly_core::Error> {
                let mut times = Vec::new();
                while let Some(ev) = h.recv() {
                    match ev {
                        Event::Token { .. } => times.push(Instant::now()),
                        Event::Done(g) => return Ok((times, g.timings.ttft_ms)),
                        Event::Error(e) => return Err(e),
                    }
                }
                Err(woolly_core::Error::Internal("no answer".into()))
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in collectors {
        all.push(c.join().map_err(|_| "collector panicked")??);
    }
    let start = all
        .iter()
        .filter_map(|(t, _)| t.first().copied())
        .max()
        .ok_or("no tokens")?;
    let end = all
        .iter()
        .filter_map(|(t, _)| t.last().copied())
        .max()
        .ok_or("no tokens")?;
    let tokens = all
        .iter()
        .map(|(t, _)| t.iter().filter(|&&x| x > start).count())
        .sum::<usize>();
    let secs = (end - start).as_secs_f64();
    let agg = if secs > 0.0 {
        tokens as f64 / secs
    } else {
        0.0
    };
    Ok((agg, all.into_iter().map(|(_, ttft)| ttft).collect()))
}

/// `--concurrency`: aggregate generation tok/s and TTFT percentiles through one engine, then
/// the first-token time of an urgent request arriving while the background requests run,
/// against its time on an idle engine.
fn run_concurrent(a: BenchArgs) -> super::CliResult {
    use woolly_core::engine::{Engine, EngineParams, Priority, Prompt, Request};
    let path = woolly_core::model::resolve_model_path(a.model.model.as_deref())?;
    let model = Model::load(
        Some(&path),
        &ModelParams {
            gpu: a.gpu.params(),
            ..ModelParams::default()
        },
    )?;
    let threads = a.threads.first().copied().unwrap_or(0);
    let n_gen = a.n_gen.max(2);
    if !a.json {
        outln!(
            "model {}, {} prompt tokens and {n_gen} generated per request, {} repetitions",
            path.display(),
            a.concurrent_prompt,
            a.repetitions
        );
        outln!("| requests | aggregate tg tok/s | TTFT p50 ms | TTFT p99 ms | urgent TTFT p99 ms | idle TTFT p99 ms |");
        outln!("|---:|---:|---:|---:|---:|---:|");
    }
    for &n in &a.concurrency {
        if n == 0 {
            return Err("--concurrency values must be at least 1".into());
        }
        let engine = Engine::new(
            model.clone(),
            EngineParams {
                max_batch_size: n + 1,
                max_concurrent: n + 1,
                context_size: (a.concurrent_prompt + n + n_gen + 64).max(256),
                threads,
                ..Default::default()
            },
        )?;
        let mut aggs = Vec::new();
        let mut ttfts = Vec::new();
        // One warm-up round, then the measured ones.
        for rep in 0..=a.repetitions {
            let (agg, t) = concurrent_round(&engine, &model, n, a.concurrent_prompt, n_gen)?;
            if rep > 0 {
                aggs.push(agg);
                ttfts.extend(t);
            }
        }
        // An urgent request on an idle engine, then while `n` low-priority ones generate.
        let urgent = || Request {
            prompt: Prompt::Tokens(bench_tokens(&model, a.concurrent_prompt)),
            ..Request::text(
                "",
                GenerateParams {
                    max_tokens: 1,
                    sampling: SamplingParams::greedy(),
                    ..Default::default()
                },
            )
            .with_priority(Priority::High)
            .latency_sensitive()
        };
        let mut idle = Vec::new();
        let mut busy = Vec::new();
        for _ in 0..5 * a.repetitions {
            idle.push(engine.submit(urgent())?.wait()?.timings.ttft_ms);
        }
        let background: Vec<_> = (0..n)
            .map(|i| {
                engine.submit(Request {
                    prompt: Prompt::Tokens(bench_tokens(&model, a.concurrent_prompt + i)),
                    ..Request::text(
                        "",
                        GenerateParams {
                            max_tokens: 100_000
                                .min(engine.context_size() - a.concurrent_prompt - n - 8),
                            sampling: SamplingParams::greedy(),
                            ignore_eos: true,
                            ..Default::default()
                        },
                    )
                    .with_priority(Priority::Low)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        std::thread::sleep(std::time::Duration::from_millis(200));
        for i in 0..5 * a.repetitions {
            // Arrivals spread over the background steps.
            std::thread::sleep(std::time::Duration::from_millis(7 * (i as u64 % 5)));
            busy.push(engine.submit(urgent())?.wait()?.timings.ttft_ms);
        }
        for b in &background {
            b.cancel();
        }
        drop(background);
        let (agg, _) = mean_sd(&aggs);
        let p50 = percentile(&mut ttfts.clone(), 0.5);
        let p99 = percentile(&mut ttfts, 0.99);
        let urgent_p99 = percentile(&mut busy, 0.99);
        let idle_p99 = percentile(&mut idle, 0.99);
        let stats = engine.stats();
        if a.json {
            outln!(
                "{}",
                serde_json::json!({
                    "concurrency": n,
                    "n_prompt": a.concurrent_prompt,
                    "n_gen": n_gen,
                    "aggregate_tg_tok_s": agg,
                    "ttft_p50_ms": p50,
                    "ttft_p99_ms": p99,
                    "urgent_ttft_p99_ms": urgent_p99,
                    "idle_ttft_p99_ms": idle_p99,
                    "mean_batch_size": stats.mean_batch_size,
                    "decode_step_ms": stats.decode_step_ms,
                    "preempted_steps": stats.preempted_steps,
                })
            );
        } else {
            outln!("| {n} | {agg:.1} | {p50:.0} | {p99:.0} | {urgent_p99:.0} | {idle_p99:.0} |");
        }
    }
    Ok(())
}
