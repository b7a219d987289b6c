//! Load schedules and the level runner: a closed loop keeps exactly N requests in flight; an
//! open loop sends on a precomputed arrival schedule (gamma inter-arrivals as vLLM, or a trace's
//! timestamps) with at most N in flight. Warmup requests run, and the level's connections are
//! opened, before the level's clock starts. While a level runs, a probe measures the runtime's
//! own scheduling lag and [`LiveLevel`] counts what is done for the progress line.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::BenchError;
use super::client::Client;
use super::record::RequestRecord;

/// When requests are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every request arrives at 0 and waits for one of N slots (vLLM: rate `inf` + cap N).
    Closed,
    /// Arrival offsets in seconds, one per request.
    Open(Vec<f64>),
}

/// vLLM `get_request` delays: gamma(shape = b, scale = 1/(rate·b)) gaps (constant when b is
/// infinite), cumulated, then rescaled so the last arrival is exactly `n / rate`
/// (`vllm/benchmarks/serve.py`). ChaCha8-seeded, so not numpy's exact values.
pub fn gamma_arrivals(n: usize, rate: f64, burstiness: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gamma = (burstiness < 1e9)
        .then(|| Gamma::new(burstiness, 1.0 / (rate * burstiness)).expect("positive params"));
    let mut t = 0.0;
    let mut out: Vec<f64> = (0..n)
        .map(|_| {
            t += gamma.as_ref().map_or(1.0 / rate, |g| g.sample(&mut rng));
            t
        })
        .collect();
    if let Some(&last) = out.last()
        && last > 0.0
    {
        let factor = (n as f64 / rate) / last;
        out.iter_mut().for_each(|d| *d *= factor);
    }
    out
}

/// A trace's timestamps as offsets from its first entry.
pub fn trace_arrivals(timestamps: &[f64]) -> Vec<f64> {
    let first = timestamps.iter().copied().fold(f64::INFINITY, f64::min);
    timestamps.iter().map(|t| t - first).collect()
}

/// Prebuilt requests shared by all levels.
#[derive(Debug)]
pub struct Requests {
    /// JSON body per prompt.
    pub bodies: Vec<Bytes>,
    /// Dataset prompt length per prompt.
    pub prompt_lens: Vec<u32>,
    /// `max_tokens` per prompt.
    pub output_lens: Vec<u32>,
}

/// What one level needs.
pub struct LevelPlan<'a> {
    /// The shared client.
    pub client: &'a Client,
    /// The requests (index `i` is prompt `i`).
    pub requests: &'a Arc<Requests>,
    /// Requests measured in this level.
    pub num_requests: usize,
    /// The concurrency level (cap on requests in flight).
    pub concurrency: u32,
    /// Closed or open loop.
    pub schedule: &'a Schedule,
    /// Warmup requests before the clock starts.
    pub warmup: u32,
    /// Prefix of `x-request-id` headers.
    pub id_prefix: String,
    /// Fires on Ctrl-C.
    pub cancel: &'a CancellationToken,
    /// Counts for the live progress line.
    pub live: &'a LiveLevel,
}

/// What a running level has done so far, shared with the progress line.
#[derive(Debug, Default)]
pub struct LiveLevel {
    /// When the level's clock started (unset during warmup and connection set-up).
    pub started: OnceLock<Instant>,
    /// Measured requests finished.
    pub done: AtomicU64,
    /// Measured requests failed.
    pub errors: AtomicU64,
}

impl LiveLevel {
    /// The progress line: `c=16 warmup`, then `c=16 37/256 requests, 1234 out tok/s, 2 errors`
    /// (tokens are choices messages since the clock started, per second of the level so far).
    pub fn line(&self, concurrency: u32, total: u64, chunks: u64) -> String {
        let Some(started) = self.started.get() else {
            return format!("c={concurrency} warmup");
        };
        let elapsed = started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            chunks as f64 / elapsed
        } else {
            0.0
        };
        let done = self.done.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let s = if errors == 1 { "" } else { "s" };
        format!("c={concurrency} {done}/{total} requests, {rate:.0} out tok/s, {errors} error{s}")
    }
}

/// The raw outcome of one level.
#[derive(Debug)]
pub struct LevelRun {
    /// Records in prompt order.
    pub records: Vec<RequestRecord>,
    /// Wall time from the first dispatch until the last request finished.
    pub duration_s: f64,
    /// Runtime scheduling lag samples (10 ms probe overshoot), seconds.
    pub loop_lag_s: Vec<f32>,
    /// Warmup requests that failed.
    pub warmup_failed: usize,
    /// Wall-clock time (Unix seconds) of the level's clock origin.
    pub start_unix_s: f64,
    /// Connections open and idle when the clock started (see [`Client::preconnect`]).
    pub preopened_connections: u32,
}

/// Run the warmup and the measured requests of one level.
pub async fn run_level(plan: LevelPlan<'_>) -> Result<LevelRun, BenchError> {
    let warmup_failed = if plan.warmup > 0 {
        let order = Arc::new(vec![0u32; plan.warmup as usize]);
        let (tx, rx) = mpsc::unbounded_channel();
        closed_loop(
            &plan,
            order,
            plan.concurrency.min(plan.warmup),
            Instant::now(),
            tx,
            "warmup",
        );
        let records = collect(rx, None).await;
        records.iter().filter(|r| !r.success()).count()
    } else {
        0
    };
    // As many open connections as requests can be in flight, so no measured request pays
    // connection set-up (the warmup alone leaves as many as it ran concurrently).
    let connections = plan.concurrency.min(plan.num_requests as u32);
    let preopened_connections = tokio::select! {
        biased;
        _ = plan.cancel.cancelled() => return Err(BenchError::Cancelled),
        n = plan.client.preconnect(connections) => n,
    };
    let stop_probe = CancellationToken::new();
    let probe = tokio::spawn(lag_probe(stop_probe.clone()));
    plan.client.live_chunks.store(0, Ordering::Relaxed);
    let clock = Instant::now();
    let _ = plan.live.started.set(clock);
    let start_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let (tx, rx) = mpsc::unbounded_channel();
    match plan.schedule {
        Schedule::Closed => {
            let order = Arc::new((0..plan.num_requests as u32).collect());
            closed_loop(&plan, order, plan.concurrency, clock, tx, "r");
        }
        Schedule::Open(arrivals) => {
            let arrivals = arrivals.clone();
            let (client, requests) = (plan.client.clone(), plan.requests.clone());
            let (cancel, prefix, cap) = (
                plan.cancel.clone(),
                plan.id_prefix.clone(),
                plan.concurrency,
            );
            tokio::spawn(open_loop(
                client, requests, arrivals, cap, clock, tx, cancel, prefix,
            ));
        }
    }
    let mut records = collect(rx, Some(plan.live)).await;
    let duration_s = clock.elapsed().as_secs_f64();
    stop_probe.cancel();
    let loop_lag_s = probe.await.unwrap_or_default();
    if plan.cancel.is_cancelled() {
        return Err(BenchError::Cancelled);
    }
    records.sort_by_key(|r| r.index);
    Ok(LevelRun {
        records,
        duration_s,
        loop_lag_s,
        warmup_failed,
        start_unix_s,
        preopened_connections,
    })
}

fn new_record(requests: &Requests, index: u32, arrival_s: f64, ready_s: f64) -> RequestRecord {
    RequestRecord {
        index,
        arrival_s,
        ready_s,
        prompt_tokens: requests.prompt_lens[index as usize],
        requested_output_tokens: requests.output_lens[index as usize],
        ..Default::default()
    }
}

fn closed_loop(
    plan: &LevelPlan<'_>,
    order: Arc<Vec<u32>>,
    workers: u32,
    clock: Instant,
    tx: mpsc::UnboundedSender<RequestRecord>,
    tag: &str,
) {
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..workers.min(order.len() as u32) {
        let (client, requests, order, next, tx) = (
            plan.client.clone(),
            plan.requests.clone(),
            order.clone(),
            next.clone(),
            tx.clone(),
        );
        let (cancel, prefix) = (plan.cancel.clone(), format!("{}{tag}", plan.id_prefix));
        tokio::spawn(async move {
            let mut ready = clock.elapsed().as_secs_f64();
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let Some(&index) = order.get(slot) else { break };
                let mut record = new_record(&requests, index, 0.0, ready);
                let body = requests.bodies[index as usize].clone();
                client
                    .send(
                        &format!("{prefix}{slot}"),
                        body,
                        clock,
                        &mut record,
                        &cancel,
                    )
                    .await;
                ready = clock.elapsed().as_secs_f64();
                if tx.send(record).is_err() {
                    break;
                }
            }
        });
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the spawned loop owns what it uses; a struct would only be unpacked here"
)]
async fn open_loop(
    client: Client,
    requests: Arc<Requests>,
    arrivals: Vec<f64>,
    cap: u32,
    clock: Instant,
    tx: mpsc::UnboundedSender<RequestRecord>,
    cancel: CancellationToken,
    prefix: String,
) {
    let slots = Arc::new(Semaphore::new(cap as usize));
    for (i, &arrival) in arrivals.iter().enumerate() {
        let at = clock + Duration::from_secs_f64(arrival);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        let (permit, ready) = match slots.clone().try_acquire_owned() {
            Ok(permit) => (permit, arrival),
            Err(_) => {
                let permit = tokio::select! {
                    _ = cancel.cancelled() => return,
                    p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
                };
                (permit, clock.elapsed().as_secs_f64())
            }
        };
        let mut record = new_record(&requests, i as u32, arrival, ready);
        let (client, body, tx, cancel) = (
            client.clone(),
            requests.bodies[i].clone(),
            tx.clone(),
            cancel.clone(),
        );
        let id = format!("{prefix}r{i}");
        tokio::spawn(async move {
            client.send(&id, body, clock, &mut record, &cancel).await;
            drop(permit);
            let _ = tx.send(record);
        });
    }
}

async fn collect(
    mut rx: mpsc::UnboundedReceiver<RequestRecord>,
    live: Option<&LiveLevel>,
) -> Vec<RequestRecord> {
    let mut records = Vec::new();
    while let Some(record) = rx.recv().await {
        if let Some(live) = live {
            live.errors
                .fetch_add(u64::from(!record.success()), Ordering::Relaxed);
            live.done.fetch_add(1, Ordering::Relaxed);
        }
        records.push(record);
    }
    records
}

/// Overshoot of a 10 ms sleep, sampled until `stop`: how late the runtime polls tasks.
async fn lag_probe(stop: CancellationToken) -> Vec<f32> {
    let tick = Duration::from_millis(10);
    let mut samples = Vec::new();
    loop {
        let t = Instant::now();
        tokio::select! {
            _ = stop.cancelled() => return samples,
            _ = tokio::time::sleep(tick) => {}
        }
        samples.push(t.elapsed().saturating_sub(tick).as_secs_f32());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_arrivals_end_at_n_over_rate() {
        let a = gamma_arrivals(100, 5.0, 1.0, 0);
        assert_eq!(a.len(), 100);
        assert!((a[99] - 20.0).abs() < 1e-9);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a, gamma_arrivals(100, 5.0, 1.0, 0));
        let constant = gamma_arrivals(4, 2.0, f64::INFINITY, 0);
        assert_eq!(constant, vec![0.5, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn live_line_counts_requests_tokens_and_errors() {
        let live = LiveLevel::default();
        assert_eq!(live.line(16, 256, 0), "c=16 warmup");
        let _ = live.started.set(Instant::now() - Duration::from_secs(2));
        live.done.store(37, Ordering::Relaxed);
        live.errors.store(1, Ordering::Relaxed);
        let line = live.line(16, 256, 2000);
        assert!(line.starts_with("c=16 37/256 requests, "), "{line}");
        assert!(line.ends_with(" out tok/s, 1 error"), "{line}");
        let rate: f64 = line
            .split(", ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((900.0..=1000.0).contains(&rate), "{line}");
    }

    #[test]
    fn trace_offsets_start_at_zero() {
        assert_eq!(trace_arrivals(&[10.0, 10.5, 12.0]), vec![0.0, 0.5, 2.0]);
    }
}
