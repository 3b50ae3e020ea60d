//! A string that must never be printed: API keys and app tokens.

use std::fmt;

/// Holds a secret. `Debug` and `Display` print `***`, so a config dumped into a log or an
/// error message cannot leak it; the value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that puts it in an upstream header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, compared in constant time (timing tells nothing
    /// of how much of it matched).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        mine.len() == presented.len()
            && mine
                .iter()
                .zip(presented)
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }
}

/// A secret is only ever written as `***` (in `/config`, in any serialised config).
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Secrets arrive in request parameters too (`customer_credentials`).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_formats_the_value() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "sk-live-123");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert!(s.matches(b"sk-live-123") && !s.matches(b"sk-live-12") && !s.matches(b"x"));
    }
}
