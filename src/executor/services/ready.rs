//! Readiness: the address a probe checks (busy before the start means another server), and the
//! wait until the probe answers, the process exits, the timeout passes or Ctrl-C.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::ReadinessError;
use crate::manifest::Probe;
use crate::steps::process::Group;

pub(super) fn probe_address(probe: &Probe) -> Option<String> {
    match probe {
        Probe::Tcp(address) => Some(address.clone()),
        Probe::Http(url) => {
            let rest = url.split_once("://")?.1;
            let host = rest.split('/').next()?;
            Some(if host.contains(':') {
                host.to_string()
            } else {
                format!("{host}:80")
            })
        }
        Probe::Log(_) => None,
    }
}

/// A 2xx answer whose body contains `contains` (when given).
async fn http_ready(client: &reqwest::Client, url: &str, contains: Option<&str>) -> bool {
    let Ok(response) = client.get(url).send().await else {
        return false;
    };
    if !response.status().is_success() {
        return false;
    }
    match contains {
        Some(text) => response.text().await.is_ok_and(|body| body.contains(text)),
        None => true,
    }
}

pub(super) async fn wait_ready(
    group: &mut Group,
    ready: &crate::manifest::Ready,
    log: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<(), ReadinessError> {
    let timeout = ready.timeout;
    let deadline = Instant::now() + timeout;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(ReadinessError::Client)?;
    loop {
        if let Ok(Some(status)) = group.child.try_wait() {
            return Err(ReadinessError::Exited(status));
        }
        if cancel.is_cancelled() {
            return Err(ReadinessError::Cancelled);
        }
        let ok = match &ready.probe {
            Probe::Http(url) => http_ready(&client, url, ready.contains.as_deref()).await,
            Probe::Tcp(address) => tokio::net::TcpStream::connect(address).await.is_ok(),
            Probe::Log(text) => std::fs::read(log)
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains(text.as_str())),
        };
        if ok {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ReadinessError::TimedOut(timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
