//! vLLM's metric math over a level's request records.
//!
//! Source: vLLM `vllm/benchmarks/serve.py::calculate_metrics` (0.32), summarised in
//! `shared/reference/bench-clients.md` §1.2: TTFT/E2EL/TPOT per successful request, ITL pooled
//! per chunk, token counts from server usage, mean/median/population std, `np.percentile`
//! linear interpolation, throughputs over the level's wall time, DistServe goodput, and the
//! per-second peak metrics (`max_output_tokens_per_s`, `max_concurrent_requests`).

use serde::Serialize;

use super::record::RequestRecord;
use super::settings::Slo;

/// Summary statistics of one metric in milliseconds (vLLM key suffixes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Arithmetic mean (0 when there are no values).
    pub mean: f64,
    /// Median (`np.median`).
    pub median: f64,
    /// Population standard deviation (`np.std`, ddof = 0).
    pub std: f64,
    /// 50th percentile, linear interpolation (`np.percentile`).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// numpy's `_lerp`, kept term for term so results match `np.percentile` to the last bits.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// `np.percentile(values, p)` with the default `linear` method, over sorted values.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let q = p / 100.0;
    // numpy `_compute_virtual_index` with alpha = beta = 1.
    let (alpha, beta) = (1.0, 1.0);
    let virtual_index = (n as f64) * q + (alpha + q * (1.0 - alpha - beta)) - 1.0;
    let lo = virtual_index.floor().clamp(0.0, (n - 1) as f64);
    let hi = (lo + 1.0).min((n - 1) as f64);
    let gamma = virtual_index - virtual_index.floor();
    let (a, b) = (sorted[lo as usize], sorted[hi as usize]);
    if virtual_index >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    lerp(a, b, gamma)
}

/// Statistics of values given in seconds, reported in milliseconds; all zero when empty
/// (vLLM's `np.mean(x or 0)`).
pub fn stats_ms(values_s: impl IntoIterator<Item = f64>) -> Stats {
    let mut ms: Vec<f64> = values_s.into_iter().map(|v| v * 1000.0).collect();
    if ms.is_empty() {
        return Stats::default();
    }
    ms.sort_by(f64::total_cmp);
    let n = ms.len() as f64;
    let mean = ms.iter().sum::<f64>() / n;
    let var = ms.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let mid = ms.len() / 2;
    let median = if ms.len() % 2 == 1 {
        ms[mid]
    } else {
        (ms[mid - 1] + ms[mid]) / 2.0
    };
    Stats {
        mean,
        median,
        std: var.sqrt(),
        p50: percentile_sorted(&ms, 50.0),
        p90: percentile_sorted(&ms, 90.0),
        p95: percentile_sorted(&ms, 95.0),
        p99: percentile_sorted(&ms, 99.0),
    }
}

/// Everything vLLM computes for one level, plus the exact in-flight peak.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LevelMetrics {
    /// Successful requests.
    pub completed: u64,
    /// Failed requests.
    pub failed: u64,
    /// Sum of prompt tokens over successful requests.
    pub total_input_tokens: u64,
    /// Sum of output tokens over successful requests.
    pub total_output_tokens: u64,
    /// Completed requests per second of wall time.
    pub request_throughput: f64,
    /// Requests meeting every SLO per second; `None` without SLOs.
    pub request_goodput: Option<f64>,
    /// Output tokens per second of wall time.
    pub output_throughput: f64,
    /// Input plus output tokens per second of wall time.
    pub total_token_throughput: f64,
    /// Highest count of choices messages in a one-second bucket (vLLM counts chunks).
    pub max_output_tokens_per_s: f64,
    /// Highest count of requests active during a one-second bucket (vLLM 0.32's definition).
    pub max_concurrent_requests: u64,
    /// Exact peak of simultaneously open requests (sweep line over `[start, start+latency)`).
    pub peak_in_flight: u64,
    /// Time to first token.
    pub ttft: Stats,
    /// Time per output token after the first.
    pub tpot: Stats,
    /// Inter-chunk latency, pooled over requests.
    pub itl: Stats,
    /// End-to-end latency.
    pub e2el: Stats,
}

/// Compute a level's metrics from its records and wall time (`duration_s`).
pub fn compute(records: &[RequestRecord], duration_s: f64, slo: Option<&Slo>) -> LevelMetrics {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.success()).collect();
    let completed = ok.len() as u64;
    let total_input: u64 = ok.iter().map(|r| u64::from(r.prompt_tokens)).sum();
    let total_output: u64 = ok.iter().map(|r| u64::from(r.output_tokens)).sum();
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };
    let goodput = slo.map(|slo| per_s(ok.iter().filter(|r| is_good(r, slo)).count() as f64));
    let (max_tokens_per_s, max_concurrent) = per_second_peaks(&ok);
    LevelMetrics {
        completed,
        failed: records.len() as u64 - completed,
        total_input_tokens: total_input,
        total_output_tokens: total_output,
        request_throughput: per_s(completed as f64),
        request_goodput: goodput,
        output_throughput: per_s(total_output as f64),
        total_token_throughput: per_s((total_input + total_output) as f64),
        max_output_tokens_per_s: max_tokens_per_s,
        max_concurrent_requests: max_concurrent,
        peak_in_flight: peak_in_flight(&ok),
        ttft: stats_ms(ok.iter().map(|r| r.ttft_s)),
        tpot: stats_ms(ok.iter().filter_map(|r| r.tpot_s())),
        itl: stats_ms(ok.iter().flat_map(|r| r.itl.iter().map(|&g| f64::from(g)))),
        e2el: stats_ms(ok.iter().map(|r| r.latency_s)),
    }
}

/// DistServe goodput: good iff every given SLO holds (`tpot` counts as 0 for one token).
fn is_good(r: &RequestRecord, slo: &Slo) -> bool {
    let within = |limit: Option<f64>, value_s: f64| limit.is_none_or(|ms| value_s <= ms / 1000.0);
    within(slo.ttft_ms, r.ttft_s)
        && within(slo.tpot_ms, r.tpot_s().unwrap_or(0.0))
        && within(slo.e2el_ms, r.latency_s)
}

/// vLLM 0.32's one-second buckets from the earliest successful start: chunk events per bucket
/// (token times rebuilt as `start + ttft + cumsum(itl)`) and requests active per bucket.
fn per_second_peaks(ok: &[&RequestRecord]) -> (f64, u64) {
    let Some(min_start) = ok.iter().map(|r| r.start_s).min_by(f64::total_cmp) else {
        return (0.0, 0);
    };
    let max_end = ok
        .iter()
        .map(|r| r.start_s + r.latency_s)
        .fold(f64::MIN, f64::max);
    let buckets = (max_end - min_start).ceil() as usize + 1;
    let mut tokens = vec![0u64; buckets];
    let mut active = vec![0u64; buckets];
    for r in ok {
        let mut t = r.start_s + r.ttft_s;
        let mut add = |t: f64| {
            let b = (t - min_start) as i64;
            if b >= 0 && (b as usize) < buckets {
                tokens[b as usize] += 1;
            }
        };
        add(t);
        for &gap in &r.itl {
            t += f64::from(gap);
            add(t);
        }
        let first = (r.start_s - min_start) as usize;
        let last = ((r.start_s + r.latency_s - min_start) as usize).min(buckets - 1);
        for slot in &mut active[first..=last] {
            *slot += 1;
        }
    }
    let max_tokens = tokens.iter().copied().max().unwrap_or(0) as f64;
    (max_tokens, active.iter().copied().max().unwrap_or(0))
}

/// Exact peak of open requests; a departure before an arrival at the same instant.
fn peak_in_flight(ok: &[&RequestRecord]) -> u64 {
    let mut events: Vec<(f64, i64)> = ok
        .iter()
        .flat_map(|r| [(r.start_s, 1), (r.start_s + r.latency_s, -1)])
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, delta) in events {
        now += delta;
        peak = peak.max(now);
    }
    peak as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        // np.percentile([1,2,3,4], [50,90,95,99]) = [2.5, 3.7, 3.85, 3.97]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!(close(percentile_sorted(&v, 50.0), 2.5));
        assert!(close(percentile_sorted(&v, 90.0), 3.7));
        assert!(close(percentile_sorted(&v, 95.0), 3.85));
        assert!(close(percentile_sorted(&v, 99.0), 3.97));
        assert_eq!(percentile_sorted(&[7.0], 99.0), 7.0);
        assert_eq!(percentile_sorted(&[], 99.0), 0.0);
    }

    #[test]
    fn stats_population_std_and_median() {
        // values (s) 0.001..0.005 -> ms 1..5: mean 3, np.std = sqrt(2), median 3, p99 = 4.96
        let s = stats_ms([0.005, 0.001, 0.003, 0.002, 0.004]);
        assert!(close(s.mean, 3.0));
        assert!(close(s.std, 2f64.sqrt()));
        assert!(close(s.median, 3.0));
        assert!(close(s.p99, 4.96));
        let even = stats_ms([0.001, 0.002, 0.010, 0.004]);
        assert!(close(even.median, 3.0));
        assert_eq!(stats_ms(std::iter::empty()), Stats::default());
    }

    fn rec(start: f64, ttft: f64, itl: &[f32], out: u32, prompt: u32) -> RequestRecord {
        let latency = ttft + itl.iter().map(|&g| f64::from(g)).sum::<f64>();
        RequestRecord {
            start_s: start,
            ttft_s: ttft,
            latency_s: latency,
            itl: itl.to_vec(),
            output_tokens: out,
            prompt_tokens: prompt,
            chunks: itl.len() as u32 + 1,
            ..Default::default()
        }
    }

    #[test]
    fn level_metrics_hand_computed() {
        // Values exact in binary so the hand computation is exact.
        // r0: ttft 0.125, gaps 0.0625 x2, 3 tokens -> latency 0.25, tpot 0.0625
        // r1: starts 0.5, ttft 0.25, gap 0.125, 2 tokens -> latency 0.375, tpot 0.125
        // r2: failed
        let r0 = rec(0.0, 0.125, &[0.0625, 0.0625], 3, 10);
        let r1 = rec(0.5, 0.25, &[0.125], 2, 20);
        let r2 = RequestRecord {
            error: Some("boom".into()),
            start_s: 0.1,
            ..Default::default()
        };
        let slo = Slo {
            ttft_ms: Some(200.0),
            ..Default::default()
        };
        let m = compute(&[r0, r1, r2], 2.0, Some(&slo));
        assert_eq!((m.completed, m.failed), (2, 1));
        assert_eq!((m.total_input_tokens, m.total_output_tokens), (30, 5));
        assert!(close(m.request_throughput, 1.0));
        assert!(close(m.output_throughput, 2.5));
        assert!(close(m.total_token_throughput, 17.5));
        assert_eq!(m.request_goodput, Some(0.5));
        assert!(close(m.ttft.mean, 187.5));
        assert!(close(m.tpot.mean, 93.75));
        assert!(close(m.e2el.median, 312.5));
        // ITL pooled [62.5, 62.5, 125]: mean 83.33, p99 = 62.5 + 0.98 * 62.5 = 123.75
        assert!(close(m.itl.mean, 250.0 / 3.0));
        assert!(close(m.itl.p99, 123.75));
        // Chunk events at 0.125, 0.1875, 0.25, 0.75, 0.875: all in bucket 0.
        assert_eq!(m.max_output_tokens_per_s, 5.0);
        assert_eq!(m.max_concurrent_requests, 2);
        assert_eq!(m.peak_in_flight, 1);
    }

    #[test]
    fn single_token_requests_have_no_tpot() {
        let m = compute(&[rec(0.0, 0.2, &[], 1, 4)], 1.0, None);
        assert_eq!(m.tpot, Stats::default());
        assert_eq!(m.request_goodput, None);
        assert!(close(m.ttft.p99, 200.0));
    }
}
