//! A small client for the router's Chroma v2 API: every call returns the
//! status and the body as JSON (a non-JSON body comes back as a JSON string,
//! so a test can still print it), never panicking on what the server sent.

use std::time::Duration;

use serde_json::{json, Value};

/// Tenant/database prefix of the default database's collection routes.
pub const DEFAULT_DB: &str = "/api/v2/tenants/default_tenant/databases/default_database";

/// One answer: HTTP status and decoded body.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    /// The body, after asserting the status; `what` names the request in the
    /// failure message.
    #[track_caller]
    pub fn expect_status(self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status, status,
            "{what}: expected HTTP {status}, got {} with body {}",
            self.status, self.body
        );
        self.body
    }

    /// Asserts a Chroma error answer (`{"error": name, "message": ...}` with
    /// this status) and returns its message.
    #[track_caller]
    pub fn expect_error(self, status: u16, name: &str, what: &str) -> String {
        assert_eq!(
            (self.status, self.body.get("error").and_then(Value::as_str)),
            (status, Some(name)),
            "{what}: expected HTTP {status} {name}, got {} with body {}",
            self.status,
            self.body
        );
        let message = self.body.get("message").and_then(Value::as_str);
        assert!(
            message.is_some_and(|m| !m.is_empty()),
            "{what}: error without a message: {}",
            self.body
        );
        message.unwrap_or_default().to_string()
    }
}

/// A transport failure is reported as status 0 with the error text as body,
/// so that a test asserting a status prints what happened instead of
/// panicking inside the client.
fn transport_error(e: reqwest::Error) -> Resp {
    Resp {
        status: 0,
        body: Value::String(format!("transport error: {e}")),
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// Idle pooled connections to a router are dropped after this: below the router's
/// keep-alive (actix's default, 5 s), so a request never goes out on a connection the
/// router is closing at that moment (see `common::wire::NODE_CLIENT_POOL_IDLE`).
const ROUTER_POOL_IDLE: Duration = Duration::from_secs(2);

impl Client {
    /// `base` is `http://host:port`. Requests time out after `timeout` so a
    /// hung server fails a test instead of stalling it.
    pub fn new(base: String, timeout: Duration) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(ROUTER_POOL_IDLE)
            .timeout(timeout)
            .build()
            .expect("http client");
        Client { base, http }
    }

    /// Like [`Client::new`], sending `headers` (a token) with every request.
    pub fn with_headers(base: String, timeout: Duration, headers: &[(&str, &str)]) -> Client {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                reqwest::header::HeaderValue::from_str(value).expect("header value"),
            );
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(ROUTER_POOL_IDLE)
            .timeout(timeout)
            .default_headers(map)
            .build()
            .expect("http client");
        Client { base, http }
    }

    /// A client of `base` over a ready-made HTTP client (HTTPS with a
    /// test's own trusted certificate).
    pub fn with_http(base: String, http: reqwest::Client) -> Client {
        Client { base, http }
    }

    /// The underlying HTTP client, for requests the helpers do not cover
    /// (other content types, streamed bodies, response headers).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request built on [`Client::http`].
    pub async fn send_request(&self, req: reqwest::RequestBuilder) -> Resp {
        self.send(req).await
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport_error(e),
        };
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return transport_error(e),
        };
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp { status, body }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// POST of a raw body as `application/json` (malformed JSON, numbers
    /// serde_json cannot represent).
    pub async fn post_raw(&self, path: &str, body: &str) -> Resp {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    // ---- Chroma helpers on the default tenant/database ----

    /// Creates a collection (`extra` is merged into the body: metadata,
    /// configuration, get_or_create) and returns its model.
    pub async fn create_collection(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({ "name": name });
        if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
            b.extend(extra);
        }
        self.post(&format!("{DEFAULT_DB}/collections"), &body)
            .await
            .expect_status(200, &format!("create collection {name}"))
    }

    /// Creates a collection and returns its id.
    pub async fn new_collection(&self, name: &str, extra: Value) -> String {
        let model = self.create_collection(name, extra).await;
        model["id"]
            .as_str()
            .unwrap_or_else(|| panic!("collection model without id: {model}"))
            .to_string()
    }

    /// `POST T/D/collections/{id}/{verb}` on the default database.
    pub async fn records(&self, id: &str, verb: &str, body: &Value) -> Resp {
        self.post(&format!("{DEFAULT_DB}/collections/{id}/{verb}"), body)
            .await
    }

    /// `add`, asserting 201.
    pub async fn add_ok(&self, id: &str, body: &Value) {
        self.records(id, "add", body)
            .await
            .expect_status(201, &format!("add to {id}"));
    }

    /// `get`, asserting 200.
    pub async fn get_ok(&self, id: &str, body: &Value) -> Value {
        self.records(id, "get", body)
            .await
            .expect_status(200, &format!("get {body} from {id}"))
    }

    /// `query`, asserting 200.
    pub async fn query_ok(&self, id: &str, body: &Value) -> Value {
        self.records(id, "query", body)
            .await
            .expect_status(200, &format!("query {body} on {id}"))
    }

    /// `GET .../count`, asserting 200.
    pub async fn count(&self, id: &str) -> u64 {
        let body = self
            .get(&format!("{DEFAULT_DB}/collections/{id}/count"))
            .await
            .expect_status(200, &format!("count of {id}"));
        body.as_u64()
            .unwrap_or_else(|| panic!("count is not an integer: {body}"))
    }

    /// The ids a `get` with these ids returns (sorted), asserting 200.
    pub async fn present_ids(&self, id: &str, ids: &[String]) -> Vec<String> {
        let got = self.get_ok(id, &json!({ "ids": ids, "include": [] })).await;
        let mut out = str_list(&got["ids"]);
        out.sort();
        out
    }

    /// Asserts every id of `acked` is in collection `id` (asked in chunks), naming the
    /// lost ones.
    pub async fn assert_all_present(&self, id: &str, acked: &[String]) {
        for chunk in acked.chunks(200) {
            let got = self.present_ids(id, chunk).await;
            let lost: Vec<&String> = chunk.iter().filter(|i| !got.contains(i)).collect();
            assert!(
                lost.is_empty(),
                "{} acknowledged writes lost: {lost:?}",
                lost.len()
            );
        }
    }
}

/// A JSON list of strings as `Vec<String>`; panics (test assertion) if it is not one.
#[track_caller]
pub fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list of strings, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected a string, got {s}"))
                .to_string()
        })
        .collect()
}

/// A JSON list of numbers as `Vec<f64>`.
#[track_caller]
pub fn num_list(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list of numbers, got {v}"))
        .iter()
        .map(|s| {
            s.as_f64()
                .unwrap_or_else(|| panic!("expected a number, got {s}"))
        })
        .collect()
}

/// One record of a GetResult, fields as returned (`Null` when not included).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub embedding: Value,
    pub document: Value,
    pub metadata: Value,
    pub uri: Value,
}

/// A GetResult (or one query's slice of a QueryResult) keyed by id, so
/// tests compare records regardless of order.
#[track_caller]
pub fn rows(got: &Value) -> std::collections::BTreeMap<String, Row> {
    let ids = str_list(&got["ids"]);
    let field = |name: &str, i: usize| -> Value {
        match &got[name] {
            Value::Null => Value::Null,
            Value::Array(items) => items
                .get(i)
                .cloned()
                .unwrap_or_else(|| panic!("{name} shorter than ids: {got}")),
            other => panic!("{name} is neither null nor a list: {other}"),
        }
    };
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id.clone(),
                Row {
                    embedding: field("embeddings", i),
                    document: field("documents", i),
                    metadata: field("metadatas", i),
                    uri: field("uris", i),
                },
            )
        })
        .collect()
}

/// Query `q`'s slice of a QueryResult as a GetResult-shaped value.
#[track_caller]
pub fn query_slice(got: &Value, q: usize) -> Value {
    let mut out = serde_json::Map::new();
    for name in [
        "ids",
        "embeddings",
        "documents",
        "metadatas",
        "uris",
        "distances",
    ] {
        let v = match &got[name] {
            Value::Null => Value::Null,
            Value::Array(per_query) => per_query
                .get(q)
                .cloned()
                .unwrap_or_else(|| panic!("{name} has no list for query {q}: {got}")),
            other => panic!("{name} is neither null nor a list: {other}"),
        };
        out.insert(name.to_string(), v);
    }
    Value::Object(out)
}

/// An embedding from a response as f32s (what the server stores).
#[track_caller]
pub fn f32_list(v: &Value) -> Vec<f32> {
    num_list(v).into_iter().map(|x| x as f32).collect()
}

/// Retries `send` every 200 ms until it answers `status` (faults just healed:
/// leaders are being elected), for at most `patience`; returns the body.
pub async fn eventually<F, Fut>(what: &str, status: u16, patience: Duration, mut send: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let deadline = std::time::Instant::now() + patience;
    loop {
        let resp = send().await;
        if resp.status == status {
            return resp.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still {} {} after {patience:?}",
            resp.status,
            resp.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
