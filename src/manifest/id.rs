//! [`StepId`]: a step's id after matrix expansion (`serve-awq`), as the manifest, the plan, the
//! lock file and the executor name it. Resolution makes every one of them (`check_id` in
//! `declare.rs` says which characters an id may hold); code after it passes ids, not strings.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// A step's id. It reads as a `&str` (`Deref`, `Borrow<str>`), so maps keyed by it answer
/// lookups by `&str`, and it serializes as the plain string.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for StepId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for StepId {
    fn from(id: &str) -> Self {
        Self(id.to_string())
    }
}

impl From<StepId> for String {
    fn from(id: StepId) -> Self {
        id.0
    }
}

impl Deref for StepId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StepId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for StepId {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl AsRef<std::path::Path> for StepId {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl Borrow<str> for StepId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by ids answer lookups by `&String` too (same hash and order as the id's).
impl Borrow<String> for StepId {
    fn borrow(&self) -> &String {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for StepId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<StepId> for str {
    fn eq(&self, other: &StepId) -> bool {
        self == other.0
    }
}

impl PartialEq<StepId> for &str {
    fn eq(&self, other: &StepId) -> bool {
        *self == other.0
    }
}

impl PartialEq<StepId> for String {
    fn eq(&self, other: &StepId) -> bool {
        *self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_a_str_in_maps_format_and_json() {
        let id = StepId::from("serve-awq");
        let map = indexmap::IndexMap::from([(id.clone(), 1)]);
        assert_eq!(map.get("serve-awq"), Some(&1));
        assert_eq!(format!("[{id:>10}]"), "[ serve-awq]");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"serve-awq\"");
        let back: StepId = serde_json::from_str("\"serve-awq\"").expect("parse");
        assert_eq!(back, id);
        assert!(id == "serve-awq" && id.starts_with("serve"));
    }
}
