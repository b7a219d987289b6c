//! A level run more than once (`repeats`): the runs joined into one, so vLLM's statistics are
//! computed over the pooled requests exactly as for a single run.
//!
//! Each run has its own clock starting at 0. Joining puts them end to end: run `k`'s request
//! times are shifted by the durations of the runs before it, so the pooled duration is the sum
//! of the measured durations (the gaps between runs, spent on warmup and connection set-up, are
//! left out) and the per-second peaks and the in-flight peak never overlap two runs.

use super::schedule::LevelRun;

/// Join the runs of one level. One run comes back unchanged (no `repeat` tag, no offset).
pub fn pool(runs: Vec<LevelRun>) -> LevelRun {
    let tag = runs.len() > 1;
    let mut pooled = LevelRun {
        records: Vec::new(),
        duration_s: 0.0,
        loop_lag_s: Vec::new(),
        warmup_failed: 0,
        start_unix_s: runs.first().map_or(0.0, |r| r.start_unix_s),
        preopened_connections: runs
            .iter()
            .map(|r| r.preopened_connections)
            .min()
            .unwrap_or(0),
    };
    for (k, run) in runs.into_iter().enumerate() {
        let offset = pooled.duration_s;
        pooled.records.extend(run.records.into_iter().map(|mut r| {
            if tag {
                r.arrival_s += offset;
                r.ready_s += offset;
                r.start_s += offset;
                r.repeat = Some(u32::try_from(k).expect("repeats is a u32"));
            }
            r
        }));
        pooled.duration_s += run.duration_s;
        pooled.loop_lag_s.extend(run.loop_lag_s);
        pooled.warmup_failed += run.warmup_failed;
    }
    pooled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::bench::RequestRecord;

    fn run(duration_s: f64, starts: &[f64], preopened: u32) -> LevelRun {
        LevelRun {
            records: starts
                .iter()
                .enumerate()
                .map(|(i, &s)| RequestRecord {
                    index: i as u32,
                    start_s: s,
                    ready_s: s,
                    ..Default::default()
                })
                .collect(),
            duration_s,
            loop_lag_s: vec![0.001],
            warmup_failed: 1,
            start_unix_s: 100.0 + duration_s,
            preopened_connections: preopened,
        }
    }

    #[test]
    fn one_run_is_unchanged() {
        let pooled = pool(vec![run(2.0, &[0.0, 1.0], 4)]);
        assert_eq!(pooled.duration_s, 2.0);
        assert_eq!(pooled.records[1].start_s, 1.0);
        assert!(pooled.records.iter().all(|r| r.repeat.is_none()));
        assert_eq!(pooled.preopened_connections, 4);
    }

    #[test]
    fn runs_are_put_end_to_end_and_tagged() {
        let pooled = pool(vec![run(2.0, &[0.0, 1.0], 4), run(3.0, &[0.5], 3)]);
        assert_eq!(pooled.duration_s, 5.0);
        assert_eq!(pooled.records.len(), 3);
        assert_eq!(pooled.records[2].start_s, 2.5);
        assert_eq!(pooled.records[2].ready_s, 2.5);
        assert_eq!(pooled.records[2].index, 0);
        let tags: Vec<_> = pooled.records.iter().map(|r| r.repeat).collect();
        assert_eq!(tags, [Some(0), Some(0), Some(1)]);
        assert_eq!(
            (
                pooled.warmup_failed,
                pooled.loop_lag_s.len(),
                pooled.start_unix_s
            ),
            (2, 2, 102.0)
        );
        assert_eq!(pooled.preopened_connections, 3);
    }
}
