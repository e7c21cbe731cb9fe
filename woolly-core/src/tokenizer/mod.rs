//! Tokenizers built from a GGUF file's metadata alone, matching llama.cpp token for token.
//!
//! Two families are supported:
//! - SentencePiece-style vocabularies (`tokenizer.ggml.model = "llama"`: Llama 2, Gemma 3), merged
//!   bigram by bigram by token score, with byte fallback `<0xNN>`;
//! - byte-level BPE (`tokenizer.ggml.model = "gpt2"`: Llama 3, Qwen 2, ...), merged by rank after the
//!   pre-tokenizer named by `tokenizer.ggml.pre` has split the text into words.
//!
//! Before either runs, the text is cut on special tokens as llama.cpp does: user-defined tokens
//! always, control tokens only when special tokens are parsed. Everything follows llama.cpp's
//! `llama-vocab.cpp` and `unicode.cpp`, including their defaults when metadata is absent.
//!
//! Decoding is the concatenation of the tokens' pieces (what llama.cpp's `llama_token_to_piece`
//! returns), so [`Tokenizer::decode`] and a [`StreamDecoder`] always agree. Unlike
//! `llama_detokenize` it removes nothing: no leading space of a SentencePiece text, no
//! `clean_up_tokenization_spaces` rewriting (" ," → ","), which suits generated continuations.

mod bpe;
mod hash;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod unicode;
mod unicode_data;
mod vocab;

use std::borrow::Cow;
use std::fmt;

pub use stream::StreamDecoder;

use crate::gguf::{Array, GgufError, GgufFile};
use crate::{Error, Result};
use bpe::{BpeModel, BpeScratch};
use hash::FastMap;
use pretokenize::{Pass, Splitter};
use special::{Fragment, SpecialMatcher, SpecialToken};
use spm::SpmScratch;
use vocab::{attr, attr_from_type, Encoding, Vocab};

/// A token id: an index into the vocabulary.
pub type TokenId = u32;

/// Which algorithm a tokenizer runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenizerKind {
    /// SentencePiece-style (`tokenizer.ggml.model = "llama"`).
    Spm,
    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
    Bpe {
        /// The pre-tokenizer (`tokenizer.ggml.pre`; `"default"` when the file names none).
        pre: String,
    },
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerKind::Spm => write!(f, "SPM"),
            TokenizerKind::Bpe { pre } => write!(f, "BPE ({pre})"),
        }
    }
}

const K_MODEL: &str = "tokenizer.ggml.model";
const K_PRE: &str = "tokenizer.ggml.pre";
const K_TOKENS: &str = "tokenizer.ggml.tokens";
const K_SCORES: &str = "tokenizer.ggml.scores";
const K_TYPES: &str = "tokenizer.ggml.token_type";
const K_MERGES: &str = "tokenizer.ggml.merges";
const K_ADD_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
const K_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const K_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const K_BOS: &str = "tokenizer.ggml.bos_token_id";
const K_EOS: &str = "tokenizer.ggml.eos_token_id";
const K_EOT: &str = "tokenizer.ggml.eot_token_id";
const K_EOM: &str = "tokenizer.ggml.eom_token_id";
const K_FIM_PRE: [&str; 2] = [
    "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.prefix_token_id",
];
const K_FIM_SUF: [&str; 2] = [
    "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.suffix_token_id",
];
const K_FIM_MID: [&str; 2] = [
    "tokenizer.ggml.fim_mid_token_id",
    "tokenizer.ggml.middle_token_id",
];
const K_FIM_PAD: [&str; 1] = ["tokenizer.ggml.fim_pad_token_id"];
const K_FIM_REP: [&str; 1] = ["tokenizer.ggml.fim_rep_token_id"];
const K_FIM_SEP: [&str; 1] = ["tokenizer.ggml.fim_sep_token_id"];

/// Texts llama.cpp takes for the end-of-turn token when the file names none.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts of tokens llama.cpp treats as end of generation.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The pre-tokenizer passes for each `tokenizer.ggml.pre` llama.cpp runs with these expressions.
const PASSES_DEFAULT: &[Pass] = &[
    Pass::PunctRun("$+<=>^~|"),
    Pass::Gpt2,
    Pass::NumberRun,
    Pass::Digits3,
];
const PASSES_LLAMA3: &[Pass] = &[Pass::Llama3 { max_digits: 3 }];
const PASSES_QWEN2: &[Pass] = &[Pass::Llama3 { max_digits: 1 }];
const PASSES_GPT2: &[Pass] = &[Pass::Gpt2];
const PASSES_STARCODER: &[Pass] = &[Pass::SingleNumber, Pass::Gpt2];
const PASSES_FALCON: &[Pass] = &[Pass::PunctRun("$+<=>^~|`"), Pass::Gpt2, Pass::Digits3];

/// Pre-tokenizer settings for a BPE vocabulary.
struct BpePre {
    passes: &'static [Pass],
    ignore_merges: bool,
    add_bos: bool,
    no_bos: bool,
}

fn bpe_pre(name: &str) -> Option<BpePre> {
    let p = |passes, ignore_merges, add_bos, no_bos| BpePre {
        passes,
        ignore_merges,
        add_bos,
        no_bos,
    };
    Some(match name {
        "" | "default" => p(PASSES_DEFAULT, false, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => p(PASSES_LLAMA3, true, true, false),
        "dbrx" | "smaug-bpe" => p(PASSES_LLAMA3, false, false, false),
        "chatglm-bpe" => p(PASSES_LLAMA3, false, false, true),
        "glm4" | "glm5" => p(PASSES_LLAMA3, true, false, true),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" => p(PASSES_QWEN2, false, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "trillion"
        | "granite-docling" | "exaone4" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => {
            p(PASSES_GPT2, false, false, false)
        }
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => p(PASSES_STARCODER, false, false, false),
        "falcon" => p(PASSES_FALCON, false, false, false),
        _ => return None,
    })
}

enum Model {
    Spm,
    Bpe {
        bpe: Box<BpeModel>,
        passes: &'static [Pass],
    },
}

/// A tokenizer: text to token ids and back. Immutable once built, so `Send + Sync` and shareable
/// behind an `Arc` by any number of threads.
pub struct Tokenizer {
    kind: TokenizerKind,
    vocab: Vocab,
    model: Model,
    special: SpecialMatcher,
    bos: Option<TokenId>,
    eos: Option<TokenId>,
    eot: Option<TokenId>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// End-of-generation tokens, sorted.
    eog: Vec<TokenId>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.vocab.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish()
    }
}

fn invalid(file: &GgufFile, key: &str, reason: String) -> Error {
    file.error(GgufError::InvalidValue {
        key: key.to_string(),
        reason,
    })
}

fn numbers<T>(
    file: &GgufFile,
    key: &str,
    n_tokens: usize,
    conv: impl Fn(&Array) -> Option<Vec<T>>,
) -> Result<Option<Vec<T>>> {
    let Some(arr) = file.get_array(key)? else {
        return Ok(None);
    };
    let v = conv(arr).ok_or_else(|| {
        file.error(GgufError::WrongType {
            key: key.to_string(),
            expected: "an array of numbers",
            found: format!("an array of {}", arr.element_type().name()),
        })
    })?;
    if v.len() < n_tokens {
        return Err(invalid(
            file,
            key,
            format!(
                "it has {} entries but the vocabulary has {n_tokens} tokens",
                v.len()
            ),
        ));
    }
    Ok(Some(v))
}

/// A special token id from the file: an id beyond the vocabulary is an error.
fn special_id(file: &GgufFile, key: &str, n_tokens: usize) -> Result<Option<TokenId>> {
    match file.get_u32(key)? {
        None => Ok(None),
        Some(id) if (id as usize) < n_tokens => Ok(Some(id)),
        Some(id) => Err(Error::Tokenizer(format!(
            "{}: {key} = {id} is outside the vocabulary of {n_tokens} tokens",
            file.path().display()
        ))),
    }
}

/// An optional special token id (FIM): out-of-range values are ignored, as llama.cpp does.
fn optional_id(file: &GgufFile, keys: &[&str], n_tokens: usize) -> Result<Option<TokenId>> {
    let mut id = None;
    for key in keys {
        if let Some(v) = file.get_u32(key)? {
            if (v as usize) < n_tokens {
                id = Some(v);
            }
        }
    }
    Ok(id)
}

impl Tokenizer {
    /// Builds the tokenizer described by `file`'s `tokenizer.ggml.*` metadata.
    ///
    /// Missing or ill-typed metadata gives [`Error::Gguf`] (kind `InvalidModel`); a vocabulary
    /// that cannot work (duplicate tokens, a special token id outside it, an unknown tokenizer
    /// model) gives [`Error::Tokenizer`]; a tokenizer kind llama.cpp knows but Woolly does not
    /// implement gives [`Error::Unsupported`].
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let model_name = file.require(K_MODEL, file.get_str(K_MODEL))?;
        let pre_name = file.get_str(K_PRE)?.unwrap_or("");

        // Per-kind defaults, as llama.cpp's `llama_vocab::impl::load`.
        let (kind, pre, mut bos, mut eos, mut add_bos, add_eos, mut add_space_prefix) =
            match model_name {
                "llama" => (TokenizerKind::Spm, None, Some(1), Some(2), true, false, true),
                "gpt2" => {
                    let pre = bpe_pre(pre_name).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "{}: the BPE pre-tokenizer `{pre_name}` ({K_PRE}) is not supported",
                            file.path().display()
                        ))
                    })?;
                    let name = if pre_name.is_empty() { "default" } else { pre_name };
                    let bos = if pre.no_bos { None } else { Some(11) };
                    let add_bos = pre.add_bos;
                    (
                        TokenizerKind::Bpe {
                            pre: name.to_string(),
                        },
                        Some(pre),
                        bos,
                        Some(11),
                        add_bos,
                        false,
                        false,
                    )
                }
                "bert" | "t5" | "rwkv" | "plamo2" | "gemma4" | "no_vocab" | "none" | "hybriddna"
                | "whitespace" => {
                    return Err(Error::Unsupported(format!(
                        "{}: tokenizer model `{model_name}` ({K_MODEL}) is not supported; Woolly reads \"llama\" (SentencePiece) and \"gpt2\" (byte-level BPE) vocabularies",
                        file.path().display()
                    )))
                }
                other => {
                    return Err(Error::Tokenizer(format!(
                        "{}: unknown tokenizer model `{other}` ({K_MODEL}); expected \"llama\" or \"gpt2\"",
                        file.path().display()
                    )))
                }
            };
        if let Some(v) = file.get_bool(K_ADD_PREFIX)? {
            add_space_prefix = v;
        }

        let tokens = file.require(K_TOKENS, file.get_str_array(K_TOKENS))?;
        let n = tokens.len();
        if n == 0 {
            return Err(Error::Tokenizer(format!(
                "{}: the vocabulary ({K_TOKENS}) is empty",
                file.path().display()
            )));
        }
        let total: usize = tokens.iter().map(|t| t.len().max(16)).sum();
        if n >= u32::MAX as usize / 2 || total >= u32::MAX as usize / 2 {
            return Err(Error::Tokenizer(format!(
                "{}: the vocabulary ({K_TOKENS}) is too large",
                file.path().display()
            )));
        }
        let mut scores =
            numbers(file, K_SCORES, n, Array::to_f32_vec)?.unwrap_or_else(|| vec![0.0; n]);
        scores.truncate(n);
        for s in &mut scores {
            if s.is_nan() {
                *s = f32::NEG_INFINITY;
            }
        }
        let attrs: Vec<u8> = match numbers(file, K_TYPES, n, Array::to_i64_vec)? {
            Some(t) => t[..n].iter().map(|&t| attr_from_type(t)).collect(),
            None => vec![attr::NORMAL; n],
        };
        let texts: Vec<Cow<str>> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.is_empty() {
                    Cow::Owned(format!("[EMPTY_{i}]"))
                } else {
                    Cow::Borrowed(t.as_str())
                }
            })
            .collect();
        let encoding = if pre.is_some() {
            Encoding::ByteLevel
        } else {
            Encoding::Text
        };
        let text_refs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
        let mut vocab = Vocab::new(encoding, &text_refs, scores, attrs).map_err(|(a, b)| {
            Error::Tokenizer(format!(
                "{}: duplicate token in the vocabulary: {:?} has ids {a} and {b}",
                file.path().display(),
                text_refs[b as usize]
            ))
        })?;

        let model = match pre {
            None => Model::Spm,
            Some(pre) => {
                let merges = file.require(K_MERGES, file.get_str_array(K_MERGES))?;
                Model::Bpe {
                    bpe: Box::new(load_merges(file, &vocab, merges, pre.ignore_merges)?),
                    passes: pre.passes,
                }
            }
        };

        // Special token ids: defaults outside the vocabulary are dropped, ids from the file must be
        // inside it.
        bos = bos.filter(|&id| (id as usize) < n);
        eos = eos.filter(|&id| (id as usize) < n);
        if let Some(id) = special_id(file, K_BOS, n)? {
            bos = Some(id);
        }
        if let Some(id) = special_id(file, K_EOS, n)? {
            eos = Some(id);
        }
        let mut eot = special_id(file, K_EOT, n)?;
        let mut eom = special_id(file, K_EOM, n)?;
        let mut fim_pre = optional_id(file, &K_FIM_PRE, n)?;
        let mut fim_suf = optional_id(file, &K_FIM_SUF, n)?;
        let mut fim_mid = optional_id(file, &K_FIM_MID, n)?;
        let mut fim_pad = optional_id(file, &K_FIM_PAD, n)?;
        let mut fim_rep = optional_id(file, &K_FIM_REP, n)?;
        let mut fim_sep = optional_id(file, &K_FIM_SEP, n)?;

        if let Some(v) = file.get_bool(K_ADD_BOS)? {
            add_bos = v;
        }
        let add_eos = file.get_bool(K_ADD_EOS)?.unwrap_or(add_eos);
        if add_bos && bos.is_none() {
            return Err(Error::Tokenizer(format!(
                "{}: {K_ADD_BOS} is true, but {K_BOS} is not set",
                file.path().display()
            )));
        }
        if add_eos && eos.is_none() {
            return Err(Error::Tokenizer(format!(
                "{}: {K_ADD_EOS} is true, but {K_EOS} is not set",
                file.path().display()
            )));
        }

        // llama.cpp finds some special tokens by their text, and marks them as control tokens.
        let mut attrs = std::mem::take(&mut vocab.attrs);
        let find = |slot: &mut Option<TokenId>, texts: &[&str], attrs: &mut [u8]| {
            if slot.is_some() {
                return;
            }
            if let Some(id) = texts.iter().find_map(|t| vocab.token_id(t)) {
                *slot = Some(id);
                attrs[id as usize] |= attr::CONTROL;
            }
        };
        find(&mut eot, EOT_TEXTS, &mut attrs);
        find(&mut eom, EOM_TEXTS, &mut attrs);
        find(&mut fim_pre, FIM_PRE_TEXTS, &mut attrs);
        find(&mut fim_suf, FIM_SUF_TEXTS, &mut attrs);
        find(&mut fim_mid, FIM_MID_TEXTS, &mut attrs);
        find(&mut fim_pad, FIM_PAD_TEXTS, &mut attrs);
        find(&mut fim_rep, FIM_REP_TEXTS, &mut attrs);
        find(&mut fim_sep, FIM_SEP_TEXTS, &mut attrs);

        let mut eog: Vec<TokenId> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        for t in EOG_TEXTS {
            if let Some(id) = vocab.token_id(t) {
                eog.push(id);
                attrs[id as usize] |= attr::CONTROL;
            }
        }
        // gpt-oss: these are always rendered.
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = vocab.token_id(t) {
                attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        let eog_has = |eog: &[TokenId], text: &str| {
            vocab
                .token_id(text)
                .filter(|id| eog.binary_search(id).is_ok())
        };
        // o200k_harmony / solar-open: `<|end|>` is not the end of generation there.
        if let Some(end) = eog_has(&eog, "<|end|>") {
            let ret = eog_has(&eog, "<|return|>").is_some();
            let call = eog_has(&eog, "<|call|>").is_some() || eog_has(&eog, "<|calls|>").is_some();
            let flush = eog_has(&eog, "<|flush|>").is_some();
            if call && (ret || flush) {
                eog.retain(|&id| id != end);
                attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        // gemma4 / paddleocr: `</s>` is an ordinary token when `<|tool_response>` exists.
        if eog_has(&eog, "<|tool_response>").is_some() {
            if let Some(s) = eog_has(&eog, "</s>") {
                eog.retain(|&id| id != s);
                attrs[s as usize] = attr::NORMAL;
            }
        }

        vocab.attrs = attrs;
        vocab.build_pieces();

        // Per-model whitespace stripping around special tokens, as llama.cpp sets it by name.
        let (lstrip, rstrip) = strip_rules(file, &vocab)?;
        let specials: Vec<SpecialToken> = (0..n as TokenId)
            .filter_map(|id| {
                let a = vocab.attrs[id as usize];
                (a & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0).then(|| {
                    SpecialToken {
                        id,
                        text: vocab.text(id),
                        needs_parse_special: a & (attr::CONTROL | attr::UNKNOWN) != 0,
                        lstrip: lstrip.contains(&id),
                        rstrip: match &rstrip {
                            StripRule::None => false,
                            StripRule::AllBut(except) => !except.contains(&id),
                        },
                    }
                })
            })
            .collect();
        let special = SpecialMatcher::new(&specials);

        Ok(Tokenizer {
            kind,
            vocab,
            model,
            special,
            bos,
            eos,
            eot,
            add_bos,
            add_eos,
            add_space_prefix,
            eog,
        })
    }

    /// Tokenizes `text`.
    ///
    /// `add_special` adds BOS (and EOS) where the model's flags say (`tokenizer.ggml.add_bos_token`,
    /// `add_eos_token`, with llama.cpp's defaults per tokenizer kind when absent). `parse_special`
    /// turns the text of control tokens, e.g. `<start_of_turn>` or `<|im_start|>`, into those
    /// tokens; without it they are tokenized as plain text. User-defined tokens are always matched.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        self.encode_guarded(text, add_special, parse_special, &[], &|| false)
    }

    /// [`encode`](Self::encode) that stops with [`Error::Cancelled`] once `cancelled` returns
    /// true (it is asked between the pieces of the text, so a long text stops promptly).
    pub fn encode_cancellable(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<TokenId>> {
        self.encode_guarded(text, add_special, parse_special, &[], cancelled)
    }

    /// A character that occurs in no special token's text and in none of `texts`, to mark
    /// positions with [`mark_special`](Self::mark_special): one of Unicode's noncharacters
    /// (U+FDD0..U+FDEF, U+FFFE, U+FFFF, …), which no real text uses. `None` only if every one
    /// of them occurs somewhere.
    pub fn special_mark<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Option<char> {
        let candidates = (0xFDD0u32..=0xFDEF)
            .chain((0..=16u32).flat_map(|p| [p * 0x10000 + 0xFFFE, p * 0x10000 + 0xFFFF]))
            .filter_map(char::from_u32);
        let mut used = std::collections::HashSet::new();
        for t in texts {
            used.extend(t.chars().filter(|&c| special::is_nonchar(c)));
        }
        let mut candidates = candidates;
        candidates.find(|&c| !used.contains(&c) && !self.special.uses_char(c))
    }

    /// `text` with `mark` before every place where a control token's text begins, so
    /// that [`encode_marked`](Self::encode_marked) tokenizes it as `parse_special = false`
    /// would, even inside a larger text whose other parts are parsed for special tokens.
    /// `mark` comes from [`special_mark`](Self::special_mark).
    pub fn mark_special(&self, text: &str, mark: char) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        for (i, c) in text.char_indices() {
            if self.special.control_at(text.as_bytes(), i) {
                out.push(mark);
            }
            out.push(c);
        }
        out
    }

    /// Tokenizes `text` parsing special tokens, except that no control token begins where
    /// [`mark_special`](Self::mark_special) put `mark`; every `mark` is removed first.
    pub fn encode_marked(
        &self,
        text: &str,
        add_special: bool,
        mark: char,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<TokenId>> {
        let mut clean = String::with_capacity(text.len());
        let mut guards = Vec::new();
        for c in text.chars() {
            if c == mark {
                if guards.last() != Some(&clean.len()) {
                    guards.push(clean.len());
                }
            } else {
                clean.push(c);
            }
        }
        self.encode_guarded(&clean, add_special, true, &guards, cancelled)
    }

    fn encode_guarded(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        guards: &[usize],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<TokenId>> {
        if text.len() >= (u32::MAX / 2) as usize {
            return Err(Error::InvalidArgument(format!(
                "text of {} bytes is too long to tokenize",
                text.len()
            )));
        }
        let mut frags = Vec::new();
        if cancelled() {
            return Err(Error::Cancelled);
        }
        self.special
            .partition_guarded(text, parse_special, guards, &mut frags);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.model {
            Model::Spm => {
                let mut scratch = SpmScratch::default();
                let mut buf = String::new();
                // llama.cpp prefixes a space to the first piece and to each piece after a special token.
                let mut prev_special = true;
                for frag in frags {
                    match frag {
                        Fragment::Text(a, b) => {
                            if cancelled() {
                                return Err(Error::Cancelled);
                            }
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in text[a..b].chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm::encode(
                                &self.vocab,
                                &buf,
                                self.vocab.glue(),
                                &mut scratch,
                                &mut out,
                                cancelled,
                            )?;
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe { bpe, passes } => {
                let mut scratch = BpeScratch::default();
                let mut splitter = Splitter::default();
                let mut words = Vec::new();
                for frag in frags {
                    match frag {
                        Fragment::Text(a, b) => {
                            for piece in Chunks::new(&text[a..b]) {
                                if cancelled() {
                                    return Err(Error::Cancelled);
                                }
                                words.clear();
                                splitter.split(piece, passes, &mut words);
                                for &(s, e) in &words {
                                    bpe.encode_word(
                                        &self.vocab,
                                        &piece.as_bytes()[s..e],
                                        &mut scratch,
                                        &mut out,
                                    );
                                }
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    /// Turns token ids back into text: the concatenation of their pieces (see [`piece`](Self::piece)).
    /// Bytes that do not form valid UTF-8 (e.g. an incomplete character from byte tokens) become
    /// U+FFFD. Control tokens are rendered only with `render_special`; an out-of-range id is an error.
    pub fn decode(&self, ids: &[TokenId], render_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            bytes.extend_from_slice(self.piece_bytes(id, render_special)?);
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The bytes token `id` decodes to (llama.cpp's `llama_token_to_piece` without stripping):
    /// spaces unescaped, byte tokens as their byte, user-defined tokens as their text, control and
    /// unknown tokens as their text only with `render_special` (else nothing). The bytes need not
    /// be valid UTF-8 on their own. [`token_bytes`](Self::token_bytes) borrows instead of copying.
    pub fn piece(&self, id: TokenId, render_special: bool) -> Result<Vec<u8>> {
        Ok(self.piece_bytes(id, render_special)?.to_vec())
    }

    /// [`piece`](Self::piece), borrowed.
    pub(crate) fn piece_bytes(&self, id: TokenId, render_special: bool) -> Result<&[u8]> {
        self.check(id)?;
        if !render_special && self.vocab.attrs[id as usize] & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return Ok(&[]);
        }
        Ok(self.vocab.piece(id))
    }

    /// The bytes token `id` decodes to with special tokens rendered; `None` for an out-of-range id.
    pub fn token_bytes(&self, id: TokenId) -> Option<&[u8]> {
        self.piece_bytes(id, true).ok()
    }

    /// Whether encoding puts a space before the text (SentencePiece's `add_space_prefix`), which
    /// decoding then keeps.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// The token's text as written in the vocabulary (e.g. `"▁the"`, `"Ġthe"`, `"<0x0A>"`).
    pub fn token_text(&self, id: TokenId) -> Option<&str> {
        ((id as usize) < self.vocab.len()).then(|| self.vocab.text(id))
    }

    /// The token whose vocabulary text is exactly `text`, e.g. `"<start_of_turn>"`.
    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        self.vocab.token_id(text)
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The beginning-of-sequence token, if the model has one.
    pub fn bos(&self) -> Option<TokenId> {
        self.bos
    }

    /// The end-of-sequence token, if the model has one.
    pub fn eos(&self) -> Option<TokenId> {
        self.eos
    }

    /// The end-of-turn token (`tokenizer.ggml.eot_token_id`, or found by its text such as
    /// `<end_of_turn>` or `<|eot_id|>`), if any.
    pub fn eot(&self) -> Option<TokenId> {
        self.eot
    }

    /// Whether [`encode`](Self::encode) with `add_special` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether [`encode`](Self::encode) with `add_special` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether `id` ends generation: EOS, EOT, EOM, and the tokens llama.cpp recognises by their
    /// text (`<end_of_turn>`, `<|eot_id|>`, `<|im_end|>`, `<|endoftext|>`, `<|end|>`, ...).
    pub fn is_eog(&self, id: TokenId) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation tokens, sorted.
    pub fn eog_tokens(&self) -> &[TokenId] {
        &self.eog
    }

    /// The tokenizer's algorithm (and pre-tokenizer, for BPE).
    pub fn kind(&self) -> TokenizerKind {
        self.kind.clone()
    }

    fn check(&self, id: TokenId) -> Result<()> {
        if (id as usize) < self.vocab.len() {
            Ok(())
        } else {
            Err(Error::Tokenizer(format!(
                "token id {id} is out of range (the vocabulary has {} tokens)",
                self.vocab.len()
            )))
        }
    }
}

/// Which special tokens drop the whitespace after them.
enum StripRule {
    None,
    /// Every special token except these.
    AllBut(Vec<TokenId>),
}

/// llama.cpp's per-model token attributes (set by model name, tokenizer or architecture): the
/// tokens that drop whitespace before them, and the rule for whitespace after them.
fn strip_rules(file: &GgufFile, vocab: &Vocab) -> Result<(Vec<TokenId>, StripRule)> {
    let name = file.get_str("general.name")?.unwrap_or("").to_lowercase();
    let pre = file.get_str(K_PRE)?.unwrap_or("");
    let arch = file.get_str("general.architecture")?.unwrap_or("");
    let any = |s: &str, subs: &[&str]| subs.iter().any(|x| s.contains(x));
    let ids = |texts: &[&str]| -> Vec<TokenId> {
        texts.iter().filter_map(|t| vocab.token_id(t)).collect()
    };
    Ok(
        if any(pre, &["jina-v2-de", "jina-v2-es", "jina-v2-code"])
            || any(arch, &["nomic-bert-moe", "jina-bert-v3"])
        {
            (ids(&["<mask>"]), StripRule::None)
        } else if any(&name, &["phi-3", "phi3"]) {
            // Phi-3: every special token, `</s>` included, drops the whitespace after it, except
            // `<unk>`, `<s>` and `<|endoftext|>`.
            (
                Vec::new(),
                StripRule::AllBut(ids(&["<unk>", "<s>", "<|endoftext|>"])),
            )
        } else if any(&name, &["modern-bert"]) {
            (ids(&["[MASK]"]), StripRule::None)
        } else {
            (Vec::new(), StripRule::None)
        },
    )
}

/// Cuts a long text into pieces that every pre-tokenizer splits exactly as it splits the whole,
/// so that the splitter's working arrays stay small (and in cache) however long the text.
///
/// A cut goes between an ASCII letter and a space that is followed by an ASCII letter (`"a b"` →
/// `"a"`, `" b"`): no pattern of any supported pre-tokenizer matches across it (letter runs stop at
/// the space, the space joins the following letters), and none looks behind.
struct Chunks<'a> {
    rest: &'a str,
}

/// Target size of a chunk, in bytes.
const CHUNK: usize = 16 << 10;

impl<'a> Chunks<'a> {
    fn new(text: &'a str) -> Self {
        Chunks { rest: text }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest.as_bytes();
        let mut cut = b.len();
        if b.len() > 2 * CHUNK {
            let mut i = CHUNK.max(1);
            while i + 1 < b.len() {
                if b[i] == b' ' && b[i - 1].is_ascii_alphabetic() && b[i + 1].is_ascii_alphabetic()
                {
                    cut = i;
                    break;
                }
                i += 1;
            }
        }
        // `cut` is at an ASCII byte or the end, so on a character boundary.
        let (head, tail) = self.rest.split_at(cut);
        self.rest = tail;
        Some(head)
    }
}

/// Reads `tokenizer.ggml.merges` ("left right" strings; the earlier, the higher the priority).
fn load_merges(
    file: &GgufFile,
    vocab: &Vocab,
    merges: &[String],
    ignore_merges: bool,
) -> Result<BpeModel> {
    let mut ranks: FastMap<u64, u32> = FastMap::default();
    ranks.reserve(merges.len());
    let mut extra: FastMap<Box<[u8]>, u32> = FastMap::default();
    let n = vocab.len() as u32;
    let intern = |s: &str, extra: &mut FastMap<Box<[u8]>, u32>| -> Option<u32> {
        // Merge operands are byte-level text; one with another character can never apply.
        let raw = unicode::decode_byte_level(s)?;
        if let Some(id) = vocab.lookup(&raw) {
            return Some(id);
        }
        let next = n.checked_add(u32::try_from(extra.len()).ok()?)?;
        Some(*extra.entry(raw.into_boxed_slice()).or_insert(next))
    };
    for (rank, m) in merges.iter().enumerate() {
        // llama.cpp splits at the first space after the first byte.
        let split = m
            .as_bytes()
            .iter()
            .skip(1)
            .position(|&b| b == b' ')
            .map(|p| p + 1);
        let Some(at) = split else {
            return Err(invalid(
                file,
                K_MERGES,
                format!("entry {rank} ({m:?}) is not two tokens separated by a space"),
            ));
        };
        let (left, right) = (&m[..at], &m[at + 1..]);
        let (Some(l), Some(r)) = (intern(left, &mut extra), intern(right, &mut extra)) else {
            continue;
        };
        // The first occurrence of a pair keeps its rank.
        ranks.entry(bpe::pair(l, r)).or_insert(rank as u32);
    }
    let mut model = BpeModel {
        ranks,
        extra,
        ignore_merges,
        byte_sid: [bpe::NONE; 256],
    };
    for b in 0..=255u8 {
        model.byte_sid[b as usize] = model.sid(vocab, &[b]);
    }
    Ok(model)
}
