//! The one error type of SparkQ, shared by the CLI and the HTTP API.
//!
//! Each variant says what kind of failure it is, so that the CLI can pick an
//! exit code and the API a status code from the same value. Messages are
//! lowercase, have no final period and quote the value that was wrong.

use std::fmt;

/// What went wrong, with a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad input: a malformed value, a wrong type, an unknown tool (400).
    Invalid(String),
    /// An id or name that does not exist (404).
    NotFound(String),
    /// A refused transition, a duplicate name or an ended stream (409).
    Conflict(String),
    /// A request body over the limit (413).
    TooLarge(String),
    /// A configuration file that cannot be used.
    Config(String),
    /// The database refused a write it cannot do now: read-only, disk full,
    /// locked for too long (503).
    Unavailable(String),
    /// A real fault: I/O or the database failing in a way nobody asked for.
    Internal(String),
}

/// The result type used across SparkQ.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The HTTP status code that reports this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::Config(_) => 500,
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Invalid(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::TooLarge(m)
            | Error::Config(m)
            | Error::Unavailable(m)
            | Error::Internal(m) => m,
        }
    }

    /// Prefixes the message with what was being done, keeping the kind.
    pub fn context(self, what: &str) -> Error {
        let wrap = |m: String| format!("{what}: {m}");
        match self {
            Error::Invalid(m) => Error::Invalid(wrap(m)),
            Error::NotFound(m) => Error::NotFound(wrap(m)),
            Error::Conflict(m) => Error::Conflict(wrap(m)),
            Error::TooLarge(m) => Error::TooLarge(wrap(m)),
            Error::Config(m) => Error::Config(wrap(m)),
            Error::Unavailable(m) => Error::Unavailable(wrap(m)),
            Error::Internal(m) => Error::Internal(wrap(m)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;

        if let rusqlite::Error::SqliteFailure(e, _) = &err {
            let why = match e.code {
                ErrorCode::ReadOnly => Some("the database is read-only"),
                ErrorCode::DiskFull => Some("the disk is full"),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    Some("the database stayed locked by another process")
                }
                ErrorCode::CannotOpen => Some("the database file cannot be opened"),
                ErrorCode::PermissionDenied => Some("permission denied on the database"),
                _ => None,
            };
            if let Some(why) = why {
                return Error::Unavailable(format!("{why} ({err})"));
            }
        }
        Error::Internal(format!("database error: {err}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::Internal(format!("i/o error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_the_kind() {
        assert_eq!(Error::Invalid("x".into()).http_status(), 400);
        assert_eq!(Error::NotFound("x".into()).http_status(), 404);
        assert_eq!(Error::Conflict("x".into()).http_status(), 409);
        assert_eq!(Error::TooLarge("x".into()).http_status(), 413);
        assert_eq!(Error::Unavailable("x".into()).http_status(), 503);
    }

    #[test]
    fn context_keeps_the_kind() {
        let e = Error::NotFound("no task \"tsk_1\"".into()).context("cannot claim");
        assert_eq!(e, Error::NotFound("cannot claim: no task \"tsk_1\"".into()));
    }
}
