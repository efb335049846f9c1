//! The public edge under hostile requests (issue 9, parts 1 and 4 at the
//! router): token authentication and authorization, the JSON-only body rule,
//! the body limit and the in-flight bound. Real processes: three nodes and
//! two routers, one with Chroma's users file (`Authorization: Bearer`), one
//! with a single token in `X-Chroma-Token`. Every attack must get its status
//! and Chroma error JSON, write nothing, and leave every node running.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use tests::{str_list, unique_name, Checks, Client, Cluster, ClusterOptions, RouterOptions};

const PROVIDER: &str = "chromadb.auth.token_authn.TokenAuthenticationServerProvider";
const ADMIN: &str = "admin-token-1";
const BOB: &str = "bob-token-1";
const SINGLE: &str = "x-token-42";
const MAX_BODY: usize = 1 << 20;
const MAX_IN_FLIGHT: usize = 4;

const USERS: &str = "users:
  - id: admin
    role: admin
    tokens:
      - admin-token-1
  - id: bob
    tenant: acme
    databases: [\"db1\"]
    tokens: [\"bob-token-1\"]
";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn db_path(tenant: &str, database: &str) -> String {
    format!("/api/v2/tenants/{tenant}/databases/{database}")
}

/// Writes `request` on a fresh connection and returns the raw response
/// (status line, headers, body) once the server closes or `wait` passes.
/// Plain blocking sockets on a blocking thread (the tests crate's tokio has
/// no io-util).
async fn raw(addr: &str, request: &[u8], wait: Duration) -> String {
    let (addr, request) = (addr.to_owned(), request.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect to the router");
        stream.set_read_timeout(Some(wait)).expect("read timeout");
        // The server may answer (and close) before it read everything we send.
        let _ = stream.write_all(&request);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("raw request thread")
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The JSON body of a raw HTTP/1.1 response with a Content-Length.
fn json_of(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_at_the_edge() {
    let users = tempfile::NamedTempFile::new().expect("users file");
    std::fs::write(users.path(), USERS).expect("write users file");
    let users_path = users.path().display().to_string();
    let cluster = Cluster::start(ClusterOptions {
        shard_count: 2,
        routers: vec![
            RouterOptions {
                env: env(&[
                    ("CHROMA_SERVER_AUTHN_PROVIDER", PROVIDER),
                    ("CHROMA_SERVER_AUTHN_CREDENTIALS_FILE", &users_path),
                    ("ROUTER_MAX_BODY_BYTES", &MAX_BODY.to_string()),
                    ("ROUTER_MAX_IN_FLIGHT", &MAX_IN_FLIGHT.to_string()),
                ]),
                ..RouterOptions::default()
            },
            RouterOptions {
                env: env(&[
                    ("CHROMA_SERVER_AUTHN_PROVIDER", PROVIDER),
                    ("CHROMA_SERVER_AUTHN_CREDENTIALS", SINGLE),
                    ("CHROMA_AUTH_TOKEN_TRANSPORT_HEADER", "X-Chroma-Token"),
                ]),
                ..RouterOptions::default()
            },
        ],
        ..ClusterOptions::default()
    })
    .await;
    let anonymous = cluster.client(0);
    let admin = cluster.client_with_headers(0, &[("Authorization", &bearer(ADMIN))]);
    let bob = cluster.client_with_headers(0, &[("Authorization", &bearer(BOB))]);
    let mut checks = Checks::new();

    // The admin sets up tenant acme with db1 and db2, and a collection with
    // three records in the default database that every attack must leave alone.
    admin
        .post("/api/v2/tenants", &json!({"name": "acme"}))
        .await
        .expect_status(200, "create tenant acme");
    for db in ["db1", "db2"] {
        admin
            .post("/api/v2/tenants/acme/databases", &json!({"name": db}))
            .await
            .expect_status(200, "create database");
    }
    let victim = admin
        .new_collection(&unique_name("victim"), json!({}))
        .await;
    admin
        .add_ok(
            &victim,
            &json!({"ids": ["a", "b", "c"], "embeddings": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]}),
        )
        .await;
    let records = format!(
        "{}/collections/{victim}",
        db_path("default_tenant", "default_database")
    );

    checks
        .run("the probes stay open", {
            let c = anonymous.clone();
            async move {
                for p in [
                    "/api/v2/heartbeat",
                    "/api/v2/version",
                    "/api/v2/healthcheck",
                ] {
                    c.get(p).await.expect_status(200, p);
                }
            }
        })
        .await;
    checks
        .run(
            "no token, a wrong token, a malformed header: 401 AuthError",
            {
                let anonymous = anonymous.clone();
                let base = anonymous.base().to_owned();
                let records = records.clone();
                async move {
                    let collections = format!(
                        "{}/collections",
                        db_path("default_tenant", "default_database")
                    );
                    for path in [
                        collections.as_str(),
                        "/api/v2/pre-flight-checks",
                        "/api/v2/auth/identity",
                        "/api/v2/tenants/acme",
                        "/api/v2/no-such-endpoint",
                    ] {
                        anonymous
                            .get(path)
                            .await
                            .expect_error(401, "AuthError", path);
                    }
                    anonymous
                        .post(
                            &format!("{records}/add"),
                            &json!({"ids": ["z"], "embeddings": [[0.0, 0.0]]}),
                        )
                        .await
                        .expect_error(401, "AuthError", "anonymous add");
                    anonymous
                        .post("/api/v2/reset", &json!({}))
                        .await
                        .expect_error(401, "AuthError", "anonymous reset");
                    // The refusal carries Chroma's trace id like every answer.
                    let anonymous_get = anonymous.http().get(anonymous.url(&collections));
                    expect_trace_id(anonymous_get, 401).await;
                    for headers in [
                        vec![("Authorization", "Bearer not-a-token")],
                        vec![("Authorization", "bearer admin-token-1")],
                        vec![("Authorization", "admin-token-1")],
                        vec![("Authorization", "Bearer admin-token-")],
                        vec![("Authorization", "Bearer admin-token-11")],
                        vec![("X-Chroma-Token", ADMIN)],
                    ] {
                        let c =
                            Client::with_headers(base.clone(), Duration::from_secs(30), &headers);
                        c.get(&collections).await.expect_error(
                            401,
                            "AuthError",
                            &format!("{headers:?}"),
                        );
                    }
                }
            },
        )
        .await;
    checks
        .run("identity answers the token's user", {
            let (admin, bob) = (admin.clone(), bob.clone());
            async move {
                let id = admin
                    .get("/api/v2/auth/identity")
                    .await
                    .expect_status(200, "admin identity");
                assert_eq!(
                    id,
                    json!({"user_id": "admin", "tenant": "*", "databases": ["*"]})
                );
                let id = bob
                    .get("/api/v2/auth/identity")
                    .await
                    .expect_status(200, "bob identity");
                assert_eq!(
                    id,
                    json!({"user_id": "bob", "tenant": "acme", "databases": ["db1"]})
                );
            }
        })
        .await;
    checks
        .run(
            "a restricted token reaches its database and nothing else: 403",
            {
                let (admin, bob) = (admin.clone(), bob.clone());
                async move {
                    let name = unique_name("bobs");
                    let ok = format!("{}/collections", db_path("acme", "db1"));
                    bob.post(&ok, &json!({"name": name}))
                        .await
                        .expect_status(200, "bob in acme/db1");
                    bob.get(&format!("{ok}/{name}"))
                        .await
                        .expect_status(200, "bob reads his collection");
                    bob.get("/api/v2/tenants/acme")
                        .await
                        .expect_status(200, "bob's tenant");
                    for (tenant, db) in [
                        ("acme", "db2"),
                        ("default_tenant", "default_database"),
                        ("other", "db1"),
                    ] {
                        let path = format!("{}/collections", db_path(tenant, db));
                        bob.post(&path, &json!({"name": unique_name("evil")}))
                            .await
                            .expect_error(403, "AuthorizationError", &path);
                        bob.get(&path)
                            .await
                            .expect_error(403, "AuthorizationError", &path);
                    }
                    // The same database with its name percent-encoded is still db2.
                    bob.get(&format!("{}/collections", db_path("acme", "db%32")))
                        .await
                        .expect_error(403, "AuthorizationError", "percent-encoded db2");
                    let other = format!("{}/collections", db_path("acme", "db2"));
                    expect_trace_id(bob.http().get(bob.url(&other)), 403).await;
                    bob.post("/api/v2/tenants/acme/databases", &json!({"name": "db3"}))
                        .await
                        .expect_error(403, "AuthorizationError", "bob creates a database");
                    bob.post("/api/v2/tenants", &json!({"name": "bobcorp"}))
                        .await
                        .expect_error(403, "AuthorizationError", "bob creates a tenant");
                    bob.post("/api/v2/reset", &json!({})).await.expect_error(
                        403,
                        "AuthorizationError",
                        "bob resets",
                    );
                    admin
                        .get("/api/v2/tenants/acme/databases/db3")
                        .await
                        .expect_error(404, "NotFoundError", "db3 was not created");
                    admin.get("/api/v2/tenants/bobcorp").await.expect_error(
                        404,
                        "NotFoundError",
                        "bobcorp was not created",
                    );
                    let listed = admin
                        .get(&format!("{}/collections", db_path("acme", "db2")))
                        .await
                        .expect_status(200, "acme/db2 listing");
                    assert_eq!(listed, json!([]), "nothing was created in acme/db2");
                }
            },
        )
        .await;
    checks
        .run(
            "the X-Chroma-Token router takes its header and only that",
            {
                let base = cluster.client(1).base().to_owned();
                async move {
                    let path = "/api/v2/auth/identity";
                    let good = Client::with_headers(
                        base.clone(),
                        Duration::from_secs(30),
                        &[("X-Chroma-Token", SINGLE)],
                    );
                    let id = good
                        .get(path)
                        .await
                        .expect_status(200, "single token identity");
                    assert_eq!(
                        id,
                        json!({"user_id": "anonymous", "tenant": "*", "databases": ["*"]})
                    );
                    let bearer = bearer(SINGLE);
                    let wrong = Client::with_headers(
                        base,
                        Duration::from_secs(30),
                        &[("Authorization", &bearer)],
                    );
                    wrong.get(path).await.expect_error(
                        401,
                        "AuthError",
                        "bearer on the x-chroma-token router",
                    );
                }
            },
        )
        .await;
    checks
        .run(
            "bodies that are not JSON by Content-Type are refused: 415, nothing written",
            {
                let admin = admin.clone();
                let records = records.clone();
                async move {
                    let add = json!({"ids": ["csrf"], "embeddings": [[5.0, 5.0]]}).to_string();
                    for content_type in [
                        Some("text/plain"),
                        Some("application/x-www-form-urlencoded"),
                        Some("multipart/form-data; boundary=x"),
                        Some("application/jsonx"),
                        None,
                    ] {
                        let mut req = admin
                            .http()
                            .post(admin.url(&format!("{records}/add")))
                            .body(add.clone());
                        if let Some(t) = content_type {
                            req = req.header("content-type", t);
                        }
                        admin.send_request(req).await.expect_error(
                            415,
                            "InvalidArgumentError",
                            &format!("{content_type:?}"),
                        );
                    }
                    let name = unique_name("csrf");
                    let create = admin
                        .http()
                        .post(admin.url(&format!(
                            "{}/collections",
                            db_path("default_tenant", "default_database")
                        )))
                        .header("content-type", "text/plain")
                        .body(json!({"name": name}).to_string());
                    admin.send_request(create).await.expect_error(
                        415,
                        "InvalidArgumentError",
                        "text/plain create",
                    );
                    admin
                        .get(&format!(
                            "{}/collections/{name}",
                            db_path("default_tenant", "default_database")
                        ))
                        .await
                        .expect_error(
                            404,
                            "NotFoundError",
                            "the text/plain collection does not exist",
                        );
                    // JSON with parameters is JSON; an empty POST body needs no type.
                    let charset = admin
                        .http()
                        .post(admin.url(&format!("{records}/get")))
                        .header("content-type", "application/json; charset=utf-8")
                        .body(json!({"ids": ["a"]}).to_string());
                    let got = admin
                        .send_request(charset)
                        .await
                        .expect_status(200, "charset json");
                    assert_eq!(str_list(&got["ids"]), vec!["a"]);
                    let empty = admin.http().post(admin.url(&format!("{records}/get")));
                    let got = admin
                        .send_request(empty)
                        .await
                        .expect_status(200, "empty body get");
                    assert_eq!(str_list(&got["ids"]).len(), 3);
                }
            },
        )
        .await;
    checks
        .run("bodies over the limit: 413 BatchSizeExceededError JSON, nothing written", {
            let admin = admin.clone();
            let records = records.clone();
            let addr = cluster.router_addr(0);
            async move {
                // Valid JSON of about 2 MiB: 60k two-dimensional records.
                let n = 60_000;
                let ids: Vec<String> = (0..n).map(|i| format!("big-{i}")).collect();
                let embeddings: Vec<[f32; 2]> = (0..n).map(|i| [i as f32, 1.0]).collect();
                let body = json!({"ids": ids, "embeddings": embeddings}).to_string();
                assert!(body.len() > MAX_BODY, "{} bytes", body.len());
                let msg = admin
                    .post_raw(&format!("{records}/add"), &body)
                    .await
                    .expect_error(413, "BatchSizeExceededError", "oversized add");
                assert!(msg.contains(&MAX_BODY.to_string()), "{msg}");
                // Chunked, so no Content-Length tells the size up front.
                let path = format!("{records}/upsert");
                let mut request = format!(
                    "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
                     Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                )
                .into_bytes();
                for chunk in body.as_bytes().chunks(64 << 10) {
                    request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    request.extend_from_slice(chunk);
                    request.extend_from_slice(b"\r\n");
                }
                request.extend_from_slice(b"0\r\n\r\n");
                let response = raw(&addr, &request, Duration::from_secs(20)).await;
                assert_eq!(status_of(&response), 413, "chunked oversized upsert: {}", &response[..response.len().min(300)]);
                assert!(response.contains("BatchSizeExceededError"), "{response}");
            }
        })
        .await;
    checks
        .run("more requests than the in-flight bound: 429 with Retry-After, then served again", {
            let admin = admin.clone();
            let records = records.clone();
            let addr = cluster.router_addr(0);
            async move {
                // Each connection sends its headers and half its body, then
                // waits: the router holds a slot for it until the body ends.
                let path = format!("{records}/get");
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ids\":"
                );
                let hold = || {
                    let mut s = TcpStream::connect(&addr).expect("connect");
                    s.write_all(head.as_bytes()).expect("send head");
                    s
                };
                let mut held: Vec<TcpStream> = (0..MAX_IN_FLIGHT).map(|_| hold()).collect();
                // The slots are taken once the router has read those heads. A
                // held connection that raced another request for the last slot
                // was refused (429) and holds nothing: hold one more while a
                // request still gets through (bounded, so a router that never
                // refuses still fails the check).
                let deadline = Instant::now() + Duration::from_secs(10);
                let rejected = loop {
                    let r = admin
                        .send_request(admin.http().get(admin.url(&format!("{records}/count"))))
                        .await;
                    if r.status == 429 || Instant::now() > deadline {
                        break r;
                    }
                    if held.len() < 3 * MAX_IN_FLIGHT {
                        held.push(hold());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                rejected.expect_error(429, "RateLimitError", "request beyond the bound");
                let raw_reply = raw(
                    &addr,
                    format!("GET {records}/count HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n").as_bytes(),
                    Duration::from_secs(5),
                )
                .await;
                assert_eq!(status_of(&raw_reply), 429, "{raw_reply}");
                assert!(raw_reply.to_ascii_lowercase().contains("retry-after: 1"), "{raw_reply}");
                assert_eq!(json_of(&raw_reply)["error"], "RateLimitError", "{raw_reply}");
                assert!(raw_reply.to_ascii_lowercase().contains("\r\nchroma-trace-id: "), "{raw_reply}");
                // The probes are not counted: health checks answer under load.
                admin.get("/api/v2/healthcheck").await.expect_status(200, "healthcheck under load");
                drop(held);
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let r = admin
                        .send_request(admin.http().get(admin.url(&format!("{records}/count"))))
                        .await;
                    if r.status == 200 {
                        assert_eq!(r.body, json!(3));
                        break;
                    }
                    assert!(Instant::now() < deadline, "still {} after the held connections closed: {}", r.status, r.body);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
        .await;
    checks
        .run("afterwards: every node runs and the data is unchanged", {
            let admin = admin.clone();
            let exited = cluster.exited();
            async move {
                assert!(exited.is_empty(), "nodes exited: {exited:?}");
                let got = admin
                    .get_ok(&victim, &json!({"include": ["embeddings"]}))
                    .await;
                let mut ids = str_list(&got["ids"]);
                ids.sort();
                assert_eq!(ids, vec!["a", "b", "c"]);
                assert_eq!(admin.count(&victim).await, 3);
            }
        })
        .await;
    checks.finish();
}

/// Sends the request: answered `status` with Chroma's `chroma-trace-id` header
/// (refusals by the authentication middleware included), 32 hex digits.
async fn expect_trace_id(req: reqwest::RequestBuilder, status: u16) {
    let r = req.send().await.expect("send");
    assert_eq!(r.status(), status, "{}", r.url());
    let id = r
        .headers()
        .get("chroma-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no chroma-trace-id on {} {}", r.status(), r.url()));
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
}
