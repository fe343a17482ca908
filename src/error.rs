//! One error type for the whole tool: what failed, where, the next step, the exit code
//! it maps to (1 condition or a missing/existing object, 2 usage, 3 runtime, 130
//! interrupted; README "Exit codes"),
//! and the underlying cause, kept as a chain and printed with `-v`.

use std::fmt;

/// How an error ends the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The checked condition does not hold (exit 1).
    Condition,
    /// Usage or invalid input (exit 2).
    Usage,
    /// Cluster/registry unreachable, auth or RBAC refused, CRD missing (exit 3).
    Runtime,
    /// The user pressed Ctrl-C (exit 130, as shells report SIGINT).
    Interrupted,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Condition => 1,
            Kind::Usage => 2,
            Kind::Runtime => 3,
            Kind::Interrupted => 130,
        }
    }
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
    /// Extra lines printed only with `-v` (never secrets).
    pub detail: Option<String>,
    /// What caused it (a kube, registry or I/O error), printed as a chain with `-v`.
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// The API server's reason (`NotFound`, `AlreadyExists`): the error is printed as
    /// kubectl prints it, `Error from server (REASON): MESSAGE`.
    pub server_reason: Option<&'static str>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            detail: None,
            source: None,
            server_reason: None,
        }
    }

    /// An answer of the API server that kubectl reports with exit code 1 and as
    /// `Error from server (REASON): MESSAGE`: NotFound, AlreadyExists.
    pub fn from_server(reason: &'static str, message: impl Into<String>) -> Self {
        let mut err = Self::new(Kind::Condition, message);
        err.server_reason = Some(reason);
        err
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(Kind::Runtime, message)
    }

    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(Kind::Interrupted, message)
    }

    pub fn condition(message: impl Into<String>) -> Self {
        Self::new(Kind::Condition, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The messages of the cause chain, outermost first, each said once.
    pub fn causes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        while let Some(cause) = next {
            let text = cause.to_string();
            if !out.contains(&text) {
                out.push(text);
            }
            next = cause.source();
        }
        out
    }

    /// Prefixes the message with where the failure happened.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The whole chain of an error on one line (`a: b: c`), each cause said once, as Go's
/// wrapped errors read; for messages where every layer adds something.
pub fn joined_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The innermost cause of an error, which usually says the most (`connection
/// refused`, `certificate has expired`), for one-line messages.
pub fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn the_cause_chain_is_kept_and_each_cause_said_once() {
        let chain = Layer(
            "request failed",
            Some(Box::new(Layer("tls", Some(Box::new(Layer("tls", None)))))),
        );
        let err = Error::runtime("cannot reach the API server").with_source(chain);
        assert_eq!(err.causes(), ["request failed", "tls"]);
        assert_eq!(innermost(&err), "tls");
    }
}
