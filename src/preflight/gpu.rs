//! What `nvidia-smi` and the lock files say about CUDA: the GPUs and the driver's CUDA version,
//! and the CUDA build each lock's wheels need. Parsing only; `facts.rs` runs the programs.

use serde::Serialize;

/// One GPU as `nvidia-smi --query-gpu=name,memory.total,driver_version` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gpu {
    /// The product name (`NVIDIA RTX A5000`).
    pub name: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// The driver version (`550.54.15`).
    pub driver: String,
}

impl Gpu {
    /// Memory in GB (10^9 bytes), the unit cards are sold in.
    pub fn memory_gb(&self) -> f64 {
        self.memory_mib as f64 * 1_048_576.0 / 1e9
    }
}

/// A CUDA version (`12.8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Cuda {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl std::fmt::Display for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Cuda {
    /// Parses `12.8` or `12.8.90` (extra parts ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
        Some(Self { major, minor })
    }

    /// The oldest Linux driver NVIDIA lists for this CUDA release, when Forge knows it (CUDA
    /// Toolkit release notes, table 3: 12.8 -> 570.26, 13.0 -> 580.65).
    pub fn min_driver(self) -> Option<&'static str> {
        match (self.major, self.minor) {
            (12, 8) => Some("570"),
            (13, 0) => Some("580"),
            _ => None,
        }
    }
}

/// The GPUs and the driver's CUDA version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuReport {
    /// The GPUs this process may use (after `CUDA_VISIBLE_DEVICES`).
    pub gpus: Vec<Gpu>,
    /// The newest CUDA the driver supports (`CUDA Version:` in `nvidia-smi`'s header).
    pub driver_cuda: Option<Cuda>,
}

/// Parses the CSV of `nvidia-smi --query-gpu=name,memory.total,driver_version
/// --format=csv,noheader,nounits`.
pub fn parse_query(csv: &str) -> Result<Vec<Gpu>, String> {
    csv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            match fields.as_slice() {
                [name, memory, driver] => Ok(Gpu {
                    name: name.to_string(),
                    memory_mib: memory
                        .parse()
                        .map_err(|_| format!("unexpected memory `{memory}` in `{line}`"))?,
                    driver: driver.to_string(),
                }),
                _ => Err(format!("unexpected `nvidia-smi` line `{line}`")),
            }
        })
        .collect()
}

/// The `CUDA Version: 12.4` of `nvidia-smi`'s header.
pub fn parse_driver_cuda(header: &str) -> Option<Cuda> {
    let rest = header.split("CUDA Version:").nth(1)?;
    Cuda::parse(rest.split_whitespace().next()?)
}

/// Keeps the GPUs `CUDA_VISIBLE_DEVICES` names by index (unset: all; UUIDs: all, unchecked).
pub fn visible(gpus: Vec<Gpu>, cuda_visible_devices: Option<&str>) -> Vec<Gpu> {
    let Some(list) = cuda_visible_devices else {
        return gpus;
    };
    let indices: Option<Vec<usize>> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect();
    match indices {
        Some(indices) => indices
            .into_iter()
            .filter_map(|i| gpus.get(i).cloned())
            .collect(),
        None => gpus,
    }
}

/// What a lock file needs from the machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockNeeds {
    /// `#forge: python X.Y`.
    pub python: Option<String>,
    /// The CUDA runtime its wheels pin (`nvidia-cuda-runtime-cu12==12.8.90` -> 12.8), if any.
    pub cuda: Option<Cuda>,
}

/// Reads a lock's needs from its text.
pub fn lock_needs(text: &str) -> LockNeeds {
    let mut needs = LockNeeds {
        python: None,
        cuda: None,
    };
    for line in text.lines().map(str::trim) {
        if let Some(version) = line.strip_prefix("#forge: python ") {
            needs.python = Some(version.trim().to_string());
        }
        let pin = line.split('#').next().unwrap_or_default().trim();
        if let Some((name, version)) = pin.split_once("==") {
            let name = name.trim().to_ascii_lowercase().replace('_', "-");
            if name == "nvidia-cuda-runtime" || name.starts_with("nvidia-cuda-runtime-cu") {
                needs.cuda = Cuda::parse(version.split(';').next().unwrap_or_default());
            }
        }
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "+-----------------------------------------------------------------------------+\n| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |\n";

    #[test]
    fn nvidia_smi_output_parses() {
        let gpus =
            parse_query("NVIDIA RTX A5000, 24564, 550.54.15\nNVIDIA RTX A5000, 24564, 550.54.15\n")
                .unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].memory_mib, 24564);
        assert!((gpus[0].memory_gb() - 25.757).abs() < 0.01);
        assert_eq!(
            parse_driver_cuda(HEADER),
            Some(Cuda {
                major: 12,
                minor: 4
            })
        );
        assert!(parse_query("garbage").is_err());
        assert_eq!(parse_driver_cuda("no header"), None);
    }

    #[test]
    fn cuda_visible_devices_selects_by_index() {
        let gpus = parse_query("A, 1, d\nB, 2, d\n").unwrap();
        assert_eq!(visible(gpus.clone(), Some("1"))[0].name, "B");
        assert!(visible(gpus.clone(), Some("")).is_empty());
        assert_eq!(visible(gpus.clone(), Some("GPU-1234")).len(), 2);
        assert_eq!(visible(gpus, None).len(), 2);
    }

    #[test]
    fn locks_name_their_python_and_cuda() {
        let cu12 = "#forge: python 3.11\nnvidia-cuda-runtime-cu12==12.8.90\n    # via torch\ntorch==2.10.0\n";
        let needs = lock_needs(cu12);
        assert_eq!(needs.python.as_deref(), Some("3.11"));
        assert_eq!(needs.cuda, Cuda::parse("12.8"));
        assert_eq!(
            lock_needs("nvidia-cuda-runtime==13.0.96\n").cuda,
            Cuda::parse("13.0")
        );
        assert_eq!(lock_needs("lm-eval==0.4.13\n").cuda, None);
        assert_eq!(Cuda::parse("13.0").unwrap().min_driver(), Some("580"));
    }
}
