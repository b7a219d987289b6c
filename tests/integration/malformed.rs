//! The malformed-manifest corpus: every file under `tests/fixtures/malformed/` must fail to
//! load with exit code 2 and a message pinned by a snapshot (file:line:col, caret, hint).

use std::path::Path;

#[test]
fn every_malformed_manifest_gets_a_clear_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "the corpus has {} files", names.len());
    for name in names {
        let text = String::from_utf8_lossy(&std::fs::read(dir.join(&name)).unwrap()).into_owned();
        let mut args = vec!["plan".to_string(), name.clone()];
        if let Some(extra) = text.lines().next().and_then(|l| l.strip_prefix("# args: ")) {
            args.extend(extra.split(' ').map(String::from));
        }
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_forge"))
            .args(&args)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr =
            String::from_utf8_lossy(&output.stderr).replace(&dir.display().to_string(), "[DIR]");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{name}: expected exit 2\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        assert_eq!(
            stderr.matches('×').count(),
            stderr.matches("help:").count(),
            "{name}: every problem carries a hint\n{stderr}"
        );
        insta::assert_snapshot!(name.trim_end_matches(".toml").to_string(), stderr);
    }
}
