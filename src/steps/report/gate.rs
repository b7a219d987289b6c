//! What the report says about the rehearsal gate, from `<results>/gate.json` (written by
//! `forge run` when a run that does paid work checks the gate; see `src/gate.rs`).

use std::path::Path;

use crate::gate::GateFile;

use super::ReportError;

/// The report's lines about the gate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateNotes {
    /// A visible warning when the last gated run skipped the gate.
    pub warning: Option<String>,
    /// Which rehearsal gated these results, when the gate passed.
    pub gated_by: Option<String>,
}

/// Reads the gate file; no file (a profile without a gate, or results no gated run produced)
/// means nothing to say.
pub fn notes(workspace: &Path, path: Option<&Path>) -> Result<GateNotes, ReportError> {
    let Some(path) = path else {
        return Ok(GateNotes::default());
    };
    let full = workspace.join(path);
    let bytes = match std::fs::read(&full) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(GateNotes::default());
        }
        Err(err) => return Err(gate_error(&full, err.to_string())),
    };
    let file: GateFile =
        serde_json::from_slice(&bytes).map_err(|e| gate_error(&full, e.to_string()))?;
    Ok(match file {
        GateFile::Skipped { gate } => GateNotes {
            warning: Some(format!(
                "the run of {} skipped the `{}` rehearsal gate (`--skip-gate`): {}. Nothing shows that this code completed a rehearsal before it ran; a later run that passes the gate clears this warning",
                gate.at, gate.required, gate.reason
            )),
            gated_by: None,
        },
        GateFile::Passed { gate } => GateNotes {
            warning: None,
            gated_by: Some(format!(
                "gated by the `{}` run that finished {} (Forge {}, manifest blake3 {}, {} step-code inputs matched)",
                gate.required,
                gate.finished_at,
                gate.forge_version,
                &gate.manifest_digest[..gate.manifest_digest.len().min(12)],
                gate.inputs.len()
            )),
        },
    })
}

fn gate_error(path: &Path, message: String) -> ReportError {
    ReportError::Gate {
        path: path.to_path_buf(),
        message,
    }
}
