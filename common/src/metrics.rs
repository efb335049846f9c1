//! Prometheus metrics shared by the router and the node: HTTP request metrics, the
//! process's memory, and the text exposition of a scrape (`GET /metrics`).
//!
//! Each process keeps its metrics in one [`Registry`]; a scrape may add families it
//! computes on the spot (the node's per-group Raft state), so a group that went away
//! leaves no stale series behind.

use std::time::Duration;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntGauge, Opts, Registry, TextEncoder};

pub use prometheus;

/// The `Content-Type` of a scrape's answer (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets (seconds) for requests and proposals: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Requests served, by route pattern, method and status, with their latency (from the
/// request's arrival to its response head). `_count` is the number of requests.
pub struct HttpMetrics {
    requests: HistogramVec,
    /// Told of every request too (the router's dashboard keeps per-second samples).
    observer: Option<RequestObserver>,
}

/// A second listener of every timed request: its endpoint label, status and latency.
/// A plain function, so it can only reach process-wide state (a static), which is what
/// a middleware outliving every handler needs anyway.
pub type RequestObserver = fn(endpoint: &str, status: u16, elapsed: Duration);

impl HttpMetrics {
    /// Registers `{prefix}_http_request_duration_seconds{endpoint, method, status}`.
    pub fn register(registry: &Registry, prefix: &str) -> prometheus::Result<HttpMetrics> {
        let requests = HistogramVec::new(
            HistogramOpts::new(
                format!("{prefix}_http_request_duration_seconds"),
                "HTTP requests by route pattern, method and status, and their latency",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint", "method", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        Ok(HttpMetrics {
            requests,
            observer: None,
        })
    }

    /// The same metrics, also reporting every request to `observer`.
    pub fn observed_by(self, observer: RequestObserver) -> HttpMetrics {
        HttpMetrics {
            observer: Some(observer),
            ..self
        }
    }

    /// One request. `endpoint` is the matched route pattern (e.g.
    /// `/api/v2/tenants/{tenant}`), never the raw path: ids in paths would make a series
    /// per collection. Unmatched requests go under [`UNMATCHED_ENDPOINT`].
    pub fn observe(&self, endpoint: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[endpoint, method, &status.to_string()])
            .observe(elapsed.as_secs_f64());
        if let Some(observer) = self.observer {
            observer(endpoint, status, elapsed);
        }
    }
}

/// The request-timing middleware of the router and the node (outermost, so refused
/// requests are counted too): `from_fn(|req, next| track(&METRICS.http, req, next))`.
#[cfg(feature = "http")]
pub async fn track<B: actix_web::body::MessageBody>(
    metrics: &HttpMetrics,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<B>, actix_web::Error> {
    let method = method_label(req.method().as_str());
    let started = std::time::Instant::now();
    let response = next.call(req).await;
    // After routing the matched pattern is a lookup (`match_pattern` by the resource
    // path); asked before, it matched the path against every route a second time (9%
    // of the router's CPU under query load). A request refused before routing (auth,
    // limits) is matched here by its path. An `Err` carries no request: the services
    // here answer errors as responses, so it does not happen in practice.
    let (pattern, status) = match &response {
        Ok(r) => (r.request().match_pattern(), r.status()),
        Err(e) => (None, e.as_response_error().status_code()),
    };
    let endpoint = pattern.as_deref().unwrap_or(UNMATCHED_ENDPOINT);
    metrics.observe(endpoint, method, status.as_u16(), started.elapsed());
    response
}

/// The endpoint label of a request that matched no route.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// The method label: the standard methods by name, anything else as `other` (a client
/// could otherwise make a series per invented method).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// `process_resident_memory_bytes`, read from `/proc/self/status` at each scrape.
pub struct ProcessMetrics {
    resident: IntGauge,
}

impl ProcessMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<ProcessMetrics> {
        let resident = IntGauge::with_opts(Opts::new(
            "process_resident_memory_bytes",
            "Resident memory of this process (VmRSS), bytes",
        ))?;
        registry.register(Box::new(resident.clone()))?;
        Ok(ProcessMetrics { resident })
    }

    fn refresh(&self) {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident.set(bytes.min(i64::MAX as u64) as i64);
        }
    }
}

/// VmRSS of this process, or `None` where `/proc` does not say (not Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss_bytes(&status)
}

/// The `VmRSS:  1234 kB` line of a `/proc/<pid>/status` text, in bytes.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// The text exposition of `registry` (with the process metrics refreshed first) plus
/// `extra`, families computed for this scrape.
pub fn render(
    registry: &Registry,
    process: &ProcessMetrics,
    extra: Vec<MetricFamily>,
) -> Result<String, prometheus::Error> {
    process.refresh();
    let mut families = registry.gather();
    families.extend(extra);
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed_in_bytes() {
        let status = "Name:\tnode\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_bytes(status), Some(1234 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn a_scrape_has_requests_and_memory() {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry, "test").unwrap();
        let process = ProcessMetrics::register(&registry).unwrap();
        http.observe("/a/{id}", "GET", 200, Duration::from_millis(3));
        http.observe("/a/{id}", "GET", 200, Duration::from_millis(30));
        let text = render(&registry, &process, Vec::new()).unwrap();
        assert!(
            text.contains(
                r#"test_http_request_duration_seconds_count{endpoint="/a/{id}",method="GET",status="200"} 2"#
            ),
            "{text}"
        );
        if cfg!(target_os = "linux") {
            let rss = text
                .lines()
                .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
                .and_then(|v| v.parse::<u64>().ok());
            assert!(rss.is_some_and(|b| b > 0), "{text}");
        }
    }

    #[test]
    fn an_observer_sees_every_request() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEEN_MS: AtomicU64 = AtomicU64::new(0);
        fn observer(endpoint: &str, status: u16, elapsed: Duration) {
            assert_eq!((endpoint, status), ("/b", 503));
            SEEN_MS.fetch_add(elapsed.as_millis() as u64, Ordering::Relaxed);
        }
        let http = HttpMetrics::register(&Registry::new(), "test")
            .unwrap()
            .observed_by(observer);
        http.observe("/b", "GET", 503, Duration::from_millis(7));
        http.observe("/b", "POST", 503, Duration::from_millis(5));
        assert_eq!(SEEN_MS.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }
}
