//! What happens to each generated token, shared by [`super::Session`] and the engine: sampling,
//! end-of-generation, incremental UTF-8 text, stop strings (held back until they cannot match),
//! and the token callback.

use std::borrow::Borrow;
use std::sync::Arc;

use super::constraint::Guide;
use super::generation::{StopReason, TokenEvent};
use super::logprobs::{logprobs, TokenLogprob, MAX_TOP_LOGPROBS};
use super::params::GenerateParams;
use super::sampler::Sampler;
use crate::tokenizer::{StreamDecoder, TokenId, Tokenizer};
use crate::{Error, Result};

/// A model's tokenizer, owned through the model (for outputs that outlive a borrow).
#[derive(Clone)]
pub(crate) struct ModelTokenizer(pub(crate) Arc<crate::model::Model>);

impl Borrow<Tokenizer> for ModelTokenizer {
    fn borrow(&self) -> &Tokenizer {
        self.0.tokenizer()
    }
}

/// One generation's output so far.
pub(crate) struct Output<T: Borrow<Tokenizer>> {
    sampler: Sampler,
    decoder: StreamDecoder<T>,
    stop: Vec<String>,
    max_stop: usize,
    max_tokens: usize,
    ignore_eos: bool,
    pub(crate) text: String,
    /// Bytes of `text` already passed to the callback.
    emitted: usize,
    pub(crate) generated: Vec<TokenId>,
    pub(crate) stop_reason: StopReason,
    /// The constraint the output must match, a step ahead on its own thread.
    guide: Option<Guide>,
    /// Alternatives to report per step, when log probabilities were asked for.
    top_logprobs: Option<usize>,
    /// The logits as the model gave them, kept for the log probabilities.
    raw: Vec<f32>,
    pub(crate) logprobs: Vec<TokenLogprob>,
}

impl<T: Borrow<Tokenizer>> Output<T> {
    /// Checks the parameters and compiles the constraint (the error for an unsupported schema
    /// comes from here, before any work), then starts computing its first mask.
    pub(crate) fn new(tok: T, params: &GenerateParams) -> Result<Output<T>> {
        if params.logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
            return Err(Error::InvalidArgument(format!(
                "top logprobs {} is more than {MAX_TOP_LOGPROBS}",
                params.logprobs.unwrap_or_default()
            )));
        }
        let guide = match &params.constraint {
            Some(c) => Some(Guide::new(c, tok.borrow())?),
            None => None,
        };
        Ok(Output {
            guide,
            top_logprobs: params.logprobs,
            raw: Vec::new(),
            logprobs: Vec::new(),
            sampler: Sampler::new(params.sampling.clone())?,
            decoder: StreamDecoder::new(tok, false),
            stop: params
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            max_stop: params.stop.iter().map(|s| s.len()).max().unwrap_or(0),
            max_tokens: params.max_tokens,
            ignore_eos: params.ignore_eos,
            text: String::new(),
            emitted: 0,
            generated: Vec::with_capacity(params.max_tokens.min(4096)),
            stop_reason: StopReason::MaxTokens,
        })
    }

    /// Whether no more tokens are wanted before sampling at all (`max_tokens` 0).
    pub(crate) fn is_full(&self) -> bool {
        self.generated.len() >= self.max_tokens
    }

    /// Samples the next token from `logits` (the model's output after `history`), streams its
    /// text, and returns it when the generation goes on (the caller then evaluates it), or
    /// `None` when it has ended (see `stop_reason`).
    pub(crate) fn step(
        &mut self,
        logits: &mut [f32],
        history: &[TokenId],
        on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Option<TokenId>> {
        if self.is_full() {
            return Ok(None);
        }
        if self.top_logprobs.is_some() {
            self.raw.clear();
            self.raw.extend_from_slice(logits);
        }
        if let Some(guide) = &mut self.guide {
            if !guide.apply(logits)? {
                // The output is complete: nothing may follow it.
                self.stop_reason = StopReason::EndOfGeneration;
                return Ok(None);
            }
        }
        let id = self.sampler.sample(logits, history);
        let tok = self.decoder.tokenizer();
        // Under a constraint, end-of-generation is allowed only where the output may end, and
        // then it ends it (also with `ignore_eos`).
        if (!self.ignore_eos || self.guide.is_some()) && tok.is_eog(id) {
            self.stop_reason = StopReason::EndOfGeneration;
            return Ok(None);
        }
        if let Some(top) = self.top_logprobs {
            self.logprobs.push(logprobs(tok, &self.raw, id, top));
        }
        if let Some(guide) = &mut self.guide {
            guide.commit(id);
        }
        self.generated.push(id);
        let piece = self.decoder.push(id)?;
        self.text.push_str(&piece);

        // Stop strings: cut the text at the first one and emit only what precedes it.
        let mut hit = None;
        if self.max_stop > 0 {
            let from = floor_char_boundary(&self.text, self.emitted.saturating_sub(self.max_stop));
            hit = self
                .stop
                .iter()
                .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
                .min();
        }
        let safe_end = match hit {
            Some(at) => at,
            // Hold back a tail that could still become a stop string.
            None if self.max_stop > 0 => floor_char_boundary(
                &self.text,
                self.text.len().saturating_sub(self.max_stop - 1),
            )
            .max(self.emitted),
            None => self.text.len(),
        };
        let keep_going = on_token(&TokenEvent {
            id,
            text: &self.text[self.emitted..safe_end],
            index: self.generated.len() - 1,
            logprob: self.logprobs.last().filter(|_| self.top_logprobs.is_some()),
        });
        self.emitted = safe_end;
        if hit.is_some() {
            self.text.truncate(safe_end);
            self.stop_reason = StopReason::StopString;
            return Ok(None);
        }
        if !keep_going {
            self.stop_reason = StopReason::Callback;
            return Ok(None);
        }
        if self.is_full() {
            self.stop_reason = StopReason::MaxTokens;
            return Ok(None);
        }
        Ok(Some(id))
    }

    /// Ends the generation: the text held back (a partial character, a tail that did not
    /// become a stop string) goes to the callback, except after the callback asked to stop
    /// (the result is then exactly what was streamed).
    pub(crate) fn finish(&mut self, on_token: &mut dyn FnMut(&TokenEvent<'_>) -> bool) {
        match self.stop_reason {
            StopReason::Callback => self.text.truncate(self.emitted),
            StopReason::StopString => {}
            _ => {
                self.text.push_str(&self.decoder.finish());
                if self.emitted < self.text.len() {
                    if let Some(&last) = self.generated.last() {
                        on_token(&TokenEvent {
                            id: last,
                            text: &self.text[self.emitted..],
                            index: self.generated.len() - 1,
                            logprob: None,
                        });
                    }
                    self.emitted = self.text.len();
                }
            }
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
