//! Constrained decoding: output that must match a JSON Schema, a grammar, a regular expression
//! or one of a fixed set of strings, through llguidance (the library llama.cpp and mistral.rs
//! embed).
//!
//! A [`Constraint`] is compiled once per generation ([`Guide::new`], before the prompt is
//! read, so that an unsupported schema is an error before any work); the token trie it needs is
//! built from the vocabulary once per tokenizer. Each step's mask of allowed tokens is computed
//! on a thread of its own: after a token is chosen, the mask for the next step is computed while
//! the model's forward pass for that token runs, so the mask rarely costs the step anything.

mod gbnf;

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use serde::{Deserialize, Serialize};

use crate::tokenizer::{TokenId, Tokenizer};
use crate::{Error, Result};

pub use gbnf::gbnf_to_lark;

/// What a generation's output must match. Its JSON spelling (used by every front end) is one
/// key: `{"json_schema": {...}}`, `"json_object"`, `{"gbnf": "root ::= ..."}`,
/// `{"lark": "start: ..."}`, `{"regex": "[0-9]+"}` or `{"choice": ["yes", "no"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// A JSON Schema (as in OpenAI's strict `json_schema` response format): the output is one
    /// JSON value that validates against it. A keyword the decoder cannot enforce is an error
    /// before generation, never silently ignored.
    JsonSchema(serde_json::Value),
    /// Any JSON object (OpenAI's `json_object` response format).
    JsonObject,
    /// A grammar in llama.cpp's GBNF syntax, starting at its `root` rule.
    Gbnf(String),
    /// A grammar in llguidance's Lark syntax, starting at its `start` rule.
    Lark(String),
    /// A regular expression (Rust `regex` syntax) the whole output matches.
    Regex(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
}

impl Constraint {
    /// The grammar llguidance compiles.
    fn grammar(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            Constraint::JsonSchema(schema) => {
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(Error::InvalidArgument(
                        "a JSON schema must be an object (or true/false)".into(),
                    ));
                }
                TopLevelGrammar::from_json_schema(bounded_whitespace(schema.clone()))
            }
            Constraint::JsonObject => TopLevelGrammar::from_json_schema(bounded_whitespace(
                serde_json::json!({"type": "object"}),
            )),
            Constraint::Gbnf(text) => TopLevelGrammar::from_lark(gbnf_to_lark(text)?),
            Constraint::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
            Constraint::Regex(rx) => {
                // Checked here, for an error that names the expression.
                llguidance::derivre::RegexBuilder::new()
                    .mk_regex(rx)
                    .map_err(|e| {
                        Error::InvalidArgument(format!("regular expression {rx:?}: {e}"))
                    })?;
                TopLevelGrammar::from_regex(rx)
            }
            Constraint::Choice(choices) => {
                if choices.is_empty() || choices.iter().any(String::is_empty) {
                    return Err(Error::InvalidArgument(
                        "a choice needs at least one option, none of them empty".into(),
                    ));
                }
                let alts: Vec<String> = choices
                    .iter()
                    .map(|c| serde_json::to_string(c).expect("a string serializes"))
                    .collect();
                TopLevelGrammar::from_lark(format!("start: {}", alts.join(" | ")))
            }
        })
    }

    /// Compiles the constraint for `tok` without generating: the error an unsupported schema,
    /// a malformed grammar or regular expression gets.
    pub fn check(&self, tok: &Tokenizer) -> Result<()> {
        compile(self, tok).map(drop)
    }

    /// Whether `text` is a complete output this constraint allows (to check an output, or a
    /// grammar, without generating). Errors as [`check`](Self::check).
    pub fn accepts(&self, tok: &Tokenizer, text: &str) -> Result<bool> {
        let (mut matcher, _) = compile(self, tok)?;
        let ids = tok.encode(text, false, false)?;
        if matcher.consume_tokens(&ids).is_err() {
            return Ok(false);
        }
        Ok(matcher.is_accepting().unwrap_or(false))
    }
}

/// Whitespace between JSON tokens as llama.cpp's JSON grammars allow it: nothing, a space, or a
/// newline and an indent of at most 20, once per gap. (Unbounded whitespace lets a small model
/// emit blank lines until `max_tokens` runs out, with output that never completes.) A schema's
/// own `x-guidance` options are kept.
pub fn bounded_whitespace(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("x-guidance")
            .or_insert_with(|| serde_json::json!({"whitespace_pattern": "(?: |\\n[ \\t]{0,20})"}));
    }
    schema
}

/// The token trie and parser factory of one tokenizer.
struct Env {
    factory: ParserFactory,
    /// Tokens whose text starts with an ASCII digit.
    digit_tokens: Vec<TokenId>,
}

/// The most digits in a row a JSON number may have outside a string, as llama.cpp's JSON
/// grammars bound them (`[1-9][0-9]{0,15}`, a fraction of `[0-9]{1,16}`): llguidance's number
/// lexeme is unbounded, and a small model otherwise writes `0.5000000…` until `max_tokens`.
const MAX_JSON_DIGITS: usize = 16;

/// Where JSON output stands, enough to know whether it is inside a string and how many
/// digits in a row it has just written.
#[derive(Default)]
struct JsonScan {
    in_string: bool,
    escaped: bool,
    digits: usize,
}

impl JsonScan {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.digits = 0;
                }
                b'0'..=b'9' => self.digits += 1,
                _ => self.digits = 0,
            }
        }
    }
}

/// The vocabulary as llguidance sees it: every token's bytes (control and unknown tokens behind
/// the 0xFF marker, so that no text can spell them), end-of-generation tokens as its EOS set.
/// Text it asks to tokenize (rarely: the mask never depends on it) goes greedily through the
/// trie, which gives a valid tokenization for every vocabulary without a leading-space rule.
struct WoollyTokEnv {
    trie: TokTrie,
}

impl TokenizerEnv for WoollyTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.greedy_tokenize(s)
    }
}

fn env(tok: &Tokenizer) -> Result<Arc<Env>> {
    tok.derived(|tok| {
        let n = tok.vocab_size();
        let mut words = Vec::with_capacity(n);
        for id in 0..n as TokenId {
            let bytes = tok.token_bytes(id).unwrap_or_default();
            if tok.is_control(id) {
                let mut w = Vec::with_capacity(bytes.len() + 1);
                w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                w.extend_from_slice(bytes);
                words.push(w);
            } else {
                words.push(bytes.to_vec());
            }
        }
        let eog = tok.eog_tokens();
        let eos = eog.first().copied().or(tok.eos()).unwrap_or(0);
        let mut info = TokRxInfo::new(n as u32, eos);
        info.tok_bos = tok.bos();
        info.tok_end_of_turn = tok.eot();
        let eos_set = if eog.is_empty() {
            vec![eos]
        } else {
            eog.to_vec()
        };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos_set);
        let env: TokEnv = Arc::new(WoollyTokEnv { trie });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| Error::Internal(format!("constrained decoding: {e}")))?;
        factory.quiet();
        let digit_tokens = (0..n as TokenId)
            .filter(|&id| {
                !tok.is_control(id) && words[id as usize].first().is_some_and(u8::is_ascii_digit)
            })
            .collect();
        Ok(Env {
            factory,
            digit_tokens,
        })
    })
}

fn compile(constraint: &Constraint, tok: &Tokenizer) -> Result<(Matcher, Arc<Env>)> {
    let grammar = constraint.grammar()?;
    let env = env(tok)?;
    let parser = env.factory.create_parser(grammar).map_err(|e| {
        let what = match constraint {
            Constraint::JsonSchema(_) | Constraint::JsonObject => "JSON schema",
            Constraint::Gbnf(_) | Constraint::Lark(_) => "grammar",
            Constraint::Regex(_) => "regular expression",
            Constraint::Choice(_) => "choice",
        };
        Error::InvalidArgument(format!("unsupported {what}: {e}"))
    })?;
    let matcher = Matcher::new(Ok(parser));
    if let Some(e) = matcher.get_error() {
        return Err(Error::InvalidArgument(format!("constraint: {e}")));
    }
    Ok((matcher, env))
}

/// What the mask thread answers for each step.
enum Step {
    /// The tokens allowed next (end-of-generation among them once the output may end).
    Mask(SimpleVob),
    /// The output is complete: nothing more may follow.
    Complete,
}

/// One generation's constraint: the matcher on its own thread, a step ahead of the sampler.
pub(crate) struct Guide {
    env: Arc<Env>,
    /// For JSON output: where it stands (for the bound on a number's digits).
    json: Option<JsonScan>,
    commits: Option<mpsc::Sender<TokenId>>,
    steps: mpsc::Receiver<std::result::Result<Step, String>>,
    thread: Option<JoinHandle<()>>,
}

impl Guide {
    /// Compiles `constraint` for `tok` and starts computing the first mask.
    pub(crate) fn new(constraint: &Constraint, tok: &Tokenizer) -> Result<Guide> {
        let (mut matcher, env) = compile(constraint, tok)?;
        let json = matches!(
            constraint,
            Constraint::JsonSchema(_) | Constraint::JsonObject
        )
        .then(JsonScan::default);
        let (commit_tx, commit_rx) = mpsc::channel::<TokenId>();
        let (step_tx, step_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("woolly-constraint".into())
            .spawn(move || loop {
                let step = if matcher.is_stopped() {
                    Ok(Step::Complete)
                } else {
                    matcher
                        .compute_mask()
                        .map(Step::Mask)
                        .map_err(|e| e.to_string())
                };
                let failed = step.is_err();
                if step_tx.send(step).is_err() || failed {
                    return;
                }
                let Ok(id) = commit_rx.recv() else { return };
                if let Err(e) = matcher.consume_token(id) {
                    let _ = step_tx.send(Err(e.to_string()));
                    return;
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the constraint's thread: {e}")))?;
        Ok(Guide {
            env,
            json,
            commits: Some(commit_tx),
            steps: step_rx,
            thread: Some(thread),
        })
    }

    /// Waits for this step's mask and sets the logits of every token it forbids to minus
    /// infinity. Returns false when the output is complete (nothing may follow).
    pub(crate) fn apply(&mut self, logits: &mut [f32]) -> Result<bool> {
        let step = self
            .steps
            .recv()
            .map_err(|_| Error::Internal("the constraint's thread ended early".into()))?
            .map_err(|e| Error::Internal(format!("constrained decoding: {e}")))?;
        let mask = match step {
            Step::Complete => return Ok(false),
            Step::Mask(m) => m,
        };
        if mask.is_zero() {
            return Err(Error::Internal(
                "constrained decoding: no token can continue the output".into(),
            ));
        }
        let mut mask = mask;
        if self
            .json
            .as_ref()
            .is_some_and(|j| !j.in_string && j.digits >= MAX_JSON_DIGITS)
        {
            // Enough digits: end the number, where the grammar allows anything else.
            let digits = self
                .env
                .digit_tokens
                .iter()
                .filter(|&&t| mask.is_allowed(t))
                .count();
            if digits < mask.num_set() {
                for &t in &self.env.digit_tokens {
                    mask.disallow_token(t);
                }
            }
        }
        let words = mask.as_slice();
        for (w, chunk) in words.iter().zip(logits.chunks_mut(32)) {
            match *w {
                u32::MAX => {}
                0 => chunk.fill(f32::NEG_INFINITY),
                bits => {
                    for (b, l) in chunk.iter_mut().enumerate() {
                        if bits & (1 << b) == 0 {
                            *l = f32::NEG_INFINITY;
                        }
                    }
                }
            }
        }
        // Tokens past the mask's size (a vocabulary padded in the output layer) never appear.
        if logits.len() > words.len() * 32 {
            logits[words.len() * 32..].fill(f32::NEG_INFINITY);
        }
        Ok(true)
    }

    /// Tells the matcher the token chosen; the next mask is computed meanwhile.
    pub(crate) fn commit(&mut self, id: TokenId) {
        if let Some(scan) = &mut self.json {
            scan.push(self.env.factory.tok_env().tok_trie().token(id));
        }
        if let Some(tx) = &self.commits {
            // A send fails only when the thread ended after an error, which `apply` reports.
            let _ = tx.send(id);
        }
    }
}

impl Drop for Guide {
    fn drop(&mut self) {
        self.commits = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
