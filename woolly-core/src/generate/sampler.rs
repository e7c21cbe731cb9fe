//! Choosing the next token from logits.
//!
//! The chain follows llama.cpp's default order: repetition/frequency/presence penalties, top-k,
//! top-p, min-p, temperature, then a seeded draw. A temperature of zero (or top-k of one) is greedy:
//! the highest logit, ties broken towards the lower id. The default is temperature 0.8 with a fresh
//! random seed per sampler; pass a seed to make draws repeatable.

use crate::tokenizer::TokenId;
use crate::{Error, Result};

/// Sampling settings. `Default` is temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties,
/// a random seed; [`SamplingParams::greedy`] always takes the most likely token.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 is greedy; otherwise logits are divided by this before the draw.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = all).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one (0 = none).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens by this (1 = off).
    pub repetition_penalty: f32,
    /// Subtract this times a recent token's count from its logit (0 = off).
    pub frequency_penalty: f32,
    /// Subtract this from the logit of every recent token (0 = off).
    pub presence_penalty: f32,
    /// How many of the latest tokens the penalties look at (0 = none).
    pub penalty_last_n: usize,
    /// Seed of the draw; the same seed, prompt and settings give the same tokens. `None` draws a
    /// fresh seed for every sampler.
    pub seed: Option<u64>,
    /// Added to the logits of these tokens before anything else (`f32::NEG_INFINITY` bans one).
    pub logit_bias: Vec<(TokenId, f32)>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            seed: None,
            logit_bias: Vec::new(),
        }
    }
}

/// A seed nobody chose: from the process's hasher keys, which the standard library draws from the OS.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl SamplingParams {
    /// Always the most likely token.
    pub fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Checks every field's range, with a message naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        if !self.frequency_penalty.is_finite() || !self.presence_penalty.is_finite() {
            return bad("frequency_penalty and presence_penalty must be finite".into());
        }
        if let Some(&(t, b)) = self
            .logit_bias
            .iter()
            .find(|(_, b)| b.is_nan() || *b == f32::INFINITY)
        {
            return bad(format!(
                "logit_bias of token {t} must be a number or -inf, got {b}"
            ));
        }
        Ok(())
    }

    fn has_penalties(&self) -> bool {
        self.penalty_last_n > 0
            && (self.repetition_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }
}

/// A small, fast, seedable generator (xoshiro256**), the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded through SplitMix64.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e3779b97f4a7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Logits further than this below the best cannot matter (their probability is below e^-40 each).
const PRUNE_BELOW_MAX: f32 = 40.0;

/// Samples tokens with fixed settings, keeping its random state between calls.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    candidates: Vec<(TokenId, f32)>,
    counts: std::collections::HashMap<TokenId, u32>,
}

impl Sampler {
    /// A sampler for `params` (validated).
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        params.validate()?;
        Ok(Sampler {
            rng: Rng::new(params.seed.unwrap_or_else(random_seed)),
            params,
            candidates: Vec::new(),
            counts: Default::default(),
        })
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Whether this sampler always takes the most likely token.
    pub fn is_greedy(&self) -> bool {
        self.params.temperature == 0.0 || self.params.top_k == 1
    }

    /// Chooses the next token from `logits`; `history` is the sequence so far (prompt and output),
    /// which the penalties read.
    pub fn sample(&mut self, logits: &mut [f32], history: &[TokenId]) -> TokenId {
        let p = &self.params;
        for &(t, b) in &p.logit_bias {
            if let Some(l) = logits.get_mut(t as usize) {
                *l += b;
            }
        }
        if p.has_penalties() {
            self.counts.clear();
            let start = history.len().saturating_sub(p.penalty_last_n);
            for &t in &history[start..] {
                *self.counts.entry(t).or_insert(0) += 1;
            }
            for (&t, &count) in &self.counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    if *l > 0.0 {
                        *l /= p.repetition_penalty;
                    } else {
                        *l *= p.repetition_penalty;
                    }
                    *l -= count as f32 * p.frequency_penalty + p.presence_penalty;
                }
            }
        }
        if self.is_greedy() {
            return argmax(logits);
        }

        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            // No finite logit (a broken model, or every token biased away): nothing to weigh,
            // so the greedy answer, which is defined for any input.
            return argmax(logits);
        }
        let c = &mut self.candidates;
        c.clear();
        c.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, &l)| l >= max - PRUNE_BELOW_MAX)
                .map(|(i, &l)| (i as TokenId, l)),
        );
        let by_logit_desc =
            |a: &(TokenId, f32), b: &(TokenId, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && p.top_k < c.len() {
            c.select_nth_unstable_by(p.top_k - 1, by_logit_desc);
            c.truncate(p.top_k);
        }
        c.sort_unstable_by(by_logit_desc);

        // Probabilities of what is left (untempered, as llama.cpp's top-p and min-p see them).
        let probs = |c: &[(TokenId, f32)]| -> Vec<f64> {
            let m = c[0].1;
            let e: Vec<f64> = c.iter().map(|&(_, l)| ((l - m) as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|x| x / s).collect()
        };
        if p.top_p < 1.0 && c.len() > 1 {
            let pr = probs(c);
            let mut cum = 0.0;
            let mut keep = c.len();
            for (i, q) in pr.iter().enumerate() {
                cum += q;
                if cum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep);
        }
        if p.min_p > 0.0 && c.len() > 1 {
            // Relative to the best: p_i >= min_p * p_max  <=>  l_i >= l_max + ln(min_p).
            let cut = c[0].1 + p.min_p.ln();
            let keep = c.iter().take_while(|&&(_, l)| l >= cut).count().max(1);
            c.truncate(keep);
        }
        for e in c.iter_mut() {
            e.1 /= p.temperature;
        }
        let pr = probs(c);
        let r = self.rng.next_f64();
        let mut cum = 0.0;
        for (i, q) in pr.iter().enumerate() {
            cum += q;
            if r < cum {
                return c[i].0;
            }
        }
        c[c.len() - 1].0
    }
}

/// The index of the largest logit (the lowest index among equals).
pub fn argmax(logits: &[f32]) -> TokenId {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as TokenId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_without_a_finite_value_still_give_a_token() {
        let mut s = Sampler::new(SamplingParams::default()).unwrap();
        for fill in [f32::NAN, f32::NEG_INFINITY, f32::INFINITY] {
            let mut logits = vec![fill; 10];
            assert!(s.sample(&mut logits, &[1, 2]) < 10);
        }
        let mut mixed = vec![f32::NAN, 1.0, f32::NAN, 3.0];
        assert_eq!(
            Sampler::new(SamplingParams::greedy())
                .unwrap()
                .sample(&mut mixed, &[]),
            3
        );
        // Only the finite logits are candidates, whatever the draw: check many seeds.
        for seed in 0..256 {
            let mut s = Sampler::new(SamplingParams {
                seed: Some(seed),
                ..Default::default()
            })
            .unwrap();
            let mut mixed = vec![f32::NAN, 1.0, f32::NAN, 3.0];
            let t = s.sample(&mut mixed, &[]);
            assert!(t == 1 || t == 3, "seed {seed} drew {t}");
        }
    }

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.5, -1.0, 2.9, 0.0]
    }

    fn draw(params: SamplingParams, n: usize) -> Vec<TokenId> {
        let mut s = Sampler::new(params).unwrap();
        (0..n).map(|_| s.sample(&mut logits(), &[])).collect()
    }

    #[test]
    fn greedy_takes_the_best() {
        assert_eq!(draw(SamplingParams::greedy(), 3), vec![1, 1, 1]);
        assert_eq!(argmax(&[0.0, 5.0, 5.0]), 1);
    }

    #[test]
    fn top_k_one_equals_greedy_at_any_temperature() {
        let p = SamplingParams {
            temperature: 5.0,
            top_k: 1,
            ..Default::default()
        };
        assert_eq!(draw(p, 20), vec![1; 20]);
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let p = SamplingParams {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: Some(42),
            ..Default::default()
        };
        let a = draw(p.clone(), 64);
        assert_eq!(a, draw(p.clone(), 64));
        let b = draw(
            SamplingParams {
                seed: Some(43),
                ..p
            },
            64,
        );
        assert_ne!(a, b);
        // A hot draw over six tokens visits more than the best one.
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert!(distinct.len() >= 3, "{a:?}");
    }

    #[test]
    fn top_k_limits_the_choices() {
        let p = SamplingParams {
            temperature: 10.0,
            top_k: 2,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let got: std::collections::HashSet<_> = draw(p, 200).into_iter().collect();
        assert_eq!(got, [1, 4].into_iter().collect());
    }

    #[test]
    fn top_p_excludes_the_tail() {
        // Probabilities (softmax of the logits): 1 ~0.37, 4 ~0.33, 2 ~0.22, then small ones.
        let p = SamplingParams {
            temperature: 10.0,
            top_k: 0,
            top_p: 0.6,
            min_p: 0.0,
            ..Default::default()
        };
        let got: std::collections::HashSet<_> = draw(p, 300).into_iter().collect();
        assert_eq!(got, [1, 4].into_iter().collect());
    }

    #[test]
    fn min_p_excludes_unlikely_tokens() {
        // exp(2.5 - 3) = 0.61 >= 0.5 kept; exp(1 - 3) = 0.14 dropped.
        let p = SamplingParams {
            temperature: 10.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            ..Default::default()
        };
        let got: std::collections::HashSet<_> = draw(p, 300).into_iter().collect();
        assert_eq!(got, [1, 2, 4].into_iter().collect());
    }

    #[test]
    fn penalties_change_the_choice() {
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.5,
            ..SamplingParams::greedy()
        })
        .unwrap();
        // 3.0 / 1.5 = 2.0 < 2.9: token 1, seen before, loses to token 4.
        assert_eq!(s.sample(&mut logits(), &[1]), 4);
        let mut s = Sampler::new(SamplingParams {
            frequency_penalty: 0.2,
            ..SamplingParams::greedy()
        })
        .unwrap();
        // Seen once: 3.0 - 0.2 = 2.8 < 2.9.
        assert_eq!(s.sample(&mut logits(), &[1]), 4);
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 0.05,
            ..SamplingParams::greedy()
        })
        .unwrap();
        assert_eq!(s.sample(&mut logits(), &[1]), 1, "2.95 still beats 2.9");
        // Outside the penalty window, nothing changes.
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.5,
            penalty_last_n: 1,
            ..SamplingParams::greedy()
        })
        .unwrap();
        assert_eq!(s.sample(&mut logits(), &[1, 0]), 1);
    }

    #[test]
    fn logit_bias_moves_and_bans_tokens() {
        let mut s = Sampler::new(SamplingParams {
            logit_bias: vec![(3, 10.0), (1, f32::NEG_INFINITY)],
            ..SamplingParams::greedy()
        })
        .unwrap();
        assert_eq!(s.sample(&mut [0.0, 5.0, 1.0, 0.0], &[]), 3);
        let mut s = Sampler::new(SamplingParams {
            logit_bias: vec![(1, f32::NEG_INFINITY), (99, 1.0)],
            temperature: 1.0,
            seed: Some(3),
            ..Default::default()
        })
        .unwrap();
        for _ in 0..50 {
            assert_ne!(s.sample(&mut [0.0, 5.0, 1.0, 0.0], &[]), 1);
        }
    }

    #[test]
    fn absurd_parameters_are_errors() {
        for p in [
            SamplingParams {
                temperature: -1.0,
                ..Default::default()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..Default::default()
            },
            SamplingParams {
                top_p: 0.0,
                ..Default::default()
            },
            SamplingParams {
                min_p: 2.0,
                ..Default::default()
            },
            SamplingParams {
                repetition_penalty: 0.0,
                ..Default::default()
            },
            SamplingParams {
                logit_bias: vec![(1, f32::NAN)],
                ..Default::default()
            },
        ] {
            let e = Sampler::new(p).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        }
    }
}
