//! The measured GPU must be the priced GPU: a cost computed from throughput measured on one
//! machine and the rental price of another answers nothing, unless the profile declares itself a
//! rehearsal (then every result carries [`super::settings::REHEARSAL_BANNER`] instead).

use crate::results::bench::BenchSummary;

/// A bench summary measured on something other than the priced GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The bench label (`awq`).
    pub label: String,
    /// The summary file.
    pub file: String,
    /// What its metadata says it ran on (`NVIDIA RTX 4090`, or `no GPU (CPU ...)`).
    pub measured: String,
}

/// The first bench summary whose GPU (its `metadata.gpu.name`) is not `priced`.
pub fn first_mismatch<'a>(
    priced: &str,
    bench: impl IntoIterator<Item = (&'a String, &'a (String, BenchSummary))>,
) -> Option<Mismatch> {
    bench.into_iter().find_map(|(label, (file, summary))| {
        let meta = &summary.metadata.common;
        let measured = match &meta.gpu {
            Some(gpu) if same_gpu(&gpu.name, priced) => return None,
            Some(gpu) => gpu.name.clone(),
            None if meta.cpu.is_empty() => "no GPU (CPU unknown)".to_string(),
            None => format!("no GPU (CPU {})", meta.cpu),
        };
        Some(Mismatch {
            label: label.clone(),
            file: file.clone(),
            measured,
        })
    })
}

/// True when the driver's name (`NVIDIA RTX A5000`) names the priced GPU (`RTX A5000`):
/// compared without case, spaces, dashes and the vendor prefixes `NVIDIA` and `GeForce`.
pub fn same_gpu(measured: &str, priced: &str) -> bool {
    let key = |name: &str| -> String {
        let lower = name.to_lowercase();
        let stripped = lower.replace("nvidia", "").replace("geforce", "");
        stripped.chars().filter(|c| c.is_alphanumeric()).collect()
    };
    let (measured, priced) = (key(measured), key(priced));
    !priced.is_empty() && measured == priced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_names_match_the_priced_name() {
        assert!(same_gpu("NVIDIA RTX A5000", "RTX A5000"));
        assert!(same_gpu("NVIDIA GeForce RTX 4090", "RTX 4090"));
        assert!(same_gpu("NVIDIA RTX A5000", "rtx-a5000"));
        assert!(!same_gpu("NVIDIA RTX A6000", "RTX A5000"));
        assert!(!same_gpu("NVIDIA RTX A5000", ""));
    }
}
