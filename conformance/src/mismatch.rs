//! What the runner found wrong: one sentence, for the report.

/// How an answer differs from a vector's expectation, or why an input or
/// output could not be judged; one sentence, shown in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

impl From<String> for Mismatch {
    fn from(s: String) -> Self {
        Mismatch(s)
    }
}

impl From<&str> for Mismatch {
    fn from(s: &str) -> Self {
        Mismatch(s.to_string())
    }
}
