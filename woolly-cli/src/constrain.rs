//! What `woolly run`'s output must match (`--json-schema`, `--grammar`, `--regex`, `--choice`,
//! `--json-object`: at most one), and the log probabilities `--logprobs` reports.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use woolly_core::generate::{Constraint, TokenLogprob, TopLogprob};
use woolly_core::tokenizer::Tokenizer;

/// The constraint options; clap refuses more than one of them.
#[derive(clap::Args, Debug, Clone, Default)]
#[group(id = "constraint", multiple = false)]
pub struct ConstraintArgs {
    /// The output is one JSON value valid against the JSON Schema in FILE (a keyword the
    /// decoder cannot enforce is an error before generation).
    #[arg(long = "json-schema", value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
    /// The output matches the grammar in FILE, in llama.cpp's GBNF syntax (from its `root`
    /// rule).
    #[arg(long, value_name = "FILE")]
    pub grammar: Option<PathBuf>,
    /// The whole output matches this regular expression (Rust `regex` syntax).
    #[arg(long, value_name = "RE")]
    pub regex: Option<String>,
    /// The output is exactly one of these strings (comma-separated, or the option repeated).
    #[arg(long = "choice", value_name = "A,B,...", value_delimiter = ',')]
    pub choice: Vec<String>,
    /// The output is one JSON object.
    #[arg(long = "json-object")]
    pub json_object: bool,
}

fn read(flag: &str, path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

impl ConstraintArgs {
    /// The constraint the options name (None without one), with the error for an unreadable
    /// file or a schema that is not JSON.
    pub fn constraint(&self) -> Result<Option<Constraint>, String> {
        if let Some(path) = &self.json_schema {
            let text = read("--json-schema", path)?;
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| format!("--json-schema {}: not valid JSON: {e}", path.display()))?;
            return Ok(Some(Constraint::JsonSchema(schema)));
        }
        if let Some(path) = &self.grammar {
            return Ok(Some(Constraint::Gbnf(read("--grammar", path)?)));
        }
        if let Some(rx) = &self.regex {
            return Ok(Some(Constraint::Regex(rx.clone())));
        }
        if !self.choice.is_empty() {
            return Ok(Some(Constraint::Choice(self.choice.clone())));
        }
        Ok(self.json_object.then_some(Constraint::JsonObject))
    }

    /// The option that gave `c`, for error messages (`--grammar FILE`, ...).
    fn source(&self) -> String {
        let path = |flag: &str, p: &Path| format!("{flag} {}", p.display());
        match (&self.json_schema, &self.grammar, &self.regex) {
            (Some(p), _, _) => path("--json-schema", p),
            (_, Some(p), _) => path("--grammar", p),
            (_, _, Some(_)) => "--regex".into(),
            _ if !self.choice.is_empty() => "--choice".into(),
            _ => "--json-object".into(),
        }
    }

    /// Compiles `c` for the model's tokenizer before any prompt is read: an unsupported schema
    /// or a malformed grammar is an error that names the option (and its file).
    pub fn check(&self, c: &Constraint, tok: &Tokenizer) -> Result<(), String> {
        c.check(tok).map_err(|e| format!("{}: {e}", self.source()))
    }
}

fn entry(t: &TopLogprob) -> Value {
    json!({ "id": t.id, "token": t.token, "bytes": t.bytes, "logprob": t.logprob })
}

/// One token's log probabilities as every front end spells them: `id`, `token`, `bytes`,
/// `logprob` and `top_logprobs` (the alternatives, best first, each with the same keys).
pub fn logprob_json(lp: &TokenLogprob) -> Value {
    let mut v = entry(&lp.chosen);
    v["top_logprobs"] = lp.top.iter().map(entry).collect();
    v
}

/// The log probabilities as lines for standard error (text mode): the token, its log
/// probability and the alternatives.
pub fn logprob_line(lp: &TokenLogprob) -> String {
    let alts: Vec<String> = lp
        .top
        .iter()
        .map(|t| format!("{:?} {:.3}", t.token, t.logprob))
        .collect();
    if alts.is_empty() {
        format!("[logprob {:?} {:.3}]", lp.chosen.token, lp.chosen.logprob)
    } else {
        format!(
            "[logprob {:?} {:.3}; top: {}]",
            lp.chosen.token,
            lp.chosen.logprob,
            alts.join(", ")
        )
    }
}
