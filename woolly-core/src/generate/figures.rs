//! What a finished generation hands its model's metrics: [`Generation`]'s timings as the plain
//! figures [`crate::metrics::ModelMetrics::record`] takes.

use super::generation::Generation;
use crate::metrics::GenerationFigures;

impl From<&Generation> for GenerationFigures {
    fn from(g: &Generation) -> Self {
        let t = &g.timings;
        GenerationFigures {
            prompt_tokens: t.prompt_tokens,
            cached_tokens: t.cached_tokens,
            prompt_ms: t.prompt_ms,
            generated_tokens: t.generated_tokens,
            gen_ms: t.gen_ms,
            gen_tok_s: t.gen_tok_s,
            ttft_ms: t.ttft_ms,
            queue_ms: t.queue_ms,
        }
    }
}
