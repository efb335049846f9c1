//! The router's live cluster page (`GET /dashboard`) in a real browser: headless
//! Chromium loads it from a real 3-node cluster, its script polls `/dashboard/state`,
//! and the DOM must show every node up and the collection with its record count; after
//! node 2 is killed, the page shows node 2 down. Screenshots of both are left in the
//! test's target dir (`target/tmp/dashboard/`; README's `tests/docs/dashboard.png` is
//! the first). A second router with token auth on refuses the page and its JSON without
//! a token (401) and to a token for one database (403). Without Chromium the browser part
//! prints why and is skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde_json::{json, Value};
use tests::browser::Chromium;
use tests::{unique_name, Cluster, ClusterOptions, RouterOptions};

/// Virtual time the page gets: its first poll is at once, the next after 1.5 s.
const BUDGET: Duration = Duration::from_millis(2500);
const WINDOW: (u32, u32) = (1280, 900);

/// Node id → whether its row says up, from the nodes table's rows.
fn node_rows(dom: &str) -> BTreeMap<u64, bool> {
    let row =
        Regex::new(r#"<tr class="node" data-node="(\d+)" data-up="(true|false)">"#).expect("regex");
    row.captures_iter(dom)
        .map(|c| (c[1].parse().expect("node id"), &c[2] == "true"))
        .collect()
}

/// The record count a collection's row shows.
fn collection_records(dom: &str, name: &str) -> Option<u64> {
    let row = Regex::new(&format!(
        r#"<tr class="collection" data-name="{}" data-records="(\d+)">"#,
        regex::escape(name)
    ))
    .expect("regex");
    row.captures(dom).map(|c| c[1].parse().expect("count"))
}

fn add_body(n: usize) -> Value {
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let embeddings: Vec<[f32; 2]> = (0..n).map(|i| [i as f32, 1.0]).collect();
    json!({ "ids": ids, "embeddings": embeddings })
}

/// Router 1's users: an admin for everything, bob for one database.
const USERS: &str = "users:
  - id: admin
    tokens: [admin-token]
  - id: bob
    tokens: [bob-token]
    tenant: default_tenant
    databases: [default_database]
";

/// With token auth on, the page and its JSON need an unrestricted token.
async fn check_auth(cluster: &Cluster) {
    for path in ["/dashboard", "/dashboard/state", "/dashboard/page.js"] {
        let status = |token: Option<&str>| {
            let client = match token {
                Some(t) => cluster.client_with_headers(1, &[("Authorization", t)]),
                None => cluster.client(1),
            };
            async move { client.get(path).await.status }
        };
        assert_eq!(status(None).await, 401, "{path} without a token");
        assert_eq!(status(Some("Bearer bob-token")).await, 403, "{path} as bob");
        assert_eq!(
            status(Some("Bearer admin-token")).await,
            200,
            "{path} as admin"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cluster_in_a_browser() {
    let authenticated = RouterOptions {
        env: vec![
            (
                "CHROMA_SERVER_AUTHN_PROVIDER".into(),
                "chromadb.auth.token_authn.TokenAuthenticationServerProvider".into(),
            ),
            ("CHROMA_SERVER_AUTHN_CREDENTIALS".into(), USERS.into()),
        ],
        ..RouterOptions::default()
    };
    let cluster = Cluster::start(ClusterOptions {
        routers: vec![RouterOptions::default(), authenticated],
        ..ClusterOptions::default()
    })
    .await;
    check_auth(&cluster).await;
    let chromium = match Chromium::find() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED (the browser part): {why}");
            return;
        }
    };
    let c = cluster.client(0);
    let name = unique_name("dashboard");
    let col = c.new_collection(&name, json!({})).await;
    c.add_ok(&col, &add_body(25)).await;
    // Some traffic for the chart: a few seconds of counts and queries.
    for _ in 0..20 {
        assert_eq!(c.count(&col).await, 25);
        c.query_ok(
            &col,
            &json!({"query_embeddings": [[1.0, 1.0]], "n_results": 3}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The JSON the page reads (the chart leaves out the second still being counted).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let state = c.get("/dashboard/state").await.expect_status(200, "state");
    assert_eq!(state["nodes"].as_array().map(Vec::len), Some(3), "{state}");
    let busy: u64 = state["traffic"]["requests_per_s"]
        .as_array()
        .expect("requests_per_s")
        .iter()
        .filter_map(Value::as_u64)
        .sum();
    assert!(busy >= 40, "the chart counts the requests: {busy}");

    let url = format!("{}/dashboard", c.base());
    let dom = chromium.dump_dom(&url, BUDGET).expect("dump the DOM");
    assert!(
        dom.contains("data-updates="),
        "the page never loaded its state:\n{dom}"
    );
    let expected: BTreeMap<u64, bool> = [(1, true), (2, true), (3, true)].into();
    assert_eq!(node_rows(&dom), expected, "{dom}");
    assert_eq!(collection_records(&dom, &name), Some(25), "{dom}");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let all_up = shots.join("dashboard.png");
    chromium
        .screenshot(&url, BUDGET, WINDOW, &all_up)
        .expect("screenshot");
    eprintln!("screenshot: {}", all_up.display());

    cluster.kill_node(2);
    // The page shows the state of the router's last gather, which may have asked
    // node 2 just before the kill: the next load shows it down.
    let expected: BTreeMap<u64, bool> = [(1, true), (2, false), (3, true)].into();
    let mut dom = String::new();
    for _ in 0..3 {
        dom = chromium.dump_dom(&url, BUDGET).expect("dump the DOM");
        if node_rows(&dom) == expected {
            break;
        }
    }
    assert_eq!(node_rows(&dom), expected, "{dom}");
    assert!(
        dom.contains(r#"class="replica group-start" data-group="0""#),
        "the groups table lists the metadata group:\n{dom}"
    );
    let node2_down = shots.join("dashboard-node2-down.png");
    chromium
        .screenshot(&url, BUDGET, WINDOW, &node2_down)
        .expect("screenshot");
    eprintln!("screenshot: {}", node2_down.display());
}
