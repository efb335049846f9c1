//! Measurements of the replication layer on real processes, run by
//! `scripts/bench-cluster` in a release build. They assert only correctness
//! (every write is acknowledged); the figures are printed, never asserted.

mod harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::kv::{self, KvClient};
use harness::{election_timeout, Cluster, SERIAL};

const LONG: Duration = Duration::from_secs(30);

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "min {:.0} ms, median {:.0} ms, max {:.0} ms over {} runs",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}

#[tokio::test]
#[ignore = "measurement; run by scripts/bench-cluster"]
async fn failover_time_leader_kill_to_first_write() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(kv::options()).await;
    cluster.wait_all_leaders(LONG).await;
    let group = 1;
    cluster.put(group, "warm-up", "x", LONG).await.expect("put");
    let mut samples = Vec::new();
    for run in 0..10 {
        let leader = cluster.wait_leader(group, &cluster.running(), LONG).await;
        let start = Instant::now();
        cluster.kill_node(leader);
        cluster
            .put(group, &format!("after-kill-{run}"), "x", LONG)
            .await
            .expect("write after failover");
        samples.push(start.elapsed());
        cluster.spawn_node(leader);
        cluster
            .wait_group_converged(group, &cluster.ids(), LONG)
            .await;
    }
    println!(
        "failover (kill -9 leader -> first acknowledged write), election timeout {} ms: {}",
        election_timeout().as_millis(),
        summary(samples)
    );
}

#[tokio::test]
#[ignore = "measurement; run by scripts/bench-cluster"]
async fn replicated_write_throughput_one_group() {
    let _serial = SERIAL.lock().await;
    let cluster = Arc::new(Cluster::start(kv::options()).await);
    cluster.wait_all_leaders(LONG).await;
    for writers in [1usize, 16] {
        let done = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(5);
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (cluster, done) = (cluster.clone(), done.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < until {
                        cluster
                            .put(1, &format!("w{writers}-{w}-{i}"), "value", LONG)
                            .await
                            .expect("put");
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer");
        }
        println!(
            "replicated writes, one group, 3 replicas, fsync on, {writers} concurrent writers: {:.0} writes/s",
            done.load(Ordering::Relaxed) as f64 / 5.0
        );
    }
}
