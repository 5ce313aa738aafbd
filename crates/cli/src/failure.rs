//! Errors as the user sees them: one line saying what is wrong, then a hint of what to do.

use std::fmt::Display;

/// An error with an optional hint.
#[derive(Debug)]
pub(crate) struct Failure {
    error: anyhow::Error,
    hint: Option<String>,
}

impl Failure {
    /// Prints `error: ...` (with its causes) and `hint: ...` to standard error.
    pub(crate) fn print(&self) {
        let mut message = self.error.to_string();
        for cause in self.error.chain().skip(1) {
            message.push_str(": ");
            message.push_str(&cause.to_string());
        }
        eprintln!("error: {message}");
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            hint: None,
        }
    }
}

/// Attaches context and a hint to a fallible result.
pub(crate) trait Hint<T> {
    /// On error: prefix `context` and attach `hint`.
    fn hint(self, context: impl Display, hint: impl Display) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Hint<T> for Result<T, E> {
    fn hint(self, context: impl Display, hint: impl Display) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            error: e.into().context(context.to_string()),
            hint: Some(hint.to_string()),
        })
    }
}

/// A failure from a message and a hint.
pub(crate) fn fail(message: impl Display, hint: impl Display) -> Failure {
    Failure {
        error: anyhow::anyhow!("{message}"),
        hint: Some(hint.to_string()),
    }
}
