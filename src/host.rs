//! Facts about the machine Forge runs on: operating system, architecture, cores, memory and the
//! CPU's instruction-set extensions that decide which engine kernels can run here.
//!
//! Read once per process ([`Host::detect`]); templates see them as `platform.*`, preflight prints
//! them, and result metadata names the CPU. `FORGE_EMULATE_CPU=avx2` (tests and CI only) hides the
//! AVX-512 extensions, so the AVX2 path of the rehearsal can be proven on an AVX-512 machine: the
//! serve launcher then loads vLLM's AVX2 kernel library, as vLLM does on such a CPU.

use serde::Serialize;

/// The variable that makes Forge (and the serve launcher) behave as on an older CPU.
pub const EMULATE_CPU_VAR: &str = "FORGE_EMULATE_CPU";

/// What an instruction-set level means for engines that pick kernels by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsaLevel {
    /// x86-64 with AVX-512 F/BW/DQ/VL (the set PyTorch's `_is_avx512_supported` tests).
    Avx512,
    /// x86-64 with AVX2 but not the whole AVX-512 set.
    Avx2,
    /// x86-64 without AVX2.
    X86Baseline,
    /// 64-bit Arm (NEON is always there).
    Arm64,
    /// Anything else.
    Other,
}

impl IsaLevel {
    /// The name used in templates (`platform.isa`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            IsaLevel::Avx512 => "avx512",
            IsaLevel::Avx2 => "avx2",
            IsaLevel::X86Baseline => "x86-64",
            IsaLevel::Arm64 => "arm64",
            IsaLevel::Other => "other",
        }
    }
}

/// The machine, as far as Forge's decisions go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Host {
    /// `linux`, `macos`, ... (Rust's `std::env::consts::OS`).
    pub os: String,
    /// `x86_64`, `aarch64`, ... (Rust's `std::env::consts::ARCH`).
    pub arch: String,
    /// Logical CPUs this process may use.
    pub cpus: usize,
    /// Total memory in bytes, when the system says.
    pub memory_bytes: Option<u64>,
    /// CPU model name.
    pub cpu_model: String,
    /// Instruction-set extensions relevant to engines (`avx2`, `avx512f`, `avx512_bf16`, `amx_bf16`,
    /// ...), after emulation.
    pub cpu_features: Vec<String>,
    /// The level engines choose their kernels by, after emulation.
    pub isa: IsaLevel,
    /// The level `FORGE_EMULATE_CPU` asked for, when it is set.
    pub emulated: Option<String>,
}

/// The extensions Forge reports, in `/proc/cpuinfo`'s names; everything else is noise for its
/// decisions.
const RELEVANT: &[&str] = &[
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512cd",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
];

/// PyTorch's `is_avx512_supported` (aten/src/ATen/cpu/Utils.cpp) asks for these four.
const AVX512_SET: &[&str] = &["avx512f", "avx512bw", "avx512dq", "avx512vl"];

impl Host {
    /// Reads the system once; `FORGE_EMULATE_CPU` applies.
    pub fn detect() -> Self {
        let emulate = std::env::var(EMULATE_CPU_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty());
        Self::from_parts(
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            platform::memory_bytes(),
            platform::cpu_model(),
            platform::cpu_flags(),
            emulate.as_deref(),
        )
    }

    /// Builds the facts from raw readings (tests pass their own).
    pub fn from_parts(
        os: &str,
        arch: &str,
        cpus: usize,
        memory_bytes: Option<u64>,
        cpu_model: Option<String>,
        flags: Vec<String>,
        emulate: Option<&str>,
    ) -> Self {
        let mut features: Vec<String> = RELEVANT
            .iter()
            .filter(|name| flags.iter().any(|flag| flag == *name))
            .map(|name| name.to_string())
            .collect();
        let emulated = emulate.map(|level| level.trim().to_ascii_lowercase());
        if emulated.as_deref() == Some("avx2") {
            features.retain(|f| !f.starts_with("avx512") && !f.starts_with("amx"));
        }
        let has = |name: &str| features.iter().any(|f| f == name);
        let isa = match arch {
            "x86_64" if AVX512_SET.iter().all(|f| has(f)) => IsaLevel::Avx512,
            "x86_64" if has("avx2") => IsaLevel::Avx2,
            "x86_64" => IsaLevel::X86Baseline,
            "aarch64" => IsaLevel::Arm64,
            _ => IsaLevel::Other,
        };
        Self {
            os: os.to_string(),
            arch: arch.to_string(),
            cpus,
            memory_bytes,
            cpu_model: cpu_model.unwrap_or_else(|| arch.to_string()),
            cpu_features: features,
            isa,
            emulated,
        }
    }

    /// The CPU model name alone (result metadata), without reading the rest.
    pub fn cpu_model() -> String {
        platform::cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_string())
    }

    /// Whether the CPU has an extension (after emulation).
    pub fn has(&self, feature: &str) -> bool {
        self.cpu_features.iter().any(|f| f == feature)
    }

    /// The `platform` object templates see.
    pub fn template_facts(&self) -> serde_json::Value {
        serde_json::json!({
            "os": self.os,
            "arch": self.arch,
            "cpus": self.cpus,
            "isa": self.isa.name(),
            "cpu_features": self.cpu_features,
        })
    }
}

/// The `/proc` readings on Linux; systems other than Linux and macOS fall back to what the
/// standard library knows.
#[cfg(target_os = "linux")]
mod platform {
    pub fn memory_bytes() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    pub fn cpu_model() -> Option<String> {
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        super::field(&text, &["model name", "Model", "CPU part"])
    }

    pub fn cpu_flags() -> Vec<String> {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| super::field(&text, &["flags", "Features"]))
            .map(|flags| flags.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// `sysctl` readings on macOS (no `/proc` there): `hw.memsize`, `machdep.cpu.brand_string` and
/// the `hw.optional.*` feature flags.
#[cfg(target_os = "macos")]
mod platform {
    /// `sysctl NAME...` output (`name: value` lines); an unknown name is left out, not an error.
    fn sysctl(names: &[&str]) -> Option<String> {
        let output = std::process::Command::new("/usr/sbin/sysctl")
            .args(names)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn memory_bytes() -> Option<u64> {
        super::field(&sysctl(&["hw.memsize"])?, &["hw.memsize"])?
            .parse()
            .ok()
    }

    pub fn cpu_model() -> Option<String> {
        let name = "machdep.cpu.brand_string";
        super::field(&sysctl(&[name])?, &[name])
    }

    pub fn cpu_flags() -> Vec<String> {
        sysctl(&["hw.optional"])
            .map(|text| super::sysctl_flags(&text))
            .unwrap_or_default()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod platform {
    pub fn memory_bytes() -> Option<u64> {
        None
    }

    pub fn cpu_model() -> Option<String> {
        None
    }

    pub fn cpu_flags() -> Vec<String> {
        Vec::new()
    }
}

/// macOS's `hw.optional.*` names for the extensions in [`RELEVANT`], which uses Linux's
/// `/proc/cpuinfo` names (Apple's list: "Determining instruction set characteristics" in the
/// `sysctlbyname` documentation). Intel Macs name AVX and AVX2 `avx1_0` and `avx2_0`.
const SYSCTL_NAMES: &[(&str, &str)] = &[
    ("hw.optional.avx1_0", "avx"),
    ("hw.optional.avx2_0", "avx2"),
    ("hw.optional.fma", "fma"),
    ("hw.optional.f16c", "f16c"),
    ("hw.optional.avx512f", "avx512f"),
    ("hw.optional.avx512bw", "avx512bw"),
    ("hw.optional.avx512dq", "avx512dq"),
    ("hw.optional.avx512vl", "avx512vl"),
    ("hw.optional.avx512cd", "avx512cd"),
    ("hw.optional.AdvSIMD", "asimd"),
    ("hw.optional.neon", "asimd"),
    ("hw.optional.arm.FEAT_DotProd", "asimddp"),
    ("hw.optional.arm.FEAT_BF16", "bf16"),
    ("hw.optional.arm.FEAT_I8MM", "i8mm"),
    ("hw.optional.arm.FEAT_SVE", "sve"),
    ("hw.optional.arm.FEAT_SVE2", "sve2"),
];

/// The extensions a `sysctl hw.optional` listing reports as present (`name: 1`), in Linux's
/// names.
#[cfg_attr(
    not(target_os = "macos"),
    allow(
        dead_code,
        reason = "only macOS reads sysctl; the tests run it everywhere"
    )
)]
fn sysctl_flags(text: &str) -> Vec<String> {
    let mut flags: Vec<String> = Vec::new();
    for (key, value) in text.lines().filter_map(|line| line.split_once(':')) {
        let Some((_, flag)) = SYSCTL_NAMES.iter().find(|(name, _)| *name == key.trim()) else {
            continue;
        };
        if value.trim() == "1" && !flags.iter().any(|f| f == flag) {
            flags.push(flag.to_string());
        }
    }
    flags
}

/// The value of the first `name : value` line whose name is one of `names` (`/proc/cpuinfo`,
/// `sysctl` output).
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn field(text: &str, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim() == *name)
            .map(|(_, value)| value.trim().to_string())
            .filter(|value| !value.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &str) -> Vec<String> {
        list.split_whitespace().map(str::to_string).collect()
    }

    const AVX512_BOX: &str =
        "fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_vnni";

    #[test]
    fn avx512_needs_the_four_extensions_pytorch_tests() {
        let host = Host::from_parts("linux", "x86_64", 2, None, None, flags(AVX512_BOX), None);
        assert_eq!(host.isa, IsaLevel::Avx512);
        assert!(host.has("avx512_bf16"));
        let partial = Host::from_parts(
            "linux",
            "x86_64",
            2,
            None,
            None,
            flags("avx avx2 avx512f"),
            None,
        );
        assert_eq!(partial.isa, IsaLevel::Avx2);
    }

    #[test]
    fn emulating_avx2_hides_avx512_and_amx() {
        let host = Host::from_parts(
            "linux",
            "x86_64",
            2,
            None,
            None,
            flags(&format!("{AVX512_BOX} amx_bf16")),
            Some("AVX2"),
        );
        assert_eq!(host.isa, IsaLevel::Avx2);
        assert!(!host.has("avx512f") && !host.has("amx_bf16") && host.has("avx2"));
        assert_eq!(host.emulated.as_deref(), Some("avx2"));
    }

    #[test]
    fn arm_and_baseline_levels() {
        let arm = Host::from_parts("linux", "aarch64", 4, None, None, flags("fp asimd"), None);
        assert_eq!((arm.isa, arm.has("asimd")), (IsaLevel::Arm64, true));
        let old = Host::from_parts("linux", "x86_64", 1, None, None, flags("sse2 avx"), None);
        assert_eq!(old.isa, IsaLevel::X86Baseline);
        assert_eq!(old.template_facts()["isa"], "x86-64");
    }

    /// `sysctl hw.optional` as an Apple M2 prints it, trimmed (an M1 has FEAT_BF16 and FEAT_I8MM 0).
    const M2_SYSCTL: &str = "hw.optional.arm.FEAT_DotProd: 1
hw.optional.arm.FEAT_BF16: 1
hw.optional.arm.FEAT_I8MM: 1
hw.optional.arm.FEAT_SME: 0
hw.optional.floatingpoint: 1
hw.optional.neon: 1
hw.optional.AdvSIMD: 1
hw.optional.armv8_crc32: 1
";

    /// `sysctl hw.optional` as an Intel Mac with AVX-512 (Xeon W) prints it, trimmed.
    const INTEL_MAC_SYSCTL: &str = "hw.optional.sse4_2: 1
hw.optional.avx1_0: 1
hw.optional.fma: 1
hw.optional.avx2_0: 1
hw.optional.avx512f: 1
hw.optional.avx512cd: 1
hw.optional.avx512dq: 1
hw.optional.avx512bw: 1
hw.optional.avx512vl: 1
hw.optional.avx512ifma: 1
";

    #[test]
    fn sysctl_flags_on_apple_silicon_and_intel_macs() {
        let m2 = sysctl_flags(M2_SYSCTL);
        assert_eq!(m2, ["asimddp", "bf16", "i8mm", "asimd"]);
        let m1 = sysctl_flags(
            &M2_SYSCTL
                .replace("FEAT_BF16: 1", "FEAT_BF16: 0")
                .replace("FEAT_I8MM: 1", "FEAT_I8MM: 0"),
        );
        let host = Host::from_parts("macos", "aarch64", 8, None, None, m1, None);
        assert_eq!(host.isa, IsaLevel::Arm64);
        assert!(host.has("asimd") && !host.has("bf16") && !host.has("i8mm"));

        let intel = sysctl_flags(INTEL_MAC_SYSCTL);
        let host = Host::from_parts("macos", "x86_64", 8, None, None, intel, None);
        assert_eq!(host.isa, IsaLevel::Avx512);
        assert!(host.has("avx") && host.has("fma") && host.has("avx512cd"));
        let avx2 = sysctl_flags(&INTEL_MAC_SYSCTL.replace("avx512f: 1", "avx512f: 0"));
        let host = Host::from_parts("macos", "x86_64", 8, None, None, avx2, None);
        assert_eq!(host.isa, IsaLevel::Avx2);
    }

    #[test]
    fn sysctl_memory_and_brand_string() {
        let text = "hw.memsize: 17179869184\nmachdep.cpu.brand_string: Apple M2\n";
        assert_eq!(field(text, &["hw.memsize"]).as_deref(), Some("17179869184"));
        let intel = "machdep.cpu.brand_string: Intel(R) Xeon(R) W-3223 CPU @ 3.50GHz\n";
        assert_eq!(
            field(intel, &["machdep.cpu.brand_string"]).as_deref(),
            Some("Intel(R) Xeon(R) W-3223 CPU @ 3.50GHz")
        );
    }

    #[test]
    fn cpuinfo_fields_on_x86_and_arm() {
        let x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu avx2\n";
        assert_eq!(
            field(x86, &["model name"]).as_deref(),
            Some("AMD EPYC 7B12")
        );
        assert_eq!(
            field(x86, &["flags", "Features"]).as_deref(),
            Some("fpu avx2")
        );
        let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm\nCPU part\t: 0xd0c\n";
        assert_eq!(
            field(arm, &["flags", "Features"]).as_deref(),
            Some("fp asimd evtstrm")
        );
    }
}
