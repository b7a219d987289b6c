//! The cost formulas, as pure functions.
//!
//! Source: the seed formula of issue 6 and the project reference
//! (`serving-eval-quant-pricing.md` §5.5): `cost_per_1M = price_per_hour / (3600 × tok_per_s) × 1e6`,
//! and an always-on pod at average utilization U costs `price_per_hour / U` per useful hour.

/// USD per 1M tokens for a GPU billed `hourly_usd` that sustains `tokens_per_s` while busy and is
/// busy a share `utilization` of the time:
/// `hourly_usd * 1e6 / (3600 * tokens_per_s * utilization)`.
pub fn usd_per_million(hourly_usd: f64, tokens_per_s: f64, utilization: f64) -> f64 {
    hourly_usd * 1e6 / (3600.0 * tokens_per_s * utilization)
}

/// The utilization curve: 0.1, 0.2, ... 1.0 (ten points, exact decimals).
pub fn utilization_curve() -> Vec<f64> {
    (1..=10).map(|tenths| f64::from(tenths) / 10.0).collect()
}

/// The workload's measured token mix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenMix {
    /// Prompt tokens measured over the sweep.
    pub input_tokens: f64,
    /// Generated tokens measured over the sweep.
    pub output_tokens: f64,
}

impl TokenMix {
    /// Input tokens per output token.
    pub fn input_per_output(&self) -> f64 {
        self.input_tokens / self.output_tokens
    }

    /// Share of all tokens that are input.
    pub fn input_share(&self) -> f64 {
        self.input_tokens / (self.input_tokens + self.output_tokens)
    }
}

/// One API's list prices, USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListPrice {
    /// Input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Cached input tokens (falls back to `input` when the API lists none).
    pub cached_input: Option<f64>,
}

impl ListPrice {
    /// Effective input price when a share `cached_share` of input tokens hits the prompt cache.
    pub fn effective_input(&self, cached_share: f64) -> f64 {
        let cached = self.cached_input.unwrap_or(self.input);
        (1.0 - cached_share) * self.input + cached_share * cached
    }

    /// USD per 1M tokens of the workload's mix (input and output together):
    /// `(in * input_price + out * output_price) / (in + out)`.
    pub fn blended_per_million_total(&self, mix: TokenMix, cached_share: f64) -> f64 {
        let input = self.effective_input(cached_share);
        (mix.input_tokens * input + mix.output_tokens * self.output)
            / (mix.input_tokens + mix.output_tokens)
    }

    /// USD the API charges for the work that yields 1M output tokens, prompts included:
    /// `output_price + (in / out) * input_price`. Comparable with self-hosted $/1M output tokens,
    /// which also pays the GPU time spent on prompts.
    pub fn per_million_output_of_workload(&self, mix: TokenMix, cached_share: f64) -> f64 {
        self.output + mix.input_per_output() * self.effective_input(cached_share)
    }
}

/// Tokens per month above which an always-on GPU costing `monthly_usd` is cheaper than paying
/// `api_usd_per_million` per 1M tokens: `monthly_usd * 1e6 / api_usd_per_million`.
/// `None` when the API is free (it is then never beaten).
pub fn break_even_tokens(monthly_usd: f64, api_usd_per_million: f64) -> Option<f64> {
    (api_usd_per_million > 0.0).then(|| monthly_usd * 1e6 / api_usd_per_million)
}

/// Tokens one GPU can serve in a month at `tokens_per_s`, always busy.
pub fn monthly_capacity(tokens_per_s: f64, hours_per_month: f64) -> f64 {
    tokens_per_s * 3600.0 * hours_per_month
}

/// Latency figures of one level, for SLO selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelLatency {
    /// Output tokens per second.
    pub output_throughput: f64,
    /// p99 TTFT (ms); `None` counts as not meeting the SLO.
    pub p99_ttft_ms: Option<f64>,
    /// p99 TPOT (ms); `None` counts as not meeting the SLO.
    pub p99_tpot_ms: Option<f64>,
    /// Requests that failed at this level; a level with failures never meets an SLO.
    pub failed: u64,
}

/// Latency objectives a level must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySlo {
    /// Largest acceptable p99 TTFT (ms).
    pub p99_ttft_ms: f64,
    /// Largest acceptable p99 TPOT (ms).
    pub p99_tpot_ms: f64,
}

impl LatencySlo {
    /// Whether a level meets both objectives (inclusive bounds) with no failed request.
    pub fn is_met_by(&self, level: &LevelLatency) -> bool {
        level.failed == 0
            && level.p99_ttft_ms.is_some_and(|v| v <= self.p99_ttft_ms)
            && level.p99_tpot_ms.is_some_and(|v| v <= self.p99_tpot_ms)
    }
}

/// Index of the cheapest level meeting the SLO: the highest output throughput among those that
/// meet it (cost per token falls as throughput rises). Ties go to the lower index.
pub fn cheapest_meeting_slo(levels: &[LevelLatency], slo: LatencySlo) -> Option<usize> {
    best_by_throughput(levels, |l| slo.is_met_by(l))
}

/// Index of the level with the highest output throughput (the sweep's peak).
pub fn peak(levels: &[LevelLatency]) -> Option<usize> {
    best_by_throughput(levels, |_| true)
}

fn best_by_throughput(
    levels: &[LevelLatency],
    keep: impl Fn(&LevelLatency) -> bool,
) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (index, level) in levels.iter().enumerate().filter(|(_, l)| keep(l)) {
        if best.is_none_or(|b| level.output_throughput > levels[b].output_throughput) {
            best = Some(index);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
    }

    #[test]
    fn reference_examples() {
        // §5.5: $0.468/h at 1000 tok/s = $0.13/M; at 100 tok/s = $1.30/M.
        close(usd_per_million(0.468, 1000.0, 1.0), 0.13);
        close(usd_per_million(0.468, 100.0, 1.0), 1.30);
    }

    #[test]
    fn utilization_divides_throughput() {
        // $1/h at 250 tok/s: 1e6 / 900000 = 1.1111 $/M; at 80% busy: 1.3889.
        close(usd_per_million(1.0, 250.0, 1.0), 1.0 / 0.9);
        close(usd_per_million(1.0, 250.0, 0.8), 1.0 / 0.72);
        let curve = utilization_curve();
        assert_eq!(curve.len(), 10);
        assert_eq!(curve[0], 0.1);
        assert_eq!(curve[7], 0.8);
        assert_eq!(curve[9], 1.0);
    }

    #[test]
    fn blending_uses_measured_ratio() {
        // gpt-4o-mini at 4096 in / 2048 out (2:1): (2*0.15 + 0.60)/3 = 0.30 per 1M total,
        // and 0.60 + 2*0.15 = 0.90 per 1M output tokens of the workload.
        let price = ListPrice {
            input: 0.15,
            output: 0.60,
            cached_input: Some(0.075),
        };
        let mix = TokenMix {
            input_tokens: 4096.0,
            output_tokens: 2048.0,
        };
        close(mix.input_per_output(), 2.0);
        close(mix.input_share(), 2.0 / 3.0);
        close(price.blended_per_million_total(mix, 0.0), 0.30);
        close(price.per_million_output_of_workload(mix, 0.0), 0.90);
        // Half the input cached: effective input 0.1125; total (2*0.1125 + 0.6)/3 = 0.275.
        close(price.blended_per_million_total(mix, 0.5), 0.275);
        // No cached price listed: caching changes nothing.
        let flat = ListPrice {
            input: 0.3,
            output: 2.5,
            cached_input: None,
        };
        close(flat.effective_input(0.5), 0.3);
    }

    #[test]
    fn break_even_and_capacity() {
        // $0.468/h * 730 h = $341.64/month; against $0.30 per 1M: 1,138.8M tokens/month.
        let monthly = 0.468 * 730.0;
        close(
            break_even_tokens(monthly, 0.30).expect("priced"),
            1_138_800_000.0,
        );
        assert_eq!(break_even_tokens(monthly, 0.0), None);
        // 500 tok/s always on for 730 h: 1,314M tokens.
        close(monthly_capacity(500.0, 730.0), 1_314_000_000.0);
    }

    fn level(tput: f64, ttft: f64, tpot: f64) -> LevelLatency {
        LevelLatency {
            output_throughput: tput,
            p99_ttft_ms: Some(ttft),
            p99_tpot_ms: Some(tpot),
            failed: 0,
        }
    }

    #[test]
    fn slo_selection_picks_fastest_compliant_level() {
        let levels = [
            level(40.0, 120.0, 20.0),
            level(75.0, 250.0, 24.0),
            level(140.0, 420.0, 28.0),
            level(190.0, 900.0, 41.0),
        ];
        let slo = LatencySlo {
            p99_ttft_ms: 500.0,
            p99_tpot_ms: 30.0,
        };
        assert_eq!(cheapest_meeting_slo(&levels, slo), Some(2));
        assert_eq!(peak(&levels), Some(3));
        // Bounds are inclusive.
        let edge = LatencySlo {
            p99_ttft_ms: 420.0,
            p99_tpot_ms: 28.0,
        };
        assert_eq!(cheapest_meeting_slo(&levels, edge), Some(2));
        // TPOT alone can rule a level out.
        let tight = LatencySlo {
            p99_ttft_ms: 1000.0,
            p99_tpot_ms: 21.0,
        };
        assert_eq!(cheapest_meeting_slo(&levels, tight), Some(0));
        let none = LatencySlo {
            p99_ttft_ms: 10.0,
            p99_tpot_ms: 30.0,
        };
        assert_eq!(cheapest_meeting_slo(&levels, none), None);
        // A level without latency figures never meets an SLO.
        let blind = [LevelLatency {
            output_throughput: 1.0,
            p99_ttft_ms: None,
            p99_tpot_ms: Some(1.0),
            failed: 0,
        }];
        assert_eq!(cheapest_meeting_slo(&blind, slo), None);
        // Failed requests disqualify an otherwise fast level.
        let failing = [
            level(40.0, 100.0, 10.0),
            LevelLatency {
                failed: 3,
                ..level(90.0, 100.0, 10.0)
            },
        ];
        assert_eq!(cheapest_meeting_slo(&failing, slo), Some(0));
    }

    #[test]
    fn slo_selection_is_not_monotonic_in_concurrency() {
        // A non-compliant level between compliant ones does not stop the search.
        let levels = [
            level(40.0, 100.0, 10.0),
            level(80.0, 900.0, 10.0),
            level(60.0, 100.0, 10.0),
        ];
        let slo = LatencySlo {
            p99_ttft_ms: 500.0,
            p99_tpot_ms: 30.0,
        };
        assert_eq!(cheapest_meeting_slo(&levels, slo), Some(2));
    }
}
