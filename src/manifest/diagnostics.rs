//! Manifest and profile errors a person can act on: file:line:col, the source line with a caret,
//! and a hint. All semantic errors of one load are collected and reported together.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

/// A source file a diagnostic can point into.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown to the user.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
}

impl SourceFile {
    /// Reads `path`, or returns a diagnostic that says why it cannot.
    pub fn read(path: &Path) -> Result<Self, Box<ManifestDiagnostic>> {
        let bytes = std::fs::read(path).map_err(|err| {
            Box::new(
                ManifestDiagnostic::plain(format!("cannot read `{}`: {err}", path.display()))
                    .help("check the path and that the file is readable"),
            )
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self {
                path: path.to_path_buf(),
                text,
            }),
            Err(err) => {
                let at = err.utf8_error().valid_up_to();
                let file = Self {
                    path: path.to_path_buf(),
                    text: String::from_utf8_lossy(err.as_bytes()).into_owned(),
                };
                Err(Box::new(
                    ManifestDiagnostic::at(&file, at..at + 1, "this file is not valid UTF-8")
                        .label("invalid byte here")
                        .help("TOML files are UTF-8 text: save the file as UTF-8"),
                ))
            }
        }
    }
}

/// One problem in a manifest, a profile or the command line.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct ManifestDiagnostic {
    message: String,
    #[source_code]
    src: Option<NamedSource<String>>,
    #[label("{label}")]
    span: Option<SourceSpan>,
    label: String,
    #[help]
    help: Option<String>,
}

impl ManifestDiagnostic {
    /// A problem with no location (for example an unknown profile).
    pub fn plain(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            src: None,
            span: None,
            label: String::new(),
            help: None,
        }
    }

    /// A problem at `span` in `file`.
    pub fn at(file: &SourceFile, span: Range<usize>, message: impl Into<String>) -> Self {
        let span = clamp(span, file.text.len());
        Self {
            message: message.into(),
            src: Some(NamedSource::new(
                file.path.display().to_string(),
                file.text.clone(),
            )),
            span: Some(span.into()),
            label: String::from("here"),
            help: None,
        }
    }

    /// Sets the label under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Adds a `help:` line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a `help:` line when there is one.
    pub fn maybe_help(self, help: Option<String>) -> Self {
        match help {
            Some(help) => self.help(help),
            None => self,
        }
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

fn clamp(span: Range<usize>, len: usize) -> Range<usize> {
    let start = span.start.min(len);
    start..span.end.clamp(start, len)
}

/// Every problem found while loading a pipeline.
#[derive(Debug, Default)]
pub struct ManifestErrors {
    /// The problems, in the order they were found.
    pub items: Vec<ManifestDiagnostic>,
}

impl ManifestErrors {
    /// Records a problem (once: matrix instances of one step report the same problem once).
    pub fn push(&mut self, diagnostic: ManifestDiagnostic) {
        let same = |d: &ManifestDiagnostic| {
            d.message == diagnostic.message
                && d.span == diagnostic.span
                && d.src.as_ref().map(|s| s.name().to_string())
                    == diagnostic.src.as_ref().map(|s| s.name().to_string())
        };
        if !self.items.iter().any(same) {
            self.items.push(diagnostic);
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Renders every problem the way the CLI prints them.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
        let mut out = String::new();
        for item in &self.items {
            // Writing into a String cannot fail.
            let _ = handler.render_report(&mut out, item);
        }
        if self.items.len() > 1 {
            let _ = writeln!(out, "{} problems found", self.items.len());
        }
        out
    }
}

impl From<ManifestDiagnostic> for ManifestErrors {
    fn from(item: ManifestDiagnostic) -> Self {
        Self { items: vec![item] }
    }
}

impl From<Box<ManifestDiagnostic>> for ManifestErrors {
    fn from(item: Box<ManifestDiagnostic>) -> Self {
        Self { items: vec![*item] }
    }
}

/// "did you mean `x`?" from edit distance, as just does it.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|best| format!("did you mean `{best}`?"))
}

/// The candidate nearest to `name` by edit distance, when it is near enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3) && *distance > 0)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// A list like "`a`, `b`, `c`" for help lines.
pub fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{}`", name.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turns a TOML parse or type error into a diagnostic pointing at its span.
pub fn from_toml(file: &SourceFile, err: &toml::de::Error) -> ManifestDiagnostic {
    let message = err.message().trim().to_string();
    let help = toml_hint(&message).or_else(|| {
        Some(if message.starts_with("duplicate key") {
            String::from("each key and each `[steps.<id>]` table may appear once: merge or rename the duplicates")
        } else {
            String::from("fix the TOML syntax here (see https://toml.io); docs/manifest.md lists Forge's keys")
        })
    });
    match err.span() {
        Some(span) => ManifestDiagnostic::at(file, span, message).maybe_help(help),
        None => ManifestDiagnostic::plain(format!("{}: {message}", file.path.display()))
            .maybe_help(help),
    }
}

fn toml_hint(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`')?;
        let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return did_you_mean(field, names.iter().copied())
            .or_else(|| Some(format!("known fields: {}", list(&names))));
    }
    if message.starts_with("invalid type") {
        return Some(String::from(
            "see docs/manifest.md for the type each key takes",
        ));
    }
    None
}
