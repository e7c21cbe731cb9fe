//! The cost of constrained decoding: generation speed with a JSON schema against the same
//! generation unconstrained, alternated over repetitions (the machine is noisy), and the time
//! a step waits for its mask (what the mask thread's overlap with the forward pass leaves).
//!
//! `cargo run --release -p woolly-core --example constrained_bench [MODEL] [THREADS] [REPS]`

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use woolly_core::chat::ChatMessage;
use woolly_core::generate::{Constraint, GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};

const N: usize = 128;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = woolly_core::model::resolve_model_path(args.get(1).map(std::path::Path::new))?;
    let threads: usize = args.get(2).map_or(Ok(2), |t| t.parse())?;
    let reps: usize = args.get(3).map_or(Ok(5), |t| t.parse())?;
    let model: Arc<Model> = Model::load(Some(&path), &ModelParams::default())?;
    // The token trie and parser factory are built on the first constrained request.
    let t = Instant::now();
    Constraint::JsonObject.check(model.tokenizer())?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    Constraint::JsonObject.check(model.tokenizer())?;
    let again_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut s = Session::new(
        model.clone(),
        &SessionParams {
            context_size: 1024,
            threads,
            ..Default::default()
        },
    )?;
    // Long enough output that N tokens are all inside the schema.
    let schema = json!({"type": "array", "minItems": 60, "maxItems": 60, "items": {
        "type": "object", "additionalProperties": false, "required": ["name", "age", "city"],
        "properties": {"name": {"type": "string", "maxLength": 16},
                       "age": {"type": "integer", "minimum": 0, "maximum": 120},
                       "city": {"type": "string", "maxLength": 16}}}});
    let messages = [ChatMessage::new(
        "user",
        "List sixty people with their name, age and city as JSON.",
    )];
    let params = |constraint: Option<Constraint>| GenerateParams {
        max_tokens: N,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        constraint,
        ..Default::default()
    };
    let (mut free, mut bound) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        for constrained in [false, true] {
            s.reset();
            let c = constrained.then(|| Constraint::JsonSchema(schema.clone()));
            let g = s.chat(&messages, &params(c), |_| true)?;
            assert_eq!(g.generated_ids.len(), N, "the generation ended early");
            (if constrained { &mut bound } else { &mut free }).push(g.timings.gen_tok_s);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, b) = (median(&mut free), median(&mut bound));
    println!(
        "{{\"threads\": {threads}, \"tokens\": {N}, \"reps\": {reps}, \"tg_unconstrained\": {f:.2}, \"tg_json_schema\": {b:.2}, \"ratio\": {:.3}, \"first_compile_ms\": {first_ms:.1}, \"compile_ms\": {again_ms:.2}}}",
        b / f
    );
    Ok(())
}
