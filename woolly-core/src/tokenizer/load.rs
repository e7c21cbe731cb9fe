//! Building a [`Tokenizer`] from a GGUF file's `tokenizer.ggml.*` metadata: the keys, the
//! per-kind defaults and pre-tokenizers as llama.cpp sets them, the special tokens found by
//! their text, the per-model whitespace stripping around special tokens, and the BPE merges.

use std::borrow::Cow;

use super::bpe::{self, BpeModel};
use super::hash::FastMap;
use super::pretokenize::Pass;
use super::special::{SpecialMatcher, SpecialToken};
use super::unicode;
use super::vocab::{attr, attr_from_type, Encoding, Vocab};
use super::{Model, TokenId, Tokenizer, TokenizerKind};
use crate::gguf::{Array, GgufError, GgufFile};
use crate::{Error, Result};

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
            derived: Default::default(),
        })
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
