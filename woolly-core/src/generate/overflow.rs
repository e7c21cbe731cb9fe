//! What happens when a prompt and its `max_tokens` do not fit the context: never silence.
//!
//! - [`Overflow::Error`] (the default): [`Error::ContextOverflow`] with the counts.
//! - [`Overflow::TruncateMiddle`]: the prompt keeps its start (BOS and, in a chat, the system
//!   prompt: never cut inside it) and its end, and loses a run of tokens in between, ending
//!   where a control token (a turn's start) begins when one is near, so that no turn's markup is
//!   cut in two.
//! - [`Overflow::Shift`]: a rolling window for long generations: when the context fills, the
//!   first `keep` tokens stay and the older half of the rest is dropped; the kept tokens are
//!   read again, so the logits are exactly those of a cold run on what is kept.
//!
//! Every drop is reported in [`Generation::dropped`](super::Generation::dropped).

use serde::{Deserialize, Serialize};

use crate::tokenizer::{TokenId, Tokenizer};
use crate::{Error, Result};

/// What to do when the prompt and `max_tokens` exceed the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Fail with [`Error::ContextOverflow`] and the counts.
    #[default]
    Error,
    /// Drop tokens from the middle of the prompt (never from its protected start).
    TruncateMiddle,
    /// Keep the first `keep` tokens and drop the older half of the rest each time the context
    /// fills during generation.
    Shift { keep: usize },
}

impl Overflow {
    /// The strategy a front end names: `error`, `truncate-middle`, `shift` (keeping `keep`).
    pub fn from_name(name: &str, keep: usize) -> Result<Overflow> {
        match name {
            "error" => Ok(Overflow::Error),
            "truncate-middle" => Ok(Overflow::TruncateMiddle),
            "shift" => Ok(Overflow::Shift { keep }),
            other => Err(Error::InvalidArgument(format!(
                "overflow `{other}` is not error, truncate-middle or shift"
            ))),
        }
    }
}

/// Tokens a generation dropped to fit its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// How many tokens.
    pub count: usize,
    /// Where the dropped run began, as a position in the sequence at that moment.
    pub at: usize,
    /// `prompt` (truncate-middle, before anything was read) or `shift` (during generation).
    pub during: &'static str,
}

/// How far past the cut a control token may be to move the cut's end to it.
const ALIGN_WINDOW: usize = 64;

/// Drops `need` tokens from `ids` after its first `protect` ones, ending the run at a control
/// token within [`ALIGN_WINDOW`] when there is one. `None` when the tail left would be empty.
pub(crate) fn cut_middle(
    ids: &mut Vec<TokenId>,
    need: usize,
    protect: usize,
    tok: &Tokenizer,
) -> Option<Dropped> {
    let start = protect.max(1).min(ids.len());
    let mut end = start.checked_add(need)?;
    if end >= ids.len() {
        return None;
    }
    if let Some(off) = ids[end..ids.len().min(end + ALIGN_WINDOW)]
        .iter()
        .position(|&t| tok.is_control(t))
    {
        if end + off < ids.len() {
            end += off;
        }
    }
    ids.drain(start..end);
    Some(Dropped {
        count: end - start,
        at: start,
        during: "prompt",
    })
}

/// Makes the prompt fit `n_ctx` with room for `max_tokens` as `overflow` says: unchanged when
/// it fits; otherwise an error, a cut, or (shift) unchanged when the prompt alone fits.
pub(crate) fn fit_prompt(
    ids: &mut Vec<TokenId>,
    max_tokens: usize,
    n_ctx: usize,
    protect: usize,
    overflow: Overflow,
    tok: &Tokenizer,
) -> Result<Option<Dropped>> {
    let total = ids.len().saturating_add(max_tokens);
    if total <= n_ctx {
        return Ok(None);
    }
    let overflow_error = |prompt: usize| Error::ContextOverflow {
        prompt,
        requested: max_tokens,
        context: n_ctx,
    };
    match overflow {
        Overflow::Error => Err(overflow_error(ids.len())),
        Overflow::TruncateMiddle => {
            let len = ids.len();
            cut_middle(ids, total - n_ctx, protect, tok)
                .ok_or_else(|| overflow_error(len))
                .map(Some)
        }
        Overflow::Shift { keep } => {
            // The prompt itself must fit, with room to shift into.
            if ids.len() >= n_ctx || keep >= n_ctx / 2 {
                return Err(if keep >= n_ctx / 2 {
                    Error::InvalidArgument(format!(
                        "shift keeps {keep} tokens; at most half the context ({}) leaves room",
                        n_ctx / 2
                    ))
                } else {
                    overflow_error(ids.len())
                });
            }
            Ok(None)
        }
    }
}

/// The tokens a shift keeps of a full `history`: the first `keep` and the newer half of the
/// rest; returns them and what was dropped.
pub(crate) fn shift(history: &[TokenId], keep: usize) -> (Vec<TokenId>, Dropped) {
    let keep = keep.min(history.len());
    let rest = history.len() - keep;
    let drop = rest / 2;
    let mut kept = history[..keep].to_vec();
    kept.extend_from_slice(&history[keep + drop..]);
    (
        kept,
        Dropped {
            count: drop,
            at: keep,
            during: "shift",
        },
    )
}
