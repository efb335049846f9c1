//! Reading request bodies and query strings. Bodies are parsed by hand from
//! `serde_json::Value` so every wrong type gets a 400 that names the field
//! (actix's typed extractors answer with their own plain-text errors).

use std::collections::HashMap;
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::AppState;
use crate::error::ApiError;

/// A request body, read whole within the router's body limit, that is JSON
/// by its `Content-Type` (or empty: clients send no body on some POSTs).
/// Every endpoint with a body takes it, so a body over the limit gets 413
/// `BatchSizeExceededError` and a non-JSON one 415 before anything is done.
pub struct JsonBody(Bytes);

impl Deref for JsonBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType(
        "Request bodies must be JSON with the header Content-Type: application/json".into(),
    )
}

fn too_large(limit: usize) -> ApiError {
    ApiError::BatchSizeExceeded(format!(
        "The request body is larger than this server's limit of {limit} bytes; send fewer records per request"
    ))
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<web::Data<AppState>>().map_or(
            common::config::RouterSection::default().max_body_bytes,
            |s| s.settings.max_body_bytes,
        );
        let json = is_json(req.headers());
        // A declared length is checked before a byte is read.
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            match declared {
                Some(n) if n > limit as u64 => return Err(too_large(limit)),
                Some(n) if n > 0 && !json => return Err(not_json()),
                _ => {}
            }
            let mut buf = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::invalid(format!("Could not read the request body: {e}"))
                })?;
                if buf.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            if !json && !buf.iter().all(u8::is_ascii_whitespace) {
                return Err(not_json());
            }
            Ok(JsonBody(buf.freeze()))
        })
    }
}

/// The body as JSON; an empty body is `{}` (clients send none on some POSTs).
pub fn json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("Invalid JSON body: {e}")))
}

/// The body as a JSON object.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match json(bytes)? {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::invalid(format!(
            "Expected the request body to be a JSON object, got {}",
            kind(&other)
        ))),
    }
}

/// A JSON type's name for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `key` as a string; absent or null is `None`.
pub fn opt_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::invalid(format!(
            "Expected {key} to be a string, got {}",
            kind(other)
        ))),
    }
}

/// `key` as a required string.
pub fn string(map: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    opt_string(map, key)?.ok_or_else(|| ApiError::invalid(format!("Missing required field: {key}")))
}

pub fn opt_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid(format!(
            "Expected {key} to be a boolean, got {}",
            kind(other)
        ))),
    }
}

/// `key` as a non-negative integer; absent or null is `None`.
pub fn opt_count(map: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Expected {key} to be a non-negative integer, got {v}"
                ))
            }),
    }
}

/// `limit` and `offset` of a list endpoint's query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// At most this many items (all when absent).
    pub limit: Option<u32>,
    /// Items to skip first (0 when absent).
    #[param(required = false)]
    pub offset: u32,
}

impl Paging {
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let number = |key: &str| -> Result<Option<u32>, ApiError> {
            match query.get(key).map(|s| s.trim()) {
                None | Some("") => Ok(None),
                Some(s) => s.parse::<u32>().map(Some).map_err(|_| {
                    ApiError::invalid(format!(
                        "Query parameter {key} must be a non-negative integer, got {s}"
                    ))
                }),
            }
        };
        Ok(Paging {
            limit: number("limit")?,
            offset: number("offset")?.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_and_fields() {
        assert_eq!(json(b"").unwrap(), json!({}));
        assert!(matches!(json(b"{"), Err(ApiError::InvalidArgument(_))));
        // JSON has no NaN or infinity; a number too large for f64 is refused.
        assert!(json(b"[1e999]").is_err());
        assert!(object(b"[1]").is_err());
        let m = object(br#"{"a": "x", "b": 3, "c": true, "d": -1}"#).unwrap();
        assert_eq!(opt_string(&m, "a").unwrap().as_deref(), Some("x"));
        assert!(opt_string(&m, "b").is_err());
        assert_eq!(opt_count(&m, "b").unwrap(), Some(3));
        assert!(opt_count(&m, "d").is_err());
        assert_eq!(opt_bool(&m, "c").unwrap(), Some(true));
        assert_eq!(opt_bool(&m, "zz").unwrap(), None);
        assert!(string(&m, "zz").is_err());
    }

    #[test]
    fn paging_from_query_strings() {
        let q: HashMap<String, String> = [("limit".to_owned(), "5".to_owned())].into();
        assert_eq!(
            Paging::from_query(&q).unwrap(),
            Paging {
                limit: Some(5),
                offset: 0
            }
        );
        let q: HashMap<String, String> = [("offset".to_owned(), "-1".to_owned())].into();
        assert!(Paging::from_query(&q).is_err());
    }
}
