//! The docs quote things that exist: every `forge <subcommand>` and every `--flag` after it in
//! README.md and docs/*.md is in the CLI (clap's own description of it), and every repository
//! path quoted in backticks or written in a code block is a file or directory of the repository.
//! Outputs (`results/...`, `.forge/...`), placeholders (`{{ }}`, `<...>`), globs and URLs are
//! not paths to check.

use std::path::PathBuf;

use clap::CommandFactory;

/// One thing a doc quotes, with where it was found.
#[derive(Debug)]
struct Quote {
    /// `README.md:12`
    at: String,
    /// The quoted text: an inline code span or one line of a code block.
    text: String,
    /// A code block line (shell text), not an inline span.
    code: bool,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, sorted.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("read docs/")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Inline code spans (CommonMark: a run of N backticks closed by a run of exactly N, possibly
/// across lines) and code block lines (fenced, or indented by 4 spaces after a blank line).
fn quotes(name: &str, text: &str) -> Vec<Quote> {
    let mut found = Vec::new();
    let mut prose = String::new();
    let mut fenced = false;
    let mut indented = false;
    let mut previous_blank = true;
    for (index, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", index + 1);
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            prose.push('\n');
            continue;
        }
        indented = (line.starts_with("    ") || line.starts_with('\t'))
            && (indented || previous_blank)
            && !trimmed.starts_with(['-', '|', '*']);
        previous_blank = trimmed.is_empty();
        if fenced || indented {
            found.push(Quote {
                at,
                text: line.to_string(),
                code: true,
            });
            prose.push('\n');
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    found.extend(spans(name, &prose));
    found
}

/// The inline code spans of `prose`, each with the line it starts on.
fn spans(name: &str, prose: &str) -> Vec<Quote> {
    let bytes = prose.as_bytes();
    let run_at = |start: usize| bytes[start..].iter().take_while(|b| **b == b'`').count();
    let mut found = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'`' {
            index += 1;
            continue;
        }
        let open = run_at(index);
        let content = index + open;
        let mut search = content;
        let mut close = None;
        while search < bytes.len() {
            if bytes[search] == b'`' {
                let run = run_at(search);
                if run == open {
                    close = Some(search);
                    break;
                }
                search += run;
            } else {
                search += 1;
            }
        }
        match close {
            Some(end) => {
                let line = prose[..index].matches('\n').count() + 1;
                found.push(Quote {
                    at: format!("{name}:{line}"),
                    text: prose[content..end].replace('\n', " ").trim().to_string(),
                    code: false,
                });
                index = end + open;
            }
            None => index = content,
        }
    }
    found
}

/// Shell-ish words: split on whitespace, quotes and brackets stripped from the ends.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| "\"'[](),;".contains(c))
                .trim_end_matches("...")
                .trim_end_matches(['.', ':', ']'])
                .to_string()
        })
        .collect()
}

/// Every `forge <subcommand> [args]` (also `cargo run [--release] -- <subcommand>`) in a quote,
/// as (subcommand, flags), up to the end of the command (`#`, `|`, `&&`, `;`, `>`).
fn commands(quote: &Quote) -> Vec<(String, Vec<String>)> {
    let words = words(&quote.text);
    let mut found = Vec::new();
    for (index, word) in words.iter().enumerate() {
        // `cargo run [--release] -- <subcommand>` is forge; `cargo run --example x --` is not.
        let via_cargo = word == "--"
            && words[..index].iter().any(|w| w == "cargo")
            && !words[..index]
                .iter()
                .any(|w| w == "--example" || w == "--bin");
        if word != "forge" && !via_cargo {
            continue;
        }
        let Some(subcommand) = words.get(index + 1) else {
            continue;
        };
        if subcommand.is_empty() || !subcommand.chars().all(|c| c.is_ascii_lowercase()) {
            continue;
        }
        let flags = words[index + 2..]
            .iter()
            .take_while(|w| !["#", "|", "||", "&&", ";", ">", "2>", "forge"].contains(&w.as_str()))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.split(['=', '[', ',']).next().unwrap_or(w).to_string())
            .collect();
        found.push((subcommand.clone(), flags));
    }
    found
}

/// The top-level entries of the repository that docs may point into (not build output or
/// results, not Forge's machine-local state).
fn roots() -> Vec<String> {
    std::fs::read_dir(repo())
        .expect("read the repository")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| ![".git", "target", "results", ".forge"].contains(&name.as_str()))
        .collect()
}

/// The repository paths a quote names: words whose first component is a top-level entry,
/// without placeholders, globs, variables or URLs. In a code line, `KEY=path` counts.
fn paths(quote: &Quote, roots: &[String]) -> Vec<String> {
    let candidates: Vec<String> = if quote.code {
        words(&quote.text)
            .iter()
            .flat_map(|w| w.split('=').map(str::to_string).collect::<Vec<_>>())
            .collect()
    } else if quote.text.contains(char::is_whitespace) {
        Vec::new()
    } else {
        vec![quote.text.clone()]
    };
    candidates
        .into_iter()
        .map(|c| c.trim_start_matches("./").to_string())
        .filter(|c| c.contains('/') && !c.contains("://"))
        .filter(|c| {
            !["{{", "<", ">", "*", "?", "$", "{", "|"]
                .iter()
                .any(|p| c.contains(p))
        })
        .filter(|c| {
            roots
                .iter()
                .any(|r| c.split('/').next() == Some(r.as_str()))
        })
        .collect()
}

/// Every problem in every doc (unknown subcommands and flags, paths that do not exist), and how
/// many commands and paths were checked.
fn problems() -> (Vec<String>, usize, usize) {
    let cli = forge::cli::Cli::command();
    let roots = roots();
    let mut problems = Vec::new();
    let (mut commands_checked, mut paths_checked) = (0, 0);
    for file in doc_files() {
        let name = file
            .strip_prefix(repo())
            .expect("inside the repository")
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file).expect("read a doc");
        for quote in quotes(&name, &text) {
            for (subcommand, flags) in commands(&quote) {
                commands_checked += 1;
                let Some(command) = cli.find_subcommand(&subcommand) else {
                    problems.push(format!(
                        "{}: `forge {subcommand}` is not a subcommand (in `{}`)",
                        quote.at, quote.text
                    ));
                    continue;
                };
                for flag in flags {
                    let long = &flag[2..];
                    let known = ["help", "version"].contains(&long)
                        || command.get_arguments().any(|a| a.get_long() == Some(long));
                    if !known {
                        problems.push(format!(
                            "{}: `forge {subcommand}` has no `{flag}` (in `{}`)",
                            quote.at, quote.text
                        ));
                    }
                }
            }
            for path in paths(&quote, &roots) {
                paths_checked += 1;
                if !repo().join(&path).exists() {
                    problems.push(format!("{}: `{path}` does not exist", quote.at));
                }
            }
        }
    }
    (problems, commands_checked, paths_checked)
}

#[test]
fn docs_quote_only_commands_flags_and_paths_that_exist() {
    let (problems, commands, paths) = problems();
    eprintln!("docs: {commands} forge commands and {paths} repository paths checked");
    // A scanner that finds nothing passes vacuously: the docs quote well over these numbers.
    assert!(
        commands >= 40 && paths >= 100,
        "the scanner found only {commands} forge commands and {paths} paths"
    );
    assert!(
        problems.is_empty(),
        "docs quote things that do not exist (fix the doc, or the code if the doc is right):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scanner_finds_what_it_must() {
    let text = "Run `forge run M --profile P [--bogus]` and ``forge plan --json``.\n\n    forge graph M --format dot   # --nope\n\nSee `scripts/none.py`, `results/x/y.json`, `docs/<name>.md`.\n";
    let quotes = quotes("t.md", text);
    let found: Vec<_> = quotes.iter().flat_map(commands).collect();
    assert_eq!(
        found,
        vec![
            ("graph".to_string(), vec!["--format".to_string()]),
            (
                "run".to_string(),
                vec!["--profile".to_string(), "--bogus".to_string()]
            ),
            ("plan".to_string(), vec!["--json".to_string()]),
        ]
    );
    let roots = vec!["scripts".to_string(), "docs".to_string()];
    let paths: Vec<_> = quotes.iter().flat_map(|q| paths(q, &roots)).collect();
    assert_eq!(paths, vec!["scripts/none.py".to_string()]);
    assert!(quotes.iter().any(|q| q.at == "t.md:3" && q.code));
}
