//! `woolly bench`: prompt processing and generation speed, measured the way llama-bench does.

use std::time::Instant;

use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::tokenizer::TokenId;
use woolly_core::tune::{process, Hardware};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: super::ModelArg,
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
    let path = woolly_core::model::resolve_model_path(a.model.model.as_deref())?;
    let t0 = Instant::now();
    let model = Model::load(Some(&path), &ModelParams::default())?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let hw = Hardware::detect();
    let ctx = (a.n_prompt + a.n_gen + 16).max(64);
    if !a.json {
        println!(
            "model {} ({}), load {:.0} ms, kernels {}, {} physical / {} logical cores",
            path.display(),
            model.hparams().architecture.name(),
            load_ms,
            woolly_core::kernels::cpu::simd_level(),
            hw.physical_cores,
            hw.logical_cores
        );
        println!("| threads | test   |          tok/s |  ttft ms | peak RSS MiB |");
        println!("|--------:|:-------|---------------:|---------:|-------------:|");
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
            println!("{v}");
        } else {
            let label = if threads == 0 {
                format!("{pt}/{gt} auto")
            } else {
                threads.to_string()
            };
            if a.n_prompt > 0 {
                println!(
                    "| {label:>7} | pp{:<4} | {pp_m:>8.1} ± {pp_sd:>4.1} | {ttft_m:>8.0} | {peak:>12.0} |",
                    a.n_prompt
                );
            }
            if a.n_gen > 0 {
                println!(
                    "| {label:>7} | tg{:<4} | {tg_m:>8.1} ± {tg_sd:>4.1} |          | {peak:>12.0} |",
                    a.n_gen
                );
            }
        }
    }
    Ok(())
}
