//! Log probabilities of the chosen token and of the most likely alternatives at each step, as
//! llama.cpp's server reports them: from the model's own distribution (a softmax of the raw
//! logits at temperature 1), before sampling filters, penalties or a constraint's mask.

use serde::Serialize;

use crate::tokenizer::{TokenId, Tokenizer};

/// The most alternatives a step reports (OpenAI's `top_logprobs` bound).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One token with its log probability and its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopLogprob {
    pub id: TokenId,
    /// The token's text (control tokens rendered; bytes that are not UTF-8 on their own as
    /// U+FFFD: `bytes` has them exactly).
    pub token: String,
    pub bytes: Vec<u8>,
    /// Natural logarithm of the probability.
    pub logprob: f32,
}

/// The chosen token of one step, and the `top` most likely tokens of that step (best first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    #[serde(flatten)]
    pub chosen: TopLogprob,
    pub top: Vec<TopLogprob>,
}

fn entry(tok: &Tokenizer, id: TokenId, logprob: f32) -> TopLogprob {
    let bytes = tok.token_bytes(id).unwrap_or_default().to_vec();
    TopLogprob {
        id,
        token: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        logprob,
    }
}

/// The log probabilities for choosing `chosen` from `logits`, with the `top` best tokens.
pub(crate) fn logprobs(
    tok: &Tokenizer,
    logits: &[f32],
    chosen: TokenId,
    top: usize,
) -> TokenLogprob {
    let max = logits
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let mut best: Vec<(f32, TokenId)> = Vec::with_capacity(top + 1);
    let mut sum = 0f64;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_finite() {
            continue;
        }
        sum += f64::from(l - max).exp();
        if top > 0 && (best.len() < top || l > best[best.len() - 1].0) {
            let at = best.partition_point(|&(b, _)| b >= l);
            best.insert(at, (l, i as TokenId));
            best.truncate(top);
        }
    }
    let log_z = max + sum.ln() as f32;
    let lp = |l: f32| {
        if l.is_finite() {
            l - log_z
        } else {
            f32::NEG_INFINITY
        }
    };
    let chosen_logit = logits
        .get(chosen as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    TokenLogprob {
        chosen: entry(tok, chosen, lp(chosen_logit)),
        top: best
            .into_iter()
            .map(|(l, id)| entry(tok, id, lp(l)))
            .collect(),
    }
}
