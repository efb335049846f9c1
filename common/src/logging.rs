//! Log setup of the router and node processes: `RUST_LOG` filters (default given by the
//! process), `--log-format text|json` (or `LOG_FORMAT`) chooses human lines or one JSON
//! object per line (fields, and the current span's fields such as `request_id`).
//! Logs go to stderr.
//!
//! A request's id: the router makes one per request, answers it in Chroma's
//! `chroma-trace-id` header and sends it to the nodes in [`REQUEST_ID_HEADER`]; both
//! processes log the request's lines inside a `request` span carrying it, so one request
//! can be followed from the router into every node it reached.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// The header carrying a request's id from the router to the nodes.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id a node takes from a caller (the router's are 32 hex digits).
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The environment variable read when `--log-format` is not given.
pub const LOG_FORMAT_ENV: &str = "LOG_FORMAT";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, `fields`, `span`.
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("log format must be text or json, not {0:?}")]
pub struct BadLogFormat(String);

impl FromStr for LogFormat {
    type Err = BadLogFormat;

    fn from_str(s: &str) -> Result<LogFormat, BadLogFormat> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(BadLogFormat(other.to_string())),
        }
    }
}

impl LogFormat {
    /// `flag` if given, else `$LOG_FORMAT`, else text.
    pub fn resolve(flag: Option<LogFormat>) -> Result<LogFormat, BadLogFormat> {
        match (flag, std::env::var(LOG_FORMAT_ENV)) {
            (Some(f), _) => Ok(f),
            (None, Ok(v)) if !v.is_empty() => v.parse(),
            (None, _) => Ok(LogFormat::Text),
        }
    }
}

/// Installs the process's subscriber: `RUST_LOG` if set, else `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Whether `id` is usable as a request id from a caller: 1 to [`MAX_REQUEST_ID_LEN`]
/// ASCII letters, digits or `-` (it goes into logs; nothing else is let through).
pub fn valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert!("JSON ".parse::<LogFormat>().is_err());
        assert_eq!(
            LogFormat::resolve(Some(LogFormat::Json)).unwrap(),
            LogFormat::Json
        );
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id("0123456789abcdef0123456789abcdef"));
        assert!(valid_request_id("a-B-9"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("a\nb"));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
    }
}
