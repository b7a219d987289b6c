//! What a key records for one declared input (or one file a built-in kind reads): its content
//! digest, or why there is none. In the lock file each is one string, as it always was: the hex
//! digest, `missing`, or `unreadable: <why>`; the strings and so the keys are unchanged.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The string an absent input is recorded as.
pub const MISSING: &str = "missing";

/// What an unreadable input's reason starts with.
const UNREADABLE: &str = "unreadable: ";

/// One input's state when the key was computed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum InputDigest {
    /// Its content digest (blake3, hex; a directory's Merkle digest).
    Digest(String),
    /// The path does not exist (or a glob matched nothing).
    Missing,
    /// It exists but could not be read; the reason as the operating system gave it.
    Unreadable(String),
}

impl InputDigest {
    /// The digest of `path` from `stat`, or why there is none.
    pub fn of(stat: &super::StatCache, path: &std::path::Path) -> Self {
        match stat.input_digest(path) {
            Ok(Some(digest)) => InputDigest::Digest(digest.digest),
            Ok(None) => InputDigest::Missing,
            Err(err) => InputDigest::Unreadable(err.to_string()),
        }
    }

    /// Parses the lock file's string form.
    pub fn parse(text: &str) -> Self {
        if text == MISSING {
            InputDigest::Missing
        } else if let Some(reason) = text.strip_prefix(UNREADABLE) {
            InputDigest::Unreadable(reason.to_string())
        } else {
            InputDigest::Digest(text.to_string())
        }
    }

    /// True when the input does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, InputDigest::Missing)
    }
}

impl fmt::Display for InputDigest {
    /// The lock file's string form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputDigest::Digest(digest) => f.write_str(digest),
            InputDigest::Missing => f.write_str(MISSING),
            InputDigest::Unreadable(reason) => write!(f, "{UNREADABLE}{reason}"),
        }
    }
}

impl Serialize for InputDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InputDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(InputDigest::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_strings_round_trip_exactly() {
        for (text, digest) in [
            ("\"af1349b9\"", InputDigest::Digest("af1349b9".into())),
            ("\"missing\"", InputDigest::Missing),
            (
                "\"unreadable: Permission denied (os error 13)\"",
                InputDigest::Unreadable("Permission denied (os error 13)".into()),
            ),
        ] {
            let parsed: InputDigest = serde_json::from_str(text).expect("parses");
            assert_eq!(parsed, digest);
            assert_eq!(serde_json::to_string(&digest).expect("serializes"), text);
        }
    }

    #[test]
    fn an_input_is_a_digest_missing_or_unreadable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stat = super::super::StatCache::default();
        std::fs::write(dir.path().join("a"), "one").expect("write");
        let digest = InputDigest::of(&stat, &dir.path().join("a"));
        assert!(matches!(&digest, InputDigest::Digest(d) if d.len() == 64));
        assert!(InputDigest::of(&stat, &dir.path().join("absent")).is_missing());
        // A path through a file cannot be read as a directory entry.
        let through = InputDigest::of(&stat, &dir.path().join("a/b"));
        assert!(
            matches!(&through, InputDigest::Unreadable(_)),
            "{through:?}"
        );
    }
}
