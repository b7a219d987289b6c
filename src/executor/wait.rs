//! Waits that also end on cancellation: exclusive resource locks and job slots. A step (or a
//! service starting) that waits here stops waiting the moment the run is interrupted or, without
//! `--keep-going`, another step fails (turborepo's walker waits the same way).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

/// One mutex per exclusive resource the pipeline names (`resources = ["gpu"]`).
pub type Resources = BTreeMap<String, Arc<Mutex<()>>>;

/// The wait ended because the run is stopping, not because the lock or slot became free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run stopped while waiting")]
pub struct Halted;

/// Locks `names` in sorted order (one global order, so two lockers never wait on each other in a
/// cycle); names the pipeline does not declare are skipped. The guards release on drop.
pub async fn lock_resources(
    resources: &Resources,
    names: &[String],
    halt: &CancellationToken,
) -> Result<Vec<OwnedMutexGuard<()>>, Halted> {
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    names.dedup();
    let mut guards = Vec::new();
    for name in names {
        let Some(lock) = resources.get(name) else {
            continue;
        };
        tokio::select! {
            guard = lock.clone().lock_owned() => guards.push(guard),
            () = halt.cancelled() => return Err(Halted),
        }
    }
    Ok(guards)
}

/// One of the `--jobs` slots.
pub async fn job_slot<'a>(
    jobs: &'a Semaphore,
    halt: &CancellationToken,
) -> Result<SemaphorePermit<'a>, Halted> {
    tokio::select! {
        // The semaphore is never closed; a closed one would mean the run is over.
        permit = jobs.acquire() => permit.map_err(|_| Halted),
        () = halt.cancelled() => Err(Halted),
    }
}

/// Locks `mutex`, or ends when `halt` fires first.
pub async fn lock<'a, T>(
    mutex: &'a Mutex<T>,
    halt: &CancellationToken,
) -> Result<tokio::sync::MutexGuard<'a, T>, Halted> {
    tokio::select! {
        guard = mutex.lock() => Ok(guard),
        () = halt.cancelled() => Err(Halted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Long enough that only a wait that ignores cancellation reaches it.
    const NEVER: Duration = Duration::from_secs(20);

    fn resources(names: &[&str]) -> Resources {
        names
            .iter()
            .map(|n| (n.to_string(), Arc::new(Mutex::new(()))))
            .collect()
    }

    #[tokio::test]
    async fn a_resource_wait_ends_on_cancellation() {
        let resources = resources(&["gpu"]);
        let _held = resources["gpu"].clone().lock_owned().await;
        let halt = CancellationToken::new();
        let waiter = {
            let (resources, halt) = (resources.clone(), halt.clone());
            tokio::spawn(async move {
                lock_resources(&resources, &["gpu".into()], &halt)
                    .await
                    .err()
            })
        };
        tokio::task::yield_now().await;
        halt.cancel();
        let ended = tokio::time::timeout(NEVER, waiter).await;
        assert_eq!(
            ended.expect("the wait ended").expect("joined"),
            Some(Halted)
        );
    }

    #[tokio::test]
    async fn a_job_slot_wait_ends_on_cancellation() {
        let jobs = Arc::new(Semaphore::new(1));
        let _held = jobs.clone().acquire_owned().await.expect("open");
        let halt = CancellationToken::new();
        let waiter = {
            let (jobs, halt) = (jobs.clone(), halt.clone());
            tokio::spawn(async move { job_slot(&jobs, &halt).await.err() })
        };
        tokio::task::yield_now().await;
        halt.cancel();
        let ended = tokio::time::timeout(NEVER, waiter).await;
        assert_eq!(
            ended.expect("the wait ended").expect("joined"),
            Some(Halted)
        );
    }

    #[tokio::test]
    async fn free_resources_lock_in_one_order_and_release_on_drop() {
        let resources = resources(&["a", "b"]);
        let halt = CancellationToken::new();
        let names = [
            "b".to_string(),
            "a".to_string(),
            "b".to_string(),
            "x".to_string(),
        ];
        let guards = lock_resources(&resources, &names, &halt)
            .await
            .expect("free");
        assert_eq!(guards.len(), 2, "duplicates once, undeclared names skipped");
        assert!(resources["a"].try_lock().is_err());
        drop(guards);
        assert!(resources["a"].try_lock().is_ok() && resources["b"].try_lock().is_ok());
    }
}
