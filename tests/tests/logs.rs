//! Structured logs and request ids: with `--log-format json` (nodes) and `LOG_FORMAT=json`
//! (router) every log line is a JSON object; every router response carries Chroma's
//! `chroma-trace-id` header, and the nodes' log lines of that request carry the same id.

use std::time::Duration;

use serde_json::{json, Value};
use tests::{unique_name, Cluster, ClusterOptions, RouterOptions, DEFAULT_DB};

fn json_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()))
        })
        .collect()
}

/// The log lines of `lines` logged inside the request span with `id`.
fn of_request<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["span"]["request_id"].as_str() == Some(id))
        .collect()
}

fn trace_id(resp: &reqwest::Response) -> String {
    let id = resp
        .headers()
        .get("chroma-trace-id")
        .unwrap_or_else(|| panic!("no chroma-trace-id on {} {:?}", resp.status(), resp.url()))
        .to_str()
        .expect("ascii trace id")
        .to_string();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "trace id {id}"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_request_ids() {
    let mut opts = ClusterOptions::default();
    opts.node_program.args = vec!["--log-format".into(), "json".into()];
    opts.node_program.log_filter = "info,raft=warn,node::api::trace=debug".into();
    let logging = vec![
        ("LOG_FORMAT".to_string(), "json".to_string()),
        (
            "RUST_LOG".to_string(),
            "info,router::trace=debug".to_string(),
        ),
    ];
    let mut auth = RouterOptions {
        env: logging.clone(),
        ..RouterOptions::default()
    };
    auth.env.extend([
        (
            "CHROMA_SERVER_AUTHN_PROVIDER".to_string(),
            "chromadb.auth.token_authn.TokenAuthenticationServerProvider".to_string(),
        ),
        (
            "CHROMA_SERVER_AUTHN_CREDENTIALS".to_string(),
            "tok".to_string(),
        ),
    ]);
    opts.routers = vec![
        RouterOptions {
            env: logging,
            ..RouterOptions::default()
        },
        auth,
    ];
    let cluster = Cluster::start(opts).await;
    let c = cluster.client(0);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");

    // Every response has an id, a fresh one each time: success, error, no route.
    let col = c.new_collection(&unique_name("logs"), json!({})).await;
    let add = http
        .post(c.url(&format!("{DEFAULT_DB}/collections/{col}/add")))
        .json(&json!({ "ids": ["a"], "embeddings": [[1.0, 2.0]] }))
        .send()
        .await
        .expect("add");
    assert_eq!(add.status(), 201);
    let add_id = trace_id(&add);
    let missing = http
        .get(c.url(&format!("{DEFAULT_DB}/collections/no-such-collection")))
        .send()
        .await
        .expect("get missing");
    assert_eq!(missing.status(), 404);
    assert_ne!(trace_id(&missing), add_id);
    let nowhere = http
        .get(c.url("/no/such/route"))
        .send()
        .await
        .expect("no route");
    trace_id(&nowhere);
    // Refused before any handler (by the authentication middleware): with an id too.
    let refused = http
        .get(
            cluster
                .client(1)
                .url(&format!("{DEFAULT_DB}/collections_count")),
        )
        .send()
        .await
        .expect("unauthenticated");
    assert_eq!(refused.status(), 401);
    assert_ne!(trace_id(&refused), add_id);

    // The router's log is JSON and has the add's lines in its span.
    let router_lines = json_lines(&cluster.router_log(0));
    let router_add = of_request(&router_lines, &add_id);
    assert!(
        router_add
            .iter()
            .any(|l| l["fields"]["message"] == "served" && l["fields"]["status"] == 201),
        "router lines of {add_id}: {router_add:?}"
    );
    for l in &router_lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }

    // Some node (the leader of the written shard) logged the add with the same id.
    let mut node_lines = 0;
    for id in cluster.ids() {
        let lines = json_lines(&cluster.node_log(id));
        node_lines += of_request(&lines, &add_id)
            .iter()
            .filter(|l| l["fields"]["message"] == "served")
            .count();
    }
    assert!(node_lines >= 1, "no node logged request {add_id}");
}
