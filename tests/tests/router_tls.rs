//! Optional TLS on the router (issue 9, part 1): with `ROUTER_TLS_CERT_FILE`
//! and `ROUTER_TLS_KEY_FILE` the router serves HTTPS only. A self-signed
//! certificate is made at test time; real processes (one node, routers
//! started here with the TLS environment). Checks: a client trusting the
//! certificate works end to end, plain HTTP and an untrusting client fail,
//! and a router with a bad, mismatched or half-configured key refuses to
//! start naming the problem.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tests::cluster::{binary, free_port};
use tests::{str_list, unique_name, Client, Cluster, ClusterOptions};

/// A router process killed when the test ends.
struct Router {
    child: Child,
    log: PathBuf,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn spawn_router(cluster: &Cluster, dir: &Path, port: u16, env: &[(&str, &Path)]) -> Router {
    let log = dir.join(format!("router-{port}.log"));
    let out = std::fs::File::create(&log).expect("router log");
    let mut command = Command::new(binary("router"));
    command
        .arg("--config")
        .arg(&cluster.config_path)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .env_remove("ROUTER_TLS_CERT_FILE")
        .env_remove("ROUTER_TLS_KEY_FILE");
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("spawn router");
    Router { child, log }
}

/// Waits until the router exits, which it must (bad TLS files), and returns
/// its log.
fn refused(mut router: Router, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = router.child.try_wait().expect("router status") {
            assert!(!status.success(), "{what}: router exited with {status}");
            return log_text(&router.log);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: router still running; log:\n{}",
            log_text(&router.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn https_client(cert_pem: &str) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("test certificate");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("https client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_serves_https_only_with_a_valid_certificate() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 1,
        replication_factor: 1,
        shard_count: 1,
        routers: vec![],
        ..ClusterOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("self-signed certificate");
    let cert_pem = made.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();

    // Refusals first: each fails before the router loads anything slow.
    let bad_key = dir.path().join("bad-key.pem");
    std::fs::write(
        &bad_key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let log = refused(
        spawn_router(
            &cluster,
            dir.path(),
            free_port(),
            &[
                ("ROUTER_TLS_CERT_FILE", &cert),
                ("ROUTER_TLS_KEY_FILE", &bad_key),
            ],
        ),
        "invalid key",
    );
    assert!(log.contains("bad-key.pem"), "invalid key not named:\n{log}");

    let other = rcgen::KeyPair::generate().expect("second key");
    let wrong_key = dir.path().join("wrong-key.pem");
    std::fs::write(&wrong_key, other.serialize_pem()).unwrap();
    let log = refused(
        spawn_router(
            &cluster,
            dir.path(),
            free_port(),
            &[
                ("ROUTER_TLS_CERT_FILE", &cert),
                ("ROUTER_TLS_KEY_FILE", &wrong_key),
            ],
        ),
        "key of another certificate",
    );
    assert!(
        log.contains("wrong-key.pem"),
        "mismatched key not named:\n{log}"
    );

    let missing = dir.path().join("missing-cert.pem");
    let log = refused(
        spawn_router(
            &cluster,
            dir.path(),
            free_port(),
            &[
                ("ROUTER_TLS_CERT_FILE", &missing),
                ("ROUTER_TLS_KEY_FILE", &key),
            ],
        ),
        "missing certificate",
    );
    assert!(
        log.contains("missing-cert.pem"),
        "missing cert not named:\n{log}"
    );

    let log = refused(
        spawn_router(
            &cluster,
            dir.path(),
            free_port(),
            &[("ROUTER_TLS_CERT_FILE", &cert)],
        ),
        "certificate without key",
    );
    assert!(log.contains("ROUTER_TLS_KEY_FILE"), "half config:\n{log}");

    // The real one.
    let port = free_port();
    let router = spawn_router(
        &cluster,
        dir.path(),
        port,
        &[
            ("ROUTER_TLS_CERT_FILE", &cert),
            ("ROUTER_TLS_KEY_FILE", &key),
        ],
    );
    let https = https_client(&cert_pem);
    let base = format!("https://127.0.0.1:{port}");
    let health = format!("{base}/api/v2/healthcheck");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut router = router;
    loop {
        if let Ok(r) = https.get(&health).send().await {
            if r.status().as_u16() == 200 {
                break;
            }
        }
        if let Some(status) = router.child.try_wait().expect("router status") {
            panic!(
                "TLS router exited ({status}); log:\n{}",
                log_text(&router.log)
            );
        }
        assert!(
            Instant::now() < deadline,
            "TLS router not healthy over HTTPS; log:\n{}",
            log_text(&router.log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = log_text(&router.log);
    assert!(log.contains("HTTPS only"), "no TLS line in the log:\n{log}");

    // End to end over HTTPS: create, add, query.
    let client = Client::with_http(base.clone(), https);
    let id = client.new_collection(&unique_name("tls"), json!({})).await;
    client
        .add_ok(
            &id,
            &json!({
                "ids": ["a", "b"],
                "embeddings": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                "documents": ["first", "second"],
            }),
        )
        .await;
    let got = client
        .query_ok(
            &id,
            &json!({ "query_embeddings": [[0.0, 1.0, 0.1]], "n_results": 1 }),
        )
        .await;
    assert_eq!(
        str_list(&got["ids"][0]),
        vec!["b"],
        "query over HTTPS: {got}"
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{port}/api/v2/healthcheck"))
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP answered on the TLS port: {r:?}");

    // A client that does not trust the certificate refuses the connection.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = untrusting.get(&health).send().await;
    assert!(r.is_err(), "untrusted certificate accepted: {r:?}");
    drop(router);
}
