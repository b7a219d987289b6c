//! The `[remote]` table of a profile: where `forge run --remote` rents its machine. Raw (as
//! written, with spans) and validated ([`Remote`]); profiles that `extends` another overlay it
//! key by key, the later profile winning, as parameters do.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::manifest::diagnostics::{ManifestDiagnostic, ManifestErrors, SourceFile};
use crate::manifest::profiles::Overlay;

/// The only engine Forge drives today.
pub const ENGINE: &str = "skypilot";
/// SkyPilot's infra when a profile names none.
pub const DEFAULT_INFRA: &str = "runpod";
/// Disk in GB when a profile names none: two model copies, two CUDA environments, a Rust build.
pub const DEFAULT_DISK_GB: u32 = 200;
/// Idle minutes before SkyPilot tears a forgotten cluster down.
pub const DEFAULT_IDLE_MINUTES: u32 = 30;

/// `[remote]` as written in a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemote {
    /// The execution engine (`skypilot`).
    pub engine: Option<Spanned<String>>,
    /// SkyPilot's `infra`: `cloud`, `cloud/region` or `cloud/region/zone` (default `runpod`).
    pub infra: Option<Spanned<String>>,
    /// SkyPilot's `accelerators`: `NAME:COUNT` (for example `RTXA5000:1`).
    pub accelerators: Option<Spanned<String>>,
    /// Disk size in GB.
    pub disk_size: Option<Spanned<i64>>,
    /// The most the machine may cost per hour, in USD (SkyPilot's `max_hourly_cost`).
    pub max_hourly_cost: Option<Spanned<f64>>,
    /// The safety net: SkyPilot tears the cluster down after this long idle.
    pub autostop: Option<Spanned<RawAutostop>>,
    /// SkyPilot's `image_id` (for example `docker:nvidia/cuda:12.8.1-devel-ubuntu22.04`).
    pub image: Option<Spanned<String>>,
    /// Names of environment variables forwarded as SkyPilot secrets (values never written).
    pub secrets: Option<Vec<Spanned<String>>>,
}

/// `autostop = { idle_minutes = 30, down = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutostop {
    /// Idle minutes before the cluster goes.
    pub idle_minutes: Option<i64>,
    /// Tear down (not stop): must be `true`.
    pub down: Option<bool>,
}

/// A validated `[remote]` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remote {
    /// SkyPilot's `infra`.
    pub infra: String,
    /// Accelerator name (`RTXA5000`).
    pub accelerator: String,
    /// How many of them.
    pub count: u32,
    /// Disk size in GB.
    pub disk_size: u32,
    /// Upper bound of the hourly price, USD.
    pub max_hourly_cost: f64,
    /// Idle minutes before SkyPilot tears the cluster down.
    pub idle_minutes: u32,
    /// SkyPilot's `image_id`, if any.
    pub image: Option<String>,
    /// Names of the environment variables forwarded as secrets.
    pub secrets: Vec<String>,
}

/// One key's value and the profile file it came from.
struct Found<'a, T> {
    value: &'a Spanned<T>,
    file: &'a SourceFile,
}

impl<T> Found<'_, T> {
    fn error(&self, message: impl Into<String>, help: impl Into<String>) -> ManifestDiagnostic {
        ManifestDiagnostic::at(self.file, self.value.span(), message)
            .label("here")
            .help(help)
    }
}

/// The profile chain's `[remote]` tables overlaid and validated; `None` when no profile has one.
pub fn resolve(overlay: Overlay, errors: &mut ManifestErrors) -> Option<Remote> {
    // The nearest profile with a `[remote]` table: where a missing key is reported.
    let (_, nearest) = overlay.nearest(|p| p.remote.as_ref())?;
    // Each key from the nearest profile whose `[remote]` sets it.
    macro_rules! found {
        ($field:ident) => {
            overlay
                .nearest(|p| p.remote.as_ref()?.$field.as_ref())
                .map(|(value, file)| Found { value, file })
        };
    }
    let before = errors.items.len();
    if let Some(engine) = found!(engine)
        && engine.value.get_ref() != ENGINE
    {
        errors.push(engine.error(
            format!("unknown remote engine `{}`", engine.value.get_ref()),
            format!("the only engine is `{ENGINE}`"),
        ));
    }
    let infra = found!(infra).map_or(Some(DEFAULT_INFRA.to_string()), |f| infra_of(&f, errors));
    let accelerators = match found!(accelerators) {
        Some(f) => accelerators_of(&f, errors),
        None => {
            errors.push(missing(
                nearest,
                "accelerators",
                "accelerators = \"RTXA5000:1\"",
            ));
            None
        }
    };
    let disk_size = found!(disk_size).map_or(Some(DEFAULT_DISK_GB), |f| {
        positive_u32(&f, "disk_size", "a size in GB, for example `200`", errors)
    });
    let max_hourly_cost = match found!(max_hourly_cost) {
        Some(f) => hourly_cost_of(&f, errors),
        None => {
            errors.push(missing(nearest, "max_hourly_cost", "max_hourly_cost = 1.0"));
            None
        }
    };
    let idle_minutes =
        found!(autostop).map_or(Some(DEFAULT_IDLE_MINUTES), |f| autostop_of(&f, errors));
    let image = found!(image).and_then(|f| {
        let text = f.value.get_ref().trim();
        if text.is_empty() {
            errors.push(f.error("`image` is empty", "remove it to use SkyPilot's default image, or name one such as `docker:nvidia/cuda:12.8.1-devel-ubuntu22.04`"));
        }
        Some(text.to_string())
    });
    let secrets = overlay
        .nearest(|p| p.remote.as_ref()?.secrets.as_ref())
        .map_or_else(Vec::new, |(names, file)| secrets_of(names, file, errors));
    if errors.items.len() != before {
        return None;
    }
    let (accelerator, count) = accelerators?;
    Some(Remote {
        infra: infra?,
        accelerator,
        count,
        disk_size: disk_size?,
        max_hourly_cost: max_hourly_cost?,
        idle_minutes: idle_minutes?,
        image,
        secrets,
    })
}

fn missing(file: &SourceFile, key: &str, example: &str) -> ManifestDiagnostic {
    let span = header_span(&file.text);
    ManifestDiagnostic::at(file, span, format!("`[remote]` has no `{key}`"))
        .label("this table")
        .help(format!("add `{example}` (see docs/remote.md)"))
}

/// Where the `[remote]` header is written in a profile (for problems that concern the whole
/// table); the start of the file when the table is written inline.
fn header_span(text: &str) -> Range<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("[remote]") {
            let start = offset + indent;
            return start..start + "[remote]".len();
        }
        offset += line.len();
    }
    0..0
}

fn infra_of(f: &Found<String>, errors: &mut ManifestErrors) -> Option<String> {
    let infra = f.value.get_ref();
    let parts: Vec<&str> = infra.split('/').collect();
    let ok = parts.len() <= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        });
    if !ok {
        errors.push(f.error(
            format!("invalid infra `{infra}`"),
            "write `cloud`, `cloud/region` or `cloud/region/zone`, for example `runpod` or `runpod/US`",
        ));
        return None;
    }
    Some(infra.clone())
}

fn accelerators_of(f: &Found<String>, errors: &mut ManifestErrors) -> Option<(String, u32)> {
    let text = f.value.get_ref();
    let (name, count) = text.split_once(':').unwrap_or((text.as_str(), "1"));
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match (name_ok, count.parse::<u32>()) {
        (true, Ok(n)) if (1..=16).contains(&n) => Some((name.to_string(), n)),
        _ => {
            errors.push(f.error(
                format!("invalid accelerators `{text}`"),
                "write `NAME:COUNT` with a count from 1 to 16, for example `RTXA5000:1`, `L4:1`, `A100-80GB:1` (`sky show-gpus --infra runpod` lists the names)",
            ));
            None
        }
    }
}

fn positive_u32(f: &Found<i64>, key: &str, what: &str, errors: &mut ManifestErrors) -> Option<u32> {
    match u32::try_from(*f.value.get_ref()) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            errors.push(f.error(
                format!("`{key}` must be positive, not {}", f.value.get_ref()),
                format!("write {what}"),
            ));
            None
        }
    }
}

fn hourly_cost_of(f: &Found<f64>, errors: &mut ManifestErrors) -> Option<f64> {
    let cost = *f.value.get_ref();
    if cost.is_finite() && cost > 0.0 && cost <= 1000.0 {
        return Some(cost);
    }
    errors.push(f.error(
        format!("`max_hourly_cost` must be above 0 and at most 1000 USD, not {cost}"),
        "the most the machine may cost per hour, in USD, for example `1.0`",
    ));
    None
}

fn autostop_of(f: &Found<RawAutostop>, errors: &mut ManifestErrors) -> Option<u32> {
    let autostop = f.value.get_ref();
    if autostop.down == Some(false) {
        errors.push(f.error(
            "`autostop.down = false` would leave a stopped cluster behind",
            "Forge only tears clusters down (a stopped pod still bills for its disk); write `down = true` or leave it out",
        ));
        return None;
    }
    let minutes = autostop
        .idle_minutes
        .unwrap_or(i64::from(DEFAULT_IDLE_MINUTES));
    match u32::try_from(minutes) {
        Ok(n) if (1..=1440).contains(&n) => Some(n),
        _ => {
            errors.push(f.error(
                format!("`autostop.idle_minutes` must be from 1 to 1440, not {minutes}"),
                "for example `autostop = { idle_minutes = 30, down = true }`",
            ));
            None
        }
    }
}

fn secrets_of(
    written: &[Spanned<String>],
    file: &SourceFile,
    errors: &mut ManifestErrors,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in written {
        let text = name.get_ref();
        let valid = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let found = Found { value: name, file };
        if !valid {
            errors.push(found.error(
                format!("invalid secret name `{text}`"),
                "a secret is the NAME of an environment variable (letters, digits, `_`), never its value",
            ));
        } else if names.contains(text) {
            errors.push(found.error(format!("secret `{text}` is listed twice"), "remove one"));
        } else {
            names.push(text.clone());
        }
    }
    names
}
