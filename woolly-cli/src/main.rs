//! `woolly`: the command-line face of Woolly.

/// `println!` that returns an error from the enclosing function when standard output cannot be
/// written (closed, a pipe whose reader went away, a full disk) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        {
            use std::io::Write as _;
            writeln!(std::io::stdout(), $($arg)*).map_err($crate::stdout_error)?
        }
    };
}

mod bench;
mod constrain;
mod doctor;
mod gpu;
mod kernel_check;
mod serve;
mod synth;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use woolly_core::generate::logprobs::MAX_TOP_LOGPROBS;
use woolly_core::generate::{ChatMessage, GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::gguf::GgufFile;
use woolly_core::model::{resolve_model_path, Model, ModelParams, ModelSummary};
use woolly_core::tokenizer::Tokenizer;

#[derive(Parser)]
#[command(
    name = "woolly",
    version,
    about = "Run GGUF language models on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
pub(crate) struct ModelArg {
    /// Model file (default: $WOOLLY_MODEL, then the cached default model installed by `make model`).
    #[arg(long, short = 'm', value_name = "PATH")]
    pub(crate) model: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the token ids of TEXT as a JSON array.
    Tokenize {
        #[command(flatten)]
        model: ModelArg,
        /// Do not add BOS/EOS even where the model asks for them.
        #[arg(long)]
        no_bos: bool,
        /// Treat special-token text such as `<start_of_turn>` as plain text.
        #[arg(long)]
        no_special: bool,
        /// The text to tokenize; `-` or nothing reads standard input.
        text: Option<String>,
    },
    /// Generate text from PROMPT, streaming it to standard output.
    Run(RunArgs),
    /// Measure prompt processing and generation speed (as llama-bench does).
    Bench(bench::BenchArgs),
    /// Serve the model over an OpenAI-compatible HTTP API (on 127.0.0.1 unless --host).
    Serve(serve::ServeArgs),
    /// Print this machine's hardware and the tuning Woolly chooses on it, as JSON.
    Hardware,
    /// Check this machine: CPU, memory, GPU, measured generation speed at batch sizes 1 to 16,
    /// and the settings those measurements recommend.
    Doctor(doctor::DoctorArgs),
    /// Check the CUDA backend on this machine's GPU (`gpu-check kernels`).
    GpuCheck(kernel_check::GpuCheckArgs),
    /// Write a model's skeleton (--like MODEL) or a random-weight model from one (--fill SKELETON).
    Synth(synth::SynthArgs),
    /// Describe a model file: architecture, hyperparameters, tensors, vocabulary.
    Inspect {
        #[command(flatten)]
        model: ModelArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also list every metadata key.
        #[arg(long)]
        metadata: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    gpu: gpu::GpuArgs,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 128)]
    max_tokens: usize,
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    temperature: f32,
    /// Keep the K most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens less likely than this fraction of the best (0 = off).
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Penalise tokens repeated within the last 64 (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Seed of the draw (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when the output contains this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Treat PROMPT as a user message and apply the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Threads (0 = Woolly's policy: one per physical core; more than the CPUs available are
    /// capped there).
    #[arg(short = 't', long, default_value_t = 0)]
    threads: usize,
    /// Context size in tokens (0 = min(4096, the model's)).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    ctx_size: usize,
    /// Print one JSON line at the end (ids, text, timings; `logprobs` with --logprobs)
    /// instead of streaming text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    constraint: constrain::ConstraintArgs,
    /// Report each generated token's log probability and the N most likely alternatives
    /// (0 to 20): in the --json line, else on standard error after the text.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(0..=MAX_TOP_LOGPROBS as u64)
    )]
    logprobs: Option<u64>,
    /// When the prompt and --max-tokens exceed the context: `error` (with the counts),
    /// `truncate-middle` (keep the start, a chat's system prompt and the end), or `shift` (a
    /// rolling window that keeps the first --keep tokens).
    #[arg(long, default_value = "error", value_parser = ["error", "truncate-middle", "shift"])]
    overflow: String,
    /// Tokens a shift keeps at the start.
    #[arg(long, default_value_t = 0)]
    keep: usize,
    /// The most memory the model and its session may use, e.g. `512MB` or `2GB` (0: no budget,
    /// as in the C API); a model that does not fit is refused with the required and available
    /// figures.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_budget: Option<u64>,
    /// When the model file is read: lazy, sequential, critical, full, full_blocking.
    #[arg(long, default_value = "lazy", value_parser = parse_preload)]
    preload: woolly_core::model::Preload,
    /// KV cache precision: f16 (as llama.cpp) or f32.
    #[arg(long, default_value = "f16", value_parser = parse_kv)]
    kv: woolly_core::model::KvPrecision,
    /// The prompt; `-` or nothing reads standard input.
    prompt: Option<String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    woolly_core::policy::memory::parse_size(s).map_err(|e| e.to_string())
}

fn parse_preload(s: &str) -> Result<woolly_core::model::Preload, String> {
    woolly_core::model::Preload::from_name(s).map_err(|e| e.to_string())
}

fn parse_kv(s: &str) -> Result<woolly_core::model::KvPrecision, String> {
    woolly_core::model::KvPrecision::from_name(s).map_err(|e| e.to_string())
}

/// The error for a failed write to standard output: output that did not arrive is a failure,
/// never a silent success.
pub(crate) fn stdout_error(e: std::io::Error) -> Box<dyn std::error::Error> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        "standard output was closed before all the output was written (broken pipe)".into()
    } else {
        format!("cannot write to standard output: {e}").into()
    }
}

/// Whether descriptor 1 was closed when the process started (`woolly run ... >&-`). Rust's
/// runtime replaces closed standard descriptors with /dev/null before `main`, where the output
/// would vanish with a success status, so this is recorded earlier, by a constructor.
static STDOUT_CLOSED_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[cfg(any(target_os = "linux", target_os = "android"))]
#[used]
#[link_section = ".init_array"]
static RECORD_STDOUT_STATE: extern "C" fn() = {
    extern "C" fn record() {
        // SAFETY: F_GETFD on a descriptor number reads nothing from memory.
        if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
            STDOUT_CLOSED_AT_START.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    record
};

/// Whether descriptor 1 is open (and was at start, where that can be known).
fn stdout_is_open() -> bool {
    if STDOUT_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    #[cfg(unix)]
    {
        // SAFETY: F_GETFD on a descriptor number reads nothing from memory.
        unsafe { libc::fcntl(1, libc::F_GETFD) != -1 }
    }
    #[cfg(not(unix))]
    {
        true
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = if stdout_is_open() {
        run(cli).and_then(|()| std::io::stdout().flush().map_err(stdout_error))
    } else {
        Err("standard output is closed".into())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("woolly: error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type CliResult = Result<(), Box<dyn std::error::Error>>;

fn open(model: &ModelArg) -> Result<GgufFile, woolly_core::Error> {
    let path = resolve_model_path(model.model.as_deref())?;
    GgufFile::open(path)
}

fn read_text(text: Option<&str>) -> Result<String, Box<dyn std::error::Error>> {
    Ok(match text {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            String::from_utf8(buf).map_err(|_| "standard input is not valid UTF-8")?
        }
        Some(t) => t.to_string(),
    })
}

fn run_generate(a: RunArgs) -> CliResult {
    // A file that cannot be read (or a schema that is not JSON) fails before the model loads.
    let constraint = a.constraint.constraint()?;
    let prompt = read_text(a.prompt.as_deref())?;
    let path = resolve_model_path(a.model.model.as_deref())?;
    let model = Model::load(
        Some(&path),
        &ModelParams {
            preload: a.preload,
            context_size: a.ctx_size,
            memory: woolly_core::policy::memory::MemoryPolicy {
                budget_bytes: a.memory_budget,
                ..Default::default()
            },
            gpu: a.gpu.params(),
            ..Default::default()
        },
    )?;
    if let Some(c) = &constraint {
        a.constraint.check(c, model.tokenizer())?;
    }
    let mut session = Session::new(
        model.clone(),
        &SessionParams {
            context_size: a.ctx_size,
            threads: a.threads,
            kv_precision: a.kv,
            ..Default::default()
        },
    )?;
    let params = GenerateParams {
        max_tokens: a.max_tokens,
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repetition_penalty: a.repeat_penalty,
            seed: a.seed,
            ..Default::default()
        },
        stop: a.stop,
        constraint,
        logprobs: a.logprobs.map(|n| n as usize),
        overflow: woolly_core::generate::Overflow::from_name(&a.overflow, a.keep)?,
        ..Default::default()
    };
    if !a.json {
        let hw = woolly_core::platform::Hardware::detect();
        let (pt, gt) = session.threads();
        eprintln!(
            "[tuning: {} kernels; threads {pt} for the prompt, {gt} for generation ({}); {} physical / {} logical cores; {:.0} MiB of weights repacked for this CPU]",
            woolly_core::kernels::cpu::simd_level(),
            if a.threads == 0 { "Woolly's policy" } else { "--threads" },
            hw.physical_cores,
            hw.logical_cores,
            model.packed_bytes() as f64 / (1 << 20) as f64,
        );
        let p = model.placement();
        if p.uses_gpu() {
            eprintln!(
                "[placement: {}; a KV cache that does not fit on the GPU: --on-device-oom {}]",
                p.reason,
                p.on_device_oom.name()
            );
        } else {
            eprintln!("[placement: {}]", p.reason);
        }
        let b = model.memory_account().budget();
        let mib = |x: u64| x as f64 / (1 << 20) as f64;
        eprintln!(
            "[memory: model {:.0} MiB + session {:.0} MiB ({}-token context, {} KV); {:.0} MiB available, {:.0} MiB kept for other programs{}; preload {}]",
            mib(model.memory_estimate().model_bytes()),
            mib(session.charged_bytes()),
            session.context_size(),
            a.kv.name(),
            mib(b.available_bytes),
            mib(b.reserve_bytes),
            b.budget_bytes
                .map(|x| format!(", budget {:.0} MiB", mib(x)))
                .unwrap_or_default(),
            a.preload.name(),
        );
    }
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    let mut on_token = |ev: &woolly_core::generate::TokenEvent<'_>| {
        if a.json || ev.text.is_empty() {
            return true;
        }
        match out.write_all(ev.text.as_bytes()).and_then(|_| out.flush()) {
            Ok(()) => true,
            Err(e) => {
                // A closed pipe (`woolly run ... | head`) ends generation, and the run fails.
                write_err = Some(e);
                false
            }
        }
    };
    let g = if a.chat {
        session.chat(&[ChatMessage::new("user", prompt)], &params, &mut on_token)?
    } else {
        session.generate(&prompt, &params, &mut on_token)?
    };
    if let Some(e) = write_err {
        return Err(stdout_error(e));
    }
    let t = &g.timings;
    let load_ms = model.load_time().as_secs_f64() * 1e3;
    if a.json {
        let mut v = serde_json::json!({
            "prompt_ids": g.prompt_ids,
            "generated_ids": g.generated_ids,
            "text": g.text,
            "stop_reason": g.stop_reason,
            "dropped": g.dropped,
            "placement": model.placement(),
            "gpu_activity": model.metrics().gpu_activity(),
            "timings": {
                "load_ms": load_ms,
                "prompt_ms": t.prompt_ms,
                "prompt_tok_s": t.prompt_tok_s,
                "gen_tok_s": t.gen_tok_s,
                "ttft_ms": t.ttft_ms,
                "prompt_tokens": t.prompt_tokens,
                "generated_tokens": t.generated_tokens,
                "threads": session.threads().1,
                "prompt_threads": session.threads().0,
            },
        });
        if a.logprobs.is_some() {
            v["logprobs"] = g.logprobs.iter().map(constrain::logprob_json).collect();
        }
        writeln!(out, "{v}").map_err(stdout_error)?;
    } else {
        writeln!(out).map_err(stdout_error)?;
        for lp in &g.logprobs {
            eprintln!("{}", constrain::logprob_line(lp));
        }
        for d in &g.dropped {
            eprintln!(
                "[dropped {} tokens at position {} ({}) to fit the context of {} tokens]",
                d.count,
                d.at,
                d.during,
                session.context_size()
            );
        }
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s; first token after {:.0} ms; load {:.0} ms; {} threads; stop: {:?}]",
            t.prompt_tokens, t.prompt_tok_s, t.generated_tokens, t.gen_tok_s, t.ttft_ms, load_ms,
            session.threads().1, g.stop_reason
        );
    }
    Ok(())
}

fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Run(args) => run_generate(args)?,
        Command::Bench(args) => bench::run(args)?,
        Command::Serve(args) => serve::run(args)?,
        Command::Doctor(args) => doctor::run(args)?,
        Command::GpuCheck(args) => {
            if !kernel_check::run(args)? {
                return Err("a CUDA kernel differs from its CPU twin beyond the tolerance".into());
            }
        }
        Command::Synth(args) => synth::run(args)?,
        Command::Hardware => {
            let hw = woolly_core::platform::Hardware::detect();
            let v = serde_json::json!({
                "hardware": hw.to_json(),
                "kernels": woolly_core::kernels::cpu::simd_level(),
                "threads": woolly_core::policy::threads::policy_json(&hw),
                "cuda": woolly_core::platform::cuda::report().to_json(),
            });
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Command::Tokenize {
            model,
            no_bos,
            no_special,
            text,
        } => {
            let text = read_text(text.as_deref())?;
            let file = open(&model)?;
            let tok = Tokenizer::from_gguf(&file)?;
            let ids = tok.encode(&text, !no_bos, !no_special)?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &ids).map_err(|e| stdout_error(e.into()))?;
            writeln!(out).map_err(stdout_error)?;
        }
        Command::Inspect {
            model,
            json,
            metadata,
        } => {
            let file = open(&model)?;
            let s = ModelSummary::from_gguf(&file)?;
            if json {
                let mut v = serde_json::to_value(&s)?;
                if metadata {
                    let m: serde_json::Map<String, serde_json::Value> = file
                        .metadata()
                        .iter()
                        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                        .collect();
                    v["metadata"] = serde_json::Value::Object(m);
                }
                outln!("{v}");
            } else {
                print_summary(&s)?;
                if metadata {
                    outln!("metadata:");
                    for (k, v) in file.metadata().iter() {
                        outln!("  {k} = {v}");
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_summary(s: &ModelSummary) -> CliResult {
    let h = &s.hparams;
    outln!("file:          {}", s.path);
    if let Some(n) = &s.name {
        outln!("name:          {n}");
    }
    outln!(
        "format:        GGUF v{}, {:.1} MiB, {} tensors, {:.1} M parameters",
        s.gguf_version,
        s.file_size as f64 / (1 << 20) as f64,
        s.n_tensors,
        s.n_params as f64 / 1e6
    );
    outln!("architecture:  {}", h.architecture.name());
    outln!(
        "layers:        {} (embedding {}, feed-forward {})",
        h.n_layer,
        h.n_embd,
        h.n_ff
    );
    outln!(
        "attention:     {} query heads, {} key/value heads, head size {}/{}",
        h.n_head,
        h.n_head_kv,
        h.head_dim_k,
        h.head_dim_v
    );
    outln!(
        "rope:          {} dims, base {}{}",
        h.rope_dims,
        h.rope_freq_base,
        if h.sliding_window > 0 {
            format!(
                " (sliding layers: base {}, window {}, every {}th layer global)",
                h.rope_freq_base_swa, h.sliding_window, h.swa_pattern
            )
        } else {
            String::new()
        }
    );
    outln!("context:       {} (trained)", h.n_ctx_train);
    outln!("rms epsilon:   {}", h.rms_eps);
    outln!(
        "vocabulary:    {} tokens, {}{}{}",
        s.vocab_size,
        match s.vocab_kind.as_deref() {
            Some("llama") => "SentencePiece (llama)",
            Some("gpt2") => "byte-level BPE (gpt2)",
            Some(other) => other,
            None => "none",
        },
        s.vocab_pre
            .as_deref()
            .map(|p| format!(", pre-tokenizer {p}"))
            .unwrap_or_default(),
        if s.has_chat_template {
            ", chat template"
        } else {
            ""
        }
    );
    outln!("tensor types:");
    for (ty, c) in &s.tensor_types {
        outln!(
            "  {:<6} {:>4} tensors {:>10.1} MiB",
            ty,
            c.tensors,
            c.bytes as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
