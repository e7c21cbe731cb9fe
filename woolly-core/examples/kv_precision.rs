//! The KV cache's precision, measured on the default model against llama.cpp's references:
//! bytes per token, the largest first-step logit error over the reference's top 5, and how many
//! greedy tokens agree before the first near-tie (margin under 0.1, as the reference test) and in all.
//!
//! `cargo run --release -p woolly-core --example kv_precision [REFERENCE_DIR]`

use std::path::PathBuf;

use woolly_core::generate::{GenerateParams, KvPrecision, SamplingParams, Session, SessionParams};
use woolly_core::model::{kv_bytes, Model, ModelParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(woolly_core::testing::reference_dir);
    let model = Model::load(None, &ModelParams::default())?;
    let mut cases: Vec<_> = std::fs::read_dir(dir.join("gemma3-270m/greedy"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    cases.sort();
    println!("| KV | bytes/token | max top-5 logit error | tokens equal before the first near-tie | tokens equal in all |");
    println!("|---|---|---|---|---|");
    for precision in [KvPrecision::F16, KvPrecision::F32] {
        let (mut worst, mut before_tie, mut tie_total, mut equal, mut total) = (0f64, 0, 0, 0, 0);
        for case in &cases {
            let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(case)?)?;
            let ids = |k: &str| -> Vec<u32> {
                r[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            };
            let (prompt, want) = (ids("prompt_ids"), ids("generated_ids"));
            let sp = SessionParams {
                threads: 2,
                kv_precision: precision,
                ..Default::default()
            };
            let logits = Session::new(model.clone(), &sp)?.logits_for(&prompt)?;
            for t in r["first_step_top5"].as_array().unwrap() {
                let id = t["id"].as_u64().unwrap() as usize;
                worst = worst.max((logits[id] as f64 - t["logit"].as_f64().unwrap()).abs());
            }
            let g = Session::new(model.clone(), &sp)?.generate_from_tokens(
                &prompt,
                &GenerateParams {
                    max_tokens: want.len(),
                    sampling: SamplingParams::greedy(),
                    ..Default::default()
                },
                |_| true,
            )?;
            let margins: Vec<f64> = r["top2_margins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_f64().unwrap())
                .collect();
            let tie = margins.iter().position(|&m| m < 0.1).unwrap_or(want.len());
            let same = g
                .generated_ids
                .iter()
                .zip(&want)
                .take_while(|(a, b)| a == b)
                .count();
            before_tie += same.min(tie);
            tie_total += tie;
            equal += same;
            total += want.len();
        }
        let per_token = kv_bytes(model.hparams(), 256, precision) / 256;
        println!(
            "| {} | {per_token} | {worst:.4} | {before_tie}/{tie_total} | {equal}/{total} |",
            precision.name()
        );
    }
    Ok(())
}
