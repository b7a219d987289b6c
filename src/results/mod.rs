//! The result files Forge's built-in kinds write under `results/`: one Rust type per file, used by
//! the step that writes it and by every step that reads it (reference: `docs/results.md`).
//! Every file is written through [`write_json`]: pretty JSON, two-space indent, a final newline,
//! replaced atomically. Every file carries `schema_version` ([`SCHEMA_VERSION`]) and is read
//! through [`read_json`], which refuses a version it does not know, naming the file. Each file's
//! JSON Schema is generated from its type ([`schema`]).

pub mod bench;
pub mod cost;
pub mod eval;
#[cfg(test)]
mod fixtures;
pub mod intervals;
pub mod metadata;
pub mod schema;

use std::path::{Path, PathBuf};

/// The shape of the result files this Forge writes. A file without the key was written before
/// Forge recorded it and has version 1's shape. Raise it when a key is renamed, removed or changes
/// meaning, and teach [`read_json`] to migrate the older shape.
pub const SCHEMA_VERSION: u32 = 1;

/// The version of a file that does not record one (serde's `default` for `schema_version`).
fn first_version() -> u32 {
    1
}

/// A result file type [`read_json`] can read.
pub trait Versioned: serde::de::DeserializeOwned {
    /// What the file is, for error messages (`bench summary.json`).
    const WHAT: &'static str;
}

/// A result file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}\nhint: run the step that writes it first", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not the JSON its type expects.
    #[error("`{path}` is not a valid {what}: {source}", path = .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the file should be.
        what: &'static str,
        /// The serde error (names the field and line).
        source: serde_json::Error,
    },
    /// The file records a schema version this Forge does not know.
    #[error(
        "`{path}` has `schema_version` {found}, but this Forge reads {what} version {SCHEMA_VERSION}\nhint: read it with the Forge that wrote it (its `metadata.forge_version`), or rerun the step that writes it",
        path = .path.display()
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// What the file should be.
        what: &'static str,
        /// The version it records.
        found: u64,
    },
}

impl ReadError {
    /// What went wrong, without the file's path (for errors that name the file themselves).
    pub fn reason(&self) -> String {
        match self {
            ReadError::Read { source, .. } => source.to_string(),
            ReadError::Parse { source, .. } => source.to_string(),
            ReadError::UnknownVersion { found, what, .. } => format!(
                "has `schema_version` {found}, but this Forge reads {what} version {SCHEMA_VERSION}"
            ),
        }
    }
}

/// Reads a result file: its `schema_version` first (absent reads as 1; an unknown one is an
/// error naming the file), then the whole file as `T`.
pub fn read_json<T: Versioned>(path: &Path) -> Result<T, ReadError> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(default)]
        schema_version: Option<u64>,
    }
    let bytes = std::fs::read(path).map_err(|source| ReadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse = |source| ReadError::Parse {
        path: path.to_path_buf(),
        what: T::WHAT,
        source,
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(parse)?;
    match header.schema_version {
        None => {}
        Some(found) if found == u64::from(SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(ReadError::UnknownVersion {
                path: path.to_path_buf(),
                what: T::WHAT,
                found,
            });
        }
    }
    serde_json::from_slice(&bytes).map_err(parse)
}

/// Writes `value` as pretty JSON (two-space indent, final newline) to `path`, atomically
/// ([`crate::fsutil::write_atomic`]): a reader or a crash sees the old file or the new one.
/// Creates the parent directory. A value serde cannot write becomes an `InvalidData` error.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    bytes.push(b'\n');
    crate::fsutil::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_schema_version_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("summary.json");
        std::fs::write(&path, r#"{"schema_version": 2, "levels": []}"#).expect("write");
        let error = read_json::<bench::BenchSummary>(&path).expect_err("version 2 is unknown");
        let message = error.to_string();
        assert!(matches!(error, ReadError::UnknownVersion { found: 2, .. }));
        assert!(
            message.contains("summary.json` has `schema_version` 2"),
            "{message}"
        );
        assert!(
            message.contains("reads bench summary.json version 1"),
            "{message}"
        );
    }

    #[test]
    fn a_file_without_a_version_reads_as_version_1_and_is_rewritten_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("summary.json");
        std::fs::write(
            &path,
            r#"{"levels": [{"max_concurrency": 4, "file": "c4.json"}]}"#,
        )
        .expect("write");
        let summary: bench::BenchSummary = read_json(&path).expect("version 1's shape");
        assert_eq!(summary.schema_version, 1);
        assert_eq!(summary.levels[0].max_concurrency, 4);
        write_json(&path, &summary).expect("rewrite");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert!(text.starts_with("{\n  \"schema_version\": 1,"), "{text}");
    }

    /// Every result file committed under `tests/fixtures/results/` (crafted ones, and captured
    /// ones without `schema_version`) reads through the type its writer uses.
    #[test]
    fn the_committed_result_files_read_through_their_types() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results");
        let mut read = 0;
        for profile in ["m1-rehearsal", "m1-rehearsal-captured"] {
            for label in ["awq", "bf16"] {
                let path = root
                    .join(profile)
                    .join("bench")
                    .join(label)
                    .join("summary.json");
                if path.exists() {
                    let summary: bench::BenchSummary = read_json(&path).expect("summary reads");
                    assert!(!summary.levels.is_empty(), "{}", path.display());
                    read += 1;
                }
            }
        }
        let rehearsal = root.join("m1-rehearsal");
        let retention: eval::Retention =
            read_json(&rehearsal.join("eval/retention.json")).expect("retention reads");
        assert_eq!(retention.tasks.len(), 3);
        let _: cost::CostFile = read_json(&rehearsal.join("cost/cost.json")).expect("cost reads");
        let _: cost::ComparisonFile =
            read_json(&rehearsal.join("cost/comparison.json")).expect("comparison reads");
        assert_eq!(read, 3, "two crafted summaries and one captured");
    }

    #[test]
    fn writes_pretty_json_with_a_final_newline_and_replaces_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/summary.json");
        write_json(&path, &serde_json::json!({"a": [1]})).expect("first write");
        write_json(&path, &serde_json::json!({"b": 2})).expect("second write");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(text, "{\n  \"b\": 2\n}\n");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }
}
