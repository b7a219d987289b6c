//! The JSON Schema of every result file, generated from its type in `src/results/` with
//! `schemars` and committed under `docs/schemas/` (one file each), where the Python readers in
//! `scripts/` validate against it. A test checks the committed files against the types byte for
//! byte; `FORGE_UPDATE_SCHEMAS=1 cargo test --locked schemas` rewrites them.
//!
//! The schemas describe what the readers accept (schemars' deserialize contract): a key with a
//! serde default is optional, `schema_version` must be [`SCHEMA_VERSION`] when present.

use schemars::{JsonSchema, Schema};

use super::{SCHEMA_VERSION, Versioned, bench, cost, eval, intervals};

/// The folder, relative to the crate root, the schemas are committed in.
pub const DIR: &str = "docs/schemas";

/// Every result file's schema: its file name under [`DIR`] and the schema.
pub fn schemas() -> Vec<(&'static str, Schema)> {
    vec![
        (
            "bench-summary.schema.json",
            schema::<bench::BenchSummary>(
                bench::BenchSummary::WHAT,
                "results/<profile>/bench/<label>/summary.json",
            ),
        ),
        (
            "bench-level.schema.json",
            schema::<bench::LevelFile<'static>>(
                bench::LEVEL_FILE,
                "results/<profile>/bench/<label>/c<N>.json",
            ),
        ),
        (
            "bench-intervals.schema.json",
            schema::<intervals::BenchIntervals>(
                intervals::BenchIntervals::WHAT,
                "results/<profile>/bench/<label>/intervals.json",
            ),
        ),
        (
            "eval-scores.schema.json",
            schema::<eval::EvalScores>(
                eval::EvalScores::WHAT,
                "results/<profile>/eval/<label>/scores.json",
            ),
        ),
        (
            "eval-retention.schema.json",
            schema::<eval::Retention>(
                eval::Retention::WHAT,
                "results/<profile>/eval/retention.json",
            ),
        ),
        (
            "cost.schema.json",
            schema::<cost::CostFile>(cost::CostFile::WHAT, "results/<profile>/cost/cost.json"),
        ),
        (
            "cost-comparison.schema.json",
            schema::<cost::ComparisonFile>(
                cost::ComparisonFile::WHAT,
                "results/<profile>/cost/comparison.json",
            ),
        ),
    ]
}

/// The schema of `T`, titled with what the file is (`what`, as [`Versioned::WHAT`] says it), the
/// path it is written to and its `schema_version`, which is pinned to [`SCHEMA_VERSION`] (what
/// [`super::read_json`] accepts).
fn schema<T: JsonSchema>(what: &str, path: &str) -> Schema {
    let mut schema = schemars::schema_for!(T);
    let about = schema
        .get("description")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    schema.insert(
        "title".into(),
        format!("Forge {what}, schema_version {SCHEMA_VERSION}").into(),
    );
    schema.insert(
        "description".into(),
        format!("{path}, schema_version {SCHEMA_VERSION}. {about}").into(),
    );
    schema.insert(
        "$comment".into(),
        "Generated from the Rust types in src/results/: FORGE_UPDATE_SCHEMAS=1 cargo test --locked schemas; do not edit by hand"
            .into(),
    );
    let version = schema
        .get_mut("properties")
        .and_then(|properties| properties.get_mut("schema_version"))
        .and_then(serde_json::Value::as_object_mut);
    if let Some(version) = version {
        version.insert("const".into(), SCHEMA_VERSION.into());
    }
    schema
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// `docs/schemas/` holds exactly the schemas [`schemas`] generates, byte for byte as
    /// [`super::super::write_json`] writes them.
    #[test]
    fn committed_schemas_are_generated_from_the_types() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
        let update = std::env::var_os("FORGE_UPDATE_SCHEMAS").is_some();
        let fresh = tempfile::tempdir().expect("tempdir");
        let mut named = BTreeSet::new();
        let mut stale = Vec::new();
        for (name, schema) in schemas() {
            assert!(schema.get("$schema").is_some(), "{name} names its draft");
            let path = fresh.path().join(name);
            super::super::write_json(&path, &schema).expect("schema writes");
            let bytes = std::fs::read(&path).expect("read back");
            if update {
                super::super::write_json(&committed.join(name), &schema).expect("schema writes");
            }
            if std::fs::read(committed.join(name)).ok().as_deref() != Some(bytes.as_slice()) {
                stale.push(name.to_string());
            }
            named.insert(name.to_string());
        }
        for entry in std::fs::read_dir(&committed).expect("docs/schemas/ exists") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if named.contains(&name) {
                continue;
            }
            if update {
                std::fs::remove_file(committed.join(&name)).expect("remove");
            } else {
                stale.push(format!("{name} (no type generates it)"));
            }
        }
        assert!(
            stale.is_empty(),
            "{DIR}/ differs from the result types: {}\nhint: run `FORGE_UPDATE_SCHEMAS=1 cargo test --locked schemas` and commit the changes",
            stale.join(", ")
        );
    }

    #[test]
    fn schemas_keep_serde_attributes() {
        let schemas: std::collections::BTreeMap<_, _> = schemas().into_iter().collect();
        let summary = &schemas["bench-summary.schema.json"];
        let required = summary.get("required").expect("required");
        assert_eq!(required, &serde_json::json!(["levels"]));
        assert_eq!(
            summary.pointer("/properties/schema_version/const"),
            Some(&serde_json::json!(SCHEMA_VERSION))
        );
        // `metadata` flattens the shared keys next to the bench extras.
        let bench_metadata = summary
            .pointer("/$defs/BenchMetadata/properties")
            .expect("BenchMetadata");
        for key in ["forge_version", "gpu", "driver", "workload"] {
            assert!(bench_metadata.get(key).is_some(), "{key}");
        }
        // A key written only when set is not required.
        let cost = &schemas["cost.schema.json"];
        let required = cost.get("required").expect("required");
        assert!(!required.to_string().contains("rehearsal"), "{required}");
        assert!(required.to_string().contains("labels"), "{required}");
    }
}
