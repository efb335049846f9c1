//! The chaos/soak tier (`scripts/test --chaos`; ignored otherwise): real node
//! and router processes under kill -9, SIGSTOP/SIGCONT and Raft partitions
//! while clients write through the router's HTTP API. What the clients saw is
//! then held to architecture.md's promises: acknowledged writes survive (1),
//! a read after an acknowledgement sees it, through any router (2), nothing
//! hangs past the request timeout and a healed cluster serves (4), replicas
//! converge (5).
//!
//! `CHAOS_SECS` sets how long each test injects faults (default 150; a
//! test takes about 10 s more); `CHAOS_SEED` fixes the random choices (the
//! seed is printed; fault timing still depends on the machine). The clusters
//! snapshot every few hundred entries, so log compaction and snapshot
//! installs on restarted nodes happen within a run. Set `KEEP_CLUSTER=1` to
//! keep a failed run's logs.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tests::http::eventually;
use tests::{rows, Client, Cluster, ClusterOptions, Resp, RouterOptions, Row};
use tokio::task::JoinHandle;

/// `router.request_timeout_ms` of the chaos clusters.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// What a request may take beyond the router's deadline before the client
/// calls it a hang (scheduling on two shared cores).
const HANG_SLACK: Duration = Duration::from_secs(5);
/// Elections after a fault is cleared; the final reads after the heal.
const LONG: Duration = Duration::from_secs(60);
/// Catch-up of every replica after the run (a restarted node may replay its
/// log or install a snapshot).
const CONVERGE: Duration = Duration::from_secs(120);
/// `raft.snapshot_interval_entries`: low, so snapshots and compaction happen.
const SNAPSHOT_EVERY: u64 = 200;
/// Ids per writer: few, so every id is overwritten many times and a stale or
/// lost overwrite shows.
const IDS_PER_WRITER: usize = 30;
/// The record written before the faults (it fixes the dimension).
const WARM_ID: &str = "warm";

fn chaos_duration() -> Duration {
    let secs = std::env::var("CHAOS_SECS")
        .ok()
        .map(|s| s.parse().expect("CHAOS_SECS is a number of seconds"))
        .unwrap_or(150);
    Duration::from_secs(secs)
}

fn chaos_seed() -> u64 {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .map(|s| s.parse().expect("CHAOS_SEED is a u64"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    eprintln!("CHAOS_SEED={seed}");
    seed
}

/// Problems the clients saw, collected so that one run reports all of them
/// (a writer that panicked would stop writing and hide the rest).
#[derive(Clone, Default)]
struct Violations {
    found: Arc<Mutex<Vec<String>>>,
    /// Set once the test is over (it failed and its cluster is being torn
    /// down): writers still running then see the router vanish, which is
    /// not a finding.
    closed: Arc<AtomicBool>,
}

impl Violations {
    fn push(&self, what: String) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        eprintln!("VIOLATION {what}");
        self.found.lock().push(what);
    }

    #[track_caller]
    fn assert_none(&self, cluster: &Cluster) {
        let all = self.found.lock().clone();
        if all.is_empty() {
            return;
        }
        let shown: Vec<&String> = all.iter().take(30).collect();
        panic!(
            "{} violations (first {}):\n{}\nlog tails:\n{}",
            all.len(),
            shown.len(),
            shown
                .iter()
                .map(|s| format!("- {s}"))
                .collect::<Vec<_>>()
                .join("\n"),
            cluster.log_tails(40)
        );
    }
}

/// Counters over the run, printed at the end.
#[derive(Default)]
struct Stats {
    acked: AtomicU64,
    unavailable: AtomicU64,
    reads_checked: AtomicU64,
    max_ms: AtomicU64,
}

impl Stats {
    fn print(&self, faults: usize) {
        eprintln!(
            "stats: {faults} faults, {} writes acknowledged, {} answered 503, {} reads checked, \
             slowest request {} ms",
            self.acked.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.reads_checked.load(Ordering::Relaxed),
            self.max_ms.load(Ordering::Relaxed)
        );
    }
}

/// Sends one request and checks what every request during chaos must do:
/// answer within the deadline (plus slack) with `ok` or 503. Returns the body
/// on `ok`, `None` on 503 or a violation.
async fn send_checked<Fut>(
    what: &str,
    ok: u16,
    v: &Violations,
    stats: &Stats,
    send: Fut,
) -> Option<Value>
where
    Fut: Future<Output = Resp>,
{
    let started = Instant::now();
    let resp = send.await;
    let took = started.elapsed();
    stats
        .max_ms
        .fetch_max(took.as_millis() as u64, Ordering::Relaxed);
    if took > REQUEST_TIMEOUT + HANG_SLACK {
        v.push(format!(
            "{what}: answered {} after {took:?}, past the {REQUEST_TIMEOUT:?} request timeout",
            resp.status
        ));
    }
    match resp.status {
        s if s == ok => Some(resp.body),
        503 => {
            stats.unavailable.fetch_add(1, Ordering::Relaxed);
            None
        }
        // The router is never faulted: a transport error is the router
        // failing (or the client's hang timeout firing).
        _ => {
            v.push(format!(
                "{what}: HTTP {} after {took:?}: {}",
                resp.status, resp.body
            ));
            None
        }
    }
}

// ---- what the writers write and remember ----

/// One upsert attempt of one record, in the order its writer sent them (each
/// id belongs to one writer, which has one request in flight at a time).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    seq: u64,
    acked: bool,
}

/// Every attempt per record id.
type Ledger = BTreeMap<String, Vec<Attempt>>;

fn record_id(writer: usize, i: usize) -> String {
    format!("w{writer}-{i:02}")
}

/// The writer that owns `id` (see [`record_id`]).
fn owner(id: &str) -> Option<u64> {
    id.strip_prefix('w')?.split('-').next()?.parse().ok()
}

/// An upsert of `ids`, every record carrying (writer, seq) in its metadata,
/// embedding and document, so a record mixing two writes shows.
fn upsert_body(writer: usize, seq: u64, ids: &[String]) -> Value {
    json!({
        "ids": ids,
        "embeddings": ids.iter().map(|_| [writer as f32, seq as f32]).collect::<Vec<_>>(),
        "metadatas": ids.iter().map(|_| json!({"writer": writer, "seq": seq})).collect::<Vec<_>>(),
        "documents": ids.iter().map(|_| format!("w{writer} s{seq}")).collect::<Vec<_>>(),
    })
}

/// The (writer, seq) a stored record holds, or why it is malformed.
fn written_by(id: &str, row: &Row) -> Result<(u64, u64), String> {
    let writer = row.metadata["writer"].as_u64();
    let seq = row.metadata["seq"].as_u64();
    let (Some(writer), Some(seq)) = (writer, seq) else {
        return Err(format!("{id}: metadata without writer/seq: {row:?}"));
    };
    let consistent = row.document == json!(format!("w{writer} s{seq}"))
        && row.embedding == json!([writer as f64, seq as f64]);
    if !consistent {
        return Err(format!(
            "{id}: fields of different writes in one record: {row:?}"
        ));
    }
    Ok((writer, seq))
}

/// Everything a writer task needs; cloned per task.
#[derive(Clone)]
struct Shared {
    collection: String,
    violations: Violations,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

/// Upserts batches of 1-3 of its own ids through `client` until told to
/// stop; returns every attempt.
async fn soak_writer(writer: usize, client: Client, s: Shared, seed: u64) -> Ledger {
    let mut rng = StdRng::seed_from_u64(seed);
    let pool: Vec<String> = (0..IDS_PER_WRITER).map(|i| record_id(writer, i)).collect();
    let mut ledger = Ledger::new();
    let mut seq = 0;
    while !s.stop.load(Ordering::Relaxed) {
        seq += 1;
        let n = rng.gen_range(1..=3);
        let ids: Vec<String> = pool.choose_multiple(&mut rng, n).cloned().collect();
        for id in &ids {
            let attempt = Attempt { seq, acked: false };
            ledger.entry(id.clone()).or_default().push(attempt);
        }
        let what = format!("writer {writer} upsert seq {seq} of {ids:?}");
        let body = upsert_body(writer, seq, &ids);
        let send = client.records(&s.collection, "upsert", &body);
        if send_checked(&what, 200, &s.violations, &s.stats, send)
            .await
            .is_some()
        {
            s.stats.acked.fetch_add(1, Ordering::Relaxed);
            for id in &ids {
                if let Some(a) = ledger.get_mut(id).and_then(|v| v.last_mut()) {
                    a.acked = true;
                }
            }
        } else {
            // A 503 may come back at once (no leader known): do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    ledger
}

/// Upserts one of its ids through `write`, and after each acknowledgement
/// reads it back through `read` (another router): the read must see the
/// acknowledged write (promise 2). A read answering 503 is retried; every
/// answer it does give must show the write.
async fn read_your_write_writer(
    writer: usize,
    write: Client,
    read: Client,
    s: Shared,
    seed: u64,
) -> Ledger {
    let mut rng = StdRng::seed_from_u64(seed);
    let pool: Vec<String> = (0..8).map(|i| record_id(writer, i)).collect();
    let mut ledger = Ledger::new();
    let mut seq = 0;
    while !s.stop.load(Ordering::Relaxed) {
        seq += 1;
        let id = pool.choose(&mut rng).expect("ids").clone();
        let attempt = Attempt { seq, acked: false };
        ledger.entry(id.clone()).or_default().push(attempt);
        let what = format!(
            "writer {writer} upsert seq {seq} of {id} via {}",
            write.base()
        );
        let body = upsert_body(writer, seq, std::slice::from_ref(&id));
        let send = write.records(&s.collection, "upsert", &body);
        if send_checked(&what, 200, &s.violations, &s.stats, send)
            .await
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        s.stats.acked.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = ledger.get_mut(&id).and_then(|v| v.last_mut()) {
            a.acked = true;
        }
        check_read_after_ack(writer, seq, &id, &read, &s).await;
    }
    ledger
}

/// Reads `id` through `read` until an answer (or [`LONG`]); the answer must
/// hold (writer, seq).
async fn check_read_after_ack(writer: usize, seq: u64, id: &str, read: &Client, s: &Shared) {
    let what = format!(
        "get of {id} via {} after seq {seq} was acknowledged",
        read.base()
    );
    let body = json!({"ids": [id], "include": ["metadatas", "documents", "embeddings"]});
    let started = Instant::now();
    loop {
        let send = read.records(&s.collection, "get", &body);
        if let Some(got) = send_checked(&what, 200, &s.violations, &s.stats, send).await {
            s.stats.reads_checked.fetch_add(1, Ordering::Relaxed);
            match rows(&got).get(id).map(|row| written_by(id, row)) {
                Some(Ok(seen)) if seen == (writer as u64, seq) => {}
                Some(Ok((w, seen))) => s.violations.push(format!(
                    "{what}: stale read, saw writer {w} seq {seen} (waited {:?})",
                    started.elapsed()
                )),
                Some(Err(e)) => s.violations.push(format!("{what}: {e}")),
                None => s.violations.push(format!("{what}: record missing: {got}")),
            }
            return;
        }
        if started.elapsed() > LONG || s.stop.load(Ordering::Relaxed) {
            if !s.stop.load(Ordering::Relaxed) {
                s.violations
                    .push(format!("{what}: no answer but 503 for {LONG:?}"));
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- faults ----

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// kill -9, restarted when cleared.
    Kill,
    /// SIGSTOP, SIGCONT when cleared.
    Pause,
    /// Raft traffic to and from the node dropped (routers still reach it).
    Partition,
}

impl Fault {
    fn random(rng: &mut StdRng) -> Fault {
        *[Fault::Kill, Fault::Pause, Fault::Partition]
            .choose(rng)
            .expect("faults")
    }

    async fn inject(self, cluster: &Cluster, node: u64) {
        match self {
            Fault::Kill => cluster.kill_node(node),
            Fault::Pause => cluster.pause_node(node, true),
            Fault::Partition => cluster.partition(&[node]).await,
        }
    }

    async fn clear(self, cluster: &Cluster, node: u64) {
        match self {
            Fault::Kill => {
                cluster.spawn_node(node);
                cluster.wait_node_up(node, LONG).await;
            }
            Fault::Pause => cluster.pause_node(node, false),
            Fault::Partition => cluster.heal().await,
        }
    }

    /// How long the fault lasts: sometimes under one election timeout (the
    /// node comes back before anyone noticed), mostly well over it.
    fn hold(self, rng: &mut StdRng) -> Duration {
        Duration::from_millis(rng.gen_range(200..4000))
    }
}

/// No node process may exit on its own (only the harness kills them).
#[track_caller]
fn assert_no_crash(cluster: &Cluster) {
    let exited = cluster.exited();
    assert!(
        exited.is_empty(),
        "node processes exited on their own: {exited:?}; log tails:\n{}",
        cluster.log_tails(40)
    );
}

/// Which node a minority fault hits.
#[derive(Debug, Clone, Copy)]
enum Target {
    AnyNode,
    /// The leader of a random group (catalogue or shard), to force elections.
    GroupLeader,
}

/// Until `until`: one fault on one node at a time (a minority of every
/// group), cleared after a while, then every group must elect a leader again
/// (promise 4) before the next. Returns the number of faults injected.
async fn minority_faults(
    cluster: &Cluster,
    rng: &mut StdRng,
    until: Instant,
    target: Target,
) -> usize {
    let started = Instant::now();
    let mut faults = 0;
    while Instant::now() < until {
        let node = match target {
            Target::AnyNode => None,
            Target::GroupLeader => {
                let groups: Vec<u64> = (0..=cluster.shard_groups().len() as u64).collect();
                let g = *groups.choose(rng).expect("groups");
                cluster.find_leader(g, &cluster.running()).await
            }
        };
        let node = node.unwrap_or_else(|| *cluster.ids().choose(rng).expect("nodes"));
        let fault = Fault::random(rng);
        let hold = fault.hold(rng);
        eprintln!(
            "[{:>6.1?}] fault {fault:?} on node {node} for {hold:?}",
            started.elapsed()
        );
        fault.inject(cluster, node).await;
        faults += 1;
        tokio::time::sleep(hold).await;
        fault.clear(cluster, node).await;
        assert_no_crash(cluster);
        let leaders = cluster.wait_all_leaders(LONG).await;
        eprintln!("[{:>6.1?}] cleared; leaders {leaders:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..2000))).await;
    }
    faults
}

/// Until `until`: kill -9 of every node at once (in random order, a few ms
/// apart) in the middle of the writes, then a restart of all of them. The
/// outage sometimes outlasts the request timeout, so that writes in flight
/// answer 503 while some of them were committed before the kill.
async fn whole_cluster_kills(cluster: &Cluster, rng: &mut StdRng, until: Instant) -> usize {
    let started = Instant::now();
    let mut kills = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(2000..8000))).await;
        let mut order = cluster.ids();
        order.shuffle(rng);
        eprintln!("[{:>6.1?}] kill -9 of nodes {order:?}", started.elapsed());
        for node in &order {
            cluster.kill_node(*node);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
        }
        kills += 1;
        let down = rng.gen_range(200..2 * REQUEST_TIMEOUT.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(down)).await;
        for node in cluster.ids() {
            cluster.spawn_node(node);
        }
        for node in cluster.ids() {
            cluster.wait_node_up(node, LONG).await;
        }
        assert_no_crash(cluster);
        let leaders = cluster.wait_all_leaders(LONG).await;
        eprintln!(
            "[{:>6.1?}] restarted; leaders {leaders:?}",
            started.elapsed()
        );
    }
    kills
}

// ---- one run: cluster, writers, verification ----

struct Soak {
    cluster: Cluster,
    shared: Shared,
    rng: StdRng,
}

impl Soak {
    /// A 3-node cluster with `routers` routers and one collection holding
    /// the warm record.
    async fn start(routers: usize) -> Soak {
        let cluster = Cluster::start(ClusterOptions {
            request_timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            snapshot_interval_entries: Some(SNAPSHOT_EVERY),
            routers: vec![RouterOptions::default(); routers],
            ..ClusterOptions::default()
        })
        .await;
        let c = cluster.client(0);
        let collection = c.new_collection("chaos", json!({})).await;
        c.records(&collection, "upsert", &upsert_body(0, 0, &[WARM_ID.into()]))
            .await
            .expect_status(200, "warm upsert before the faults");
        let shared = Shared {
            collection,
            violations: Violations::default(),
            stats: Arc::default(),
            stop: Arc::default(),
        };
        Soak {
            cluster,
            shared,
            rng: StdRng::seed_from_u64(chaos_seed()),
        }
    }

    /// Client of router `i` whose own timeout is the hang bound.
    fn client(&self, i: usize) -> Client {
        self.cluster
            .client_with_timeout(i, REQUEST_TIMEOUT + HANG_SLACK)
    }

    fn spawn_soak_writers(&mut self, n: usize) -> Vec<JoinHandle<Ledger>> {
        (0..n)
            .map(|w| {
                let seed = self.rng.gen();
                tokio::spawn(soak_writer(w, self.client(0), self.shared.clone(), seed))
            })
            .collect()
    }

    /// Writer w writes through router w % 2 and reads through the other.
    fn spawn_read_your_write_writers(&mut self, n: usize) -> Vec<JoinHandle<Ledger>> {
        (0..n)
            .map(|w| {
                let seed = self.rng.gen();
                let (write, read) = (self.client(w % 2), self.client((w + 1) % 2));
                tokio::spawn(read_your_write_writer(
                    w,
                    write,
                    read,
                    self.shared.clone(),
                    seed,
                ))
            })
            .collect()
    }

    /// Heals every fault, checks that the healed cluster takes a write
    /// through every router (promise 4), stops the writers and returns their
    /// merged ledgers.
    async fn stop(&mut self, writers: Vec<JoinHandle<Ledger>>) -> Ledger {
        assert_no_crash(&self.cluster);
        self.cluster.heal().await;
        assert_eq!(self.cluster.running(), self.cluster.ids(), "faults cleared");
        self.cluster.wait_all_leaders(LONG).await;
        for i in 0..self.cluster.router_count() {
            let c = self.client(i);
            let started = Instant::now();
            let body = upsert_body(0, 0, &[WARM_ID.into()]);
            eventually_ok(&format!("upsert via router {i} after the heal"), || {
                c.records(&self.shared.collection, "upsert", &body)
            })
            .await;
            eprintln!(
                "after the heal, router {i} took a write in {:?}",
                started.elapsed()
            );
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut ledger = Ledger::new();
        for w in writers {
            match w.await {
                Ok(l) => ledger.extend(l),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        ledger
    }

    /// Promises 1, 4 and 5 on the healed, quiet cluster: replicas converge
    /// with equal digests; through every router, every id holds a value
    /// written at or after its last acknowledged write; the count is between
    /// the acknowledged and the attempted distinct ids.
    async fn verify(&self, ledger: &Ledger) {
        let converged = self.cluster.wait_converged(CONVERGE).await;
        eprintln!("converged: {converged:?}");
        let get_all = json!({"include": ["metadatas", "documents", "embeddings"]});
        for i in 0..self.cluster.router_count() {
            let c = self.client(i);
            let got = eventually_ok(&format!("get all via router {i}"), || {
                c.records(&self.shared.collection, "get", &get_all)
            })
            .await;
            let stored = rows(&got);
            // A get by ids takes another path on the shards (lookup, not a
            // scan): it must return the same records.
            let ids: BTreeSet<&String> = stored.keys().chain(ledger.keys()).collect();
            let by_ids = json!({"ids": ids, "include": ["metadatas", "documents", "embeddings"]});
            let looked_up = eventually_ok(&format!("get by ids via router {i}"), || {
                c.records(&self.shared.collection, "get", &by_ids)
            })
            .await;
            if rows(&looked_up) != stored {
                self.shared.violations.push(format!(
                    "via router {i}: get by ids and get of everything differ:\n{looked_up}\nvs\n{got}"
                ));
            }
            eprintln!(
                "via router {i}: {} records, {} of them hold a write that was not acknowledged \
                 (answered 503, committed anyway)",
                stored.len(),
                unacknowledged_but_stored(ledger, &stored)
            );
            for problem in final_state_problems(ledger, &stored) {
                self.shared
                    .violations
                    .push(format!("via router {i}: {problem}"));
            }
            let count_path = format!(
                "{}/collections/{}/count",
                tests::DEFAULT_DB,
                self.shared.collection
            );
            let count =
                eventually_ok(&format!("count via router {i}"), || c.get(&count_path)).await;
            let acked = ledger
                .values()
                .filter(|a| a.iter().any(|a| a.acked))
                .count() as u64;
            let attempted = ledger.len() as u64;
            let (low, high) = (acked + 1, attempted + 1); // + the warm record
            match count.as_u64() {
                Some(n) if (low..=high).contains(&n) && n == stored.len() as u64 => {}
                _ => self.shared.violations.push(format!(
                    "count via router {i} is {count}: expected between {low} (acknowledged ids) \
                     and {high} (attempted ids) and equal to get's {}",
                    stored.len()
                )),
            }
        }
        self.shared.violations.assert_none(&self.cluster);
    }
}

impl Drop for Soak {
    fn drop(&mut self) {
        // Runs before the cluster's drop kills the processes.
        self.shared.violations.closed.store(true, Ordering::Relaxed);
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Ids holding a write later than their last acknowledged one (or holding
/// any write when none was acknowledged): the 503s that committed anyway.
fn unacknowledged_but_stored(ledger: &Ledger, stored: &BTreeMap<String, Row>) -> usize {
    ledger
        .iter()
        .filter(|(id, attempts)| {
            let acked = attempts.iter().rev().find(|a| a.acked).map(|a| a.seq);
            let held = stored.get(*id).and_then(|row| written_by(id, row).ok());
            held.is_some_and(|(_, seq)| acked.is_none_or(|a| seq > a))
        })
        .count()
}

/// What is wrong with the stored records given every attempt. An id whose
/// last acknowledged write is seq a must hold a or a later attempt (a write
/// that answered 503 may still have committed); an id never acknowledged may
/// be absent or hold any attempt; nothing else may be stored.
fn final_state_problems(ledger: &Ledger, stored: &BTreeMap<String, Row>) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, attempts) in ledger {
        let last_acked = attempts.iter().rposition(|a| a.acked);
        let allowed: BTreeSet<u64> = attempts[last_acked.unwrap_or(0)..]
            .iter()
            .map(|a| a.seq)
            .collect();
        let acked_seq = last_acked.map(|i| attempts[i].seq);
        let Some(row) = stored.get(id) else {
            if let Some(seq) = acked_seq {
                problems.push(format!("{id}: lost, its upsert seq {seq} was acknowledged"));
            }
            continue;
        };
        match written_by(id, row) {
            Err(e) => problems.push(e),
            Ok((writer, _)) if Some(writer) != owner(id) => {
                problems.push(format!("{id}: holds writer {writer}'s value"))
            }
            Ok((_, seq)) if allowed.contains(&seq) => {}
            Ok((_, seq)) if attempts.iter().any(|a| a.seq == seq) => problems.push(format!(
                "{id}: holds seq {seq}, older than its last acknowledged seq {acked_seq:?} \
                 (attempts {attempts:?})"
            )),
            Ok((_, seq)) => problems.push(format!("{id}: holds seq {seq}, never sent for it")),
        }
    }
    for id in stored.keys() {
        if id != WARM_ID && !ledger.contains_key(id) {
            problems.push(format!("{id}: stored but never written"));
        }
    }
    if !stored.contains_key(WARM_ID) {
        problems.push("the warm record (acknowledged before the faults) is lost".into());
    }
    problems
}

/// Retries `send` until 200 (leaders settling after the heal); the body.
async fn eventually_ok<F, Fut>(what: &str, send: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Resp>,
{
    eventually(what, 200, LONG, send).await
}

// ---- the tests ----

/// Four writers upsert through the router while one node at a time is
/// killed and restarted, stopped and resumed, or partitioned and healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos tier: scripts/test --chaos"]
async fn soak_with_minority_faults() {
    let mut soak = Soak::start(1).await;
    let writers = soak.spawn_soak_writers(4);
    let until = Instant::now() + chaos_duration();
    let mut rng = StdRng::seed_from_u64(soak.rng.gen());
    let faults = minority_faults(&soak.cluster, &mut rng, until, Target::AnyNode).await;
    let ledger = soak.stop(writers).await;
    soak.shared.stats.print(faults);
    assert!(faults > 0, "no fault injected: CHAOS_SECS too small?");
    assert!(
        soak.shared.stats.acked.load(Ordering::Relaxed) > 0,
        "no write was acknowledged during the run"
    );
    soak.verify(&ledger).await;
}

/// Two routers; each writer upserts through one and reads through the
/// other right after the acknowledgement, while group leaders are killed,
/// stopped or partitioned (a deposed leader that still answers is where a
/// stale read would come from).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos tier: scripts/test --chaos"]
async fn reads_through_another_router_see_acknowledged_writes() {
    let mut soak = Soak::start(2).await;
    let writers = soak.spawn_read_your_write_writers(2);
    let until = Instant::now() + chaos_duration();
    let mut rng = StdRng::seed_from_u64(soak.rng.gen());
    let faults = minority_faults(&soak.cluster, &mut rng, until, Target::GroupLeader).await;
    let ledger = soak.stop(writers).await;
    soak.shared.stats.print(faults);
    assert!(faults > 0, "no fault injected: CHAOS_SECS too small?");
    assert!(
        soak.shared.stats.reads_checked.load(Ordering::Relaxed) > 0,
        "no read after an acknowledged write was checked"
    );
    soak.verify(&ledger).await;
}

/// Four writers upsert while every node is killed with -9 at once, again
/// and again; after each restart the cluster serves again, and at the end
/// every acknowledged write is there (promise 1: a restart of the whole
/// cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos tier: scripts/test --chaos"]
async fn whole_cluster_kill_mid_write_keeps_acknowledged_writes() {
    let mut soak = Soak::start(1).await;
    let writers = soak.spawn_soak_writers(4);
    let until = Instant::now() + chaos_duration();
    let mut rng = StdRng::seed_from_u64(soak.rng.gen());
    let kills = whole_cluster_kills(&soak.cluster, &mut rng, until).await;
    let ledger = soak.stop(writers).await;
    soak.shared.stats.print(kills);
    assert!(kills > 0, "no kill injected: CHAOS_SECS too small?");
    soak.verify(&ledger).await;
}

/// A node restarted behind its leaders' compacted logs gets a snapshot from
/// each shard leader and restores its state machine from it on the apply
/// thread while the replica goes on ticking. An election timeout in that
/// window must not crash the node. Here the node is stopped (SIGSTOP) right
/// after it logs the install, and resumed after several election timeouts:
/// its tick timer then fires every missed tick at once, so the election
/// timeout comes before the restore can finish. Found by
/// `soak_with_minority_faults`, where raft-rs panicked in `hup` with
/// "unexpected error getting unapplied entries [..): Store(Compacted)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "chaos tier: scripts/test --chaos"]
async fn election_timeout_while_restoring_a_leader_snapshot() {
    const ROUNDS: u64 = 3;
    const VICTIM: u64 = 3;
    let soak = Soak::start(1).await;
    let (cluster, c) = (&soak.cluster, soak.client(0));
    let collection = soak.shared.collection.clone();
    // Some state, so that a restore takes a moment.
    for batch in 0..20 {
        let ids: Vec<String> = (0..100).map(|i| format!("bulk-{batch}-{i}")).collect();
        c.records(&collection, "upsert", &upsert_body(0, batch, &ids))
            .await
            .expect_status(200, "bulk upsert");
    }
    // One id per shard: each upsert of them is one entry in every shard group.
    let mut per_shard: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0.. {
        let id = format!("probe-{i}");
        let shards = cluster.shard_groups().len();
        per_shard
            .entry(common::hash::shard_index(&collection, &id, shards))
            .or_insert(id);
        if per_shard.len() == shards {
            break;
        }
    }
    let probes: Vec<String> = per_shard.into_values().collect();
    let needle = "snapshot installed in the log";
    for round in 1..=ROUNDS {
        cluster.kill_node(VICTIM);
        // Past a snapshot on every leader, which compacts its log beyond
        // where the victim stopped: the victim will need a snapshot.
        for seq in 0..SNAPSHOT_EVERY + 50 {
            c.records(&collection, "upsert", &upsert_body(1, seq, &probes))
                .await
                .expect_status(200, "upsert with one node down");
        }
        let mut log = LogWatch::new(cluster.node_log(VICTIM));
        cluster.spawn_node(VICTIM);
        log.wait_for(needle, LONG).await;
        cluster.pause_node(VICTIM, true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.pause_node(VICTIM, false);
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprintln!("round {round}: node {VICTIM} resumed in the middle of a snapshot restore");
        assert_no_crash(cluster);
    }
    cluster.wait_all_leaders(LONG).await;
    cluster.wait_converged(CONVERGE).await;
}

/// Follows a log file from its current end.
struct LogWatch {
    path: std::path::PathBuf,
    offset: u64,
}

impl LogWatch {
    fn new(path: std::path::PathBuf) -> LogWatch {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogWatch { path, offset }
    }

    /// Waits until a line containing `needle` is appended (polling every
    /// millisecond: the caller acts on the event right away).
    async fn wait_for(&mut self, needle: &str, timeout: Duration) {
        use std::io::{Read, Seek, SeekFrom};
        let deadline = Instant::now() + timeout;
        let mut text = String::new();
        loop {
            if let Ok(mut f) = std::fs::File::open(&self.path) {
                let mut more = String::new();
                if f.seek(SeekFrom::Start(self.offset)).is_ok()
                    && f.read_to_string(&mut more).is_ok()
                {
                    self.offset += more.len() as u64;
                    text += &more;
                }
            }
            if let Some(at) = text.find(needle) {
                // Keep what follows the match for the next wait.
                text.drain(..at + needle.len());
                return;
            }
            // Only complete lines can hold the needle later; keep the tail.
            if let Some(nl) = text.rfind('\n') {
                text.drain(..=nl);
            }
            assert!(
                Instant::now() < deadline,
                "{}: no line with {needle:?} after {timeout:?}",
                self.path.display()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

// ---- the oracle itself (fast tier: no cluster) ----

/// `final_state_problems` is what the chaos tests rest on: check that it
/// accepts exactly the outcomes the ledger allows.
#[test]
fn final_state_oracle_accepts_only_allowed_values() {
    let id = record_id(1, 0);
    let attempt = |seq, acked| Attempt { seq, acked };
    let row = |writer: u64, seq: u64| Row {
        embedding: json!([writer as f64, seq as f64]),
        document: json!(format!("w{writer} s{seq}")),
        metadata: json!({"writer": writer, "seq": seq}),
        uri: Value::Null,
    };
    let stored = |rows: Vec<(&str, Row)>| -> BTreeMap<String, Row> {
        let mut out: BTreeMap<String, Row> = rows
            .into_iter()
            .map(|(id, row)| (id.to_string(), row))
            .collect();
        out.insert(WARM_ID.into(), row(0, 0));
        out
    };
    // seq 3 acknowledged, 5 answered 503 (may have committed), 2 failed before.
    let ledger: Ledger = [(
        id.clone(),
        vec![attempt(2, false), attempt(3, true), attempt(5, false)],
    )]
    .into();
    for ok in [3, 5] {
        let problems = final_state_problems(&ledger, &stored(vec![(&id, row(1, ok))]));
        assert!(problems.is_empty(), "seq {ok}: {problems:?}");
    }
    let bad: Vec<(&str, BTreeMap<String, Row>)> = vec![
        (
            "older than the acknowledged",
            stored(vec![(&id, row(1, 2))]),
        ),
        ("never sent", stored(vec![(&id, row(1, 4))])),
        ("another writer's", stored(vec![(&id, row(2, 3))])),
        ("lost", stored(vec![])),
        (
            "unknown id",
            stored(vec![(&id, row(1, 3)), ("w9-00", row(9, 1))]),
        ),
        ("torn", {
            let mut torn = row(1, 3);
            torn.document = json!("w1 s5");
            stored(vec![(&id, torn)])
        }),
    ];
    for (what, stored) in bad {
        assert!(
            !final_state_problems(&ledger, &stored).is_empty(),
            "{what} value accepted"
        );
    }
    // Never acknowledged: absent, or any attempt.
    let ledger: Ledger = [(id.clone(), vec![attempt(1, false), attempt(4, false)])].into();
    assert!(final_state_problems(&ledger, &stored(vec![])).is_empty());
    assert!(final_state_problems(&ledger, &stored(vec![(&id, row(1, 1))])).is_empty());
    // The warm record must be there.
    let mut no_warm = stored(vec![]);
    no_warm.remove(WARM_ID);
    assert!(!final_state_problems(&ledger, &no_warm).is_empty());
}
