//! Real network faults (`tests::faults::net`): each node and router in its
//! own network namespace, packets dropped by nftables and delayed by `tc
//! netem`. Each test shows the fault acts on real traffic and that `heal`
//! restores service. They need root, iproute2 and nftables; without them they
//! print why and pass (the transport-filter tests cover partitions then).
//!
//! The first test is in the normal tier (about 15 s); the others are in the
//! slow tier (`scripts/test --chaos`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::faults::netns::{self, Member};
use tests::faults::{FaultError, NetFaults, Netem};
use tests::{Client, Cluster, ClusterOptions, RouterOptions};

const LONG: Duration = Duration::from_secs(30);

/// Prints why the namespaces cannot be used and returns true (skip).
fn skip() -> bool {
    match netns::available() {
        Some(why) => {
            eprintln!("SKIPPED: network namespace faults unavailable here: {why}");
            true
        }
        None => false,
    }
}

async fn start(routers: usize, request_timeout_ms: u64) -> Cluster {
    Cluster::start(ClusterOptions {
        netns: true,
        request_timeout_ms,
        routers: vec![RouterOptions::default(); routers],
        ..ClusterOptions::default()
    })
    .await
}

fn records(ids: &[String], tag: &str) -> Value {
    json!({
        "ids": ids,
        "embeddings": ids.iter().enumerate().map(|(i, _)| vec![i as f32, 1.0]).collect::<Vec<_>>(),
        "documents": ids.iter().map(|i| format!("{tag} {i}")).collect::<Vec<_>>(),
    })
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Record ids of `collection` that live in shard group `group` (shard index
/// `group - 1`).
fn ids_in_group(collection: &str, group: u64, shards: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("g{group}-{i}"))
        .filter(|r| common::hash::shard_index(collection, r, shards) as u64 + 1 == group)
        .take(n)
        .collect()
}

/// Packets from `from` that reach `node` during `window` (a difference of
/// counters: packets already in flight when a rule changed do not count).
async fn received(net: &NetFaults, node: u64, from: Member, window: Duration) -> u64 {
    let before = net.packets_received(node, from).expect("counter");
    tokio::time::sleep(window).await;
    net.packets_received(node, from).expect("counter") - before
}

/// Waits until no node among `among` but `leader` leads `group`, and
/// `leader` leads it; moves the leadership there first.
async fn lead(cluster: &Cluster, group: u64, leader: u64) {
    let deadline = Instant::now() + LONG;
    loop {
        let current = cluster.wait_leader(group, &cluster.ids(), LONG).await;
        if current == leader {
            return;
        }
        cluster.transfer_leader(current, group, leader).await;
        assert!(
            Instant::now() < deadline,
            "group {group}: leadership does not move to node {leader}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Majority/minority: the leader of a shard group is cut from the two other
/// nodes. No packet crosses (the nftables counters stay at 0), the majority
/// elects a new leader within a few election timeouts, the old leader steps
/// down (check_quorum), writes through the router go on; after `heal` the
/// old leader catches up and every write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_leader_loses_leadership_and_heal_restores() {
    if skip() {
        return;
    }
    let cluster = start(1, 5_000).await;
    let c = cluster.client(0);
    let col = c.new_collection("netns-minority", json!({})).await;
    let before = names("before-", 30);
    c.add_ok(&col, &records(&before, "before")).await;

    let group = 1;
    let old = cluster.wait_leader(group, &cluster.ids(), LONG).await;
    let majority: Vec<u64> = cluster.ids().into_iter().filter(|&n| n != old).collect();
    let net = cluster.net();
    net.partition(&[&[old]]).expect("partition");
    let cut_at = Instant::now();

    let new = cluster.wait_leader(group, &majority, LONG).await;
    let elected = cut_at.elapsed();
    let stepped_down = cluster.wait_stepped_down(old, group, cut_at, LONG).await;
    eprintln!(
        "group {group}: node {new} elected {elected:?} after the cut; old leader {old} stepped down after {stepped_down:?}"
    );
    let window = Duration::from_millis(500);
    for &m in &majority {
        assert_eq!(
            received(net, old, Member::Node(m), window).await,
            0,
            "node {m}'s packets reached the cut-off node {old}"
        );
        assert_eq!(
            received(net, m, Member::Node(old), window).await,
            0,
            "node {old}'s packets reached node {m} across the cut"
        );
    }

    let during = names("during-", 30);
    let resp = c.records(&col, "upsert", &records(&during, "during")).await;
    assert_eq!(resp.status, 200, "upsert with a majority: {}", resp.body);

    net.heal().expect("heal");
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    assert!(
        received(net, old, Member::Node(new), window).await > 0,
        "healed: node {new}'s packets reach node {old} again"
    );
    let all: Vec<String> = before.iter().chain(&during).cloned().collect();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(c.present_ids(&col, &all).await, expected);
}

/// Median of `n` timed upserts of `ids` through `c`.
async fn median_upsert(c: &Client, col: &str, ids: &[String], n: usize) -> Duration {
    let mut took = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        let resp = c
            .records(col, "upsert", &records(ids, &format!("t{i}")))
            .await;
        assert_eq!(resp.status, 200, "timed upsert: {}", resp.body);
        took.push(started.elapsed());
    }
    took.sort();
    took[n / 2]
}

/// Bridge, one-way, router-to-node and netem, each healed before the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow tier: network namespace faults (needs root)"]
async fn bridge_one_way_router_cut_and_netem_act_on_real_traffic() {
    if skip() {
        return;
    }
    let cluster = start(2, 3_000).await;
    let net = cluster.net();
    let (c0, c1) = (cluster.client(0), cluster.client(1));
    let col = c0.new_collection("netns-faults", json!({})).await;
    let window = Duration::from_millis(1000);

    // Bridge: node 2 sees 1 and 3, which do not see each other; the cluster
    // keeps a quorum through node 2.
    net.bridge(2).expect("bridge");
    assert_eq!(received(net, 1, Member::Node(3), window).await, 0);
    assert_eq!(received(net, 3, Member::Node(1), window).await, 0);
    assert!(received(net, 1, Member::Node(2), window).await > 0);
    assert!(received(net, 3, Member::Node(2), window).await > 0);
    let ids = names("bridge-", 20);
    let resp = c0.records(&col, "upsert", &records(&ids, "bridge")).await;
    assert_eq!(resp.status, 200, "upsert across a bridge: {}", resp.body);
    net.heal().expect("heal");

    // One-way: 1's packets to 2 are dropped, 2's reach 1.
    net.one_way(1, 2).expect("one way");
    assert_eq!(received(net, 2, Member::Node(1), window).await, 0);
    assert!(received(net, 1, Member::Node(2), window).await > 0);
    net.heal().expect("heal");
    assert!(received(net, 2, Member::Node(1), window).await > 0);

    // Router 0 cut from node 2, which leads shard group 1 and nothing else
    // (every group led by its preferred leader, where the nodes keep it):
    // router 0 fails on that shard only; router 1 serves everything.
    for g in cluster.groups() {
        let preferred = common::placement::preferred_leader(&cluster.config, g);
        lead(&cluster, g, preferred.expect("a preferred leader")).await;
    }
    let on_2 = ids_in_group(&col, 1, 3, 5);
    let elsewhere = ids_in_group(&col, 2, 3, 5);
    // Router 0 learns the new leaders first: a cached leader behind a
    // blackhole costs the router a whole attempt budget (no connect timeout
    // ends it sooner), which would eat this short request timeout.
    for ids in [&on_2, &elsewhere] {
        let resp = c0.records(&col, "upsert", &records(ids, "prime")).await;
        assert_eq!(resp.status, 200, "priming router 0: {}", resp.body);
    }
    net.cut_router(0, 2).expect("cut router");
    let resp = c0
        .records(&col, "upsert", &records(&elsewhere, "cut"))
        .await;
    assert_eq!(
        resp.status, 200,
        "router 0, shard led by node 3: {}",
        resp.body
    );
    let resp = c0.records(&col, "upsert", &records(&on_2, "cut")).await;
    assert_eq!(
        resp.status, 503,
        "router 0, shard led by the cut node 2: {}",
        resp.body
    );
    let resp = c1.records(&col, "upsert", &records(&on_2, "cut")).await;
    assert_eq!(
        resp.status, 200,
        "router 1 still reaches node 2: {}",
        resp.body
    );
    assert_eq!(received(net, 2, Member::Router(0), window).await, 0);
    net.heal().expect("heal");
    let resp = c0.records(&col, "upsert", &records(&on_2, "healed")).await;
    assert_eq!(resp.status, 200, "router 0 after heal: {}", resp.body);

    // Loss (nftables): 30 % of node 2's packets to the other nodes vanish;
    // about that share of what node 2 sends them never arrives, and writes
    // still succeed (TCP retransmits).
    let loss = Netem {
        loss_percent: 30.0,
        ..Netem::default()
    };
    let peers = [Member::Node(1), Member::Node(3)];
    for to in peers {
        net.netem_link(2, to, loss).expect("loss");
    }
    let count = || {
        peers.iter().fold((0, 0), |(sent, got), &to| {
            let Member::Node(id) = to else { unreachable!() };
            (
                sent + net.packets_sent(2, to).unwrap(),
                got + net.packets_received(id, Member::Node(2)).unwrap(),
            )
        })
    };
    let (sent_before, got_before) = count();
    for _ in 0..15 {
        let resp = c0.records(&col, "upsert", &records(&on_2, "lossy")).await;
        assert_eq!(resp.status, 200, "upsert under 30 % loss: {}", resp.body);
    }
    tokio::time::sleep(window * 2).await;
    let (sent_after, got_after) = count();
    let (sent, got) = (sent_after - sent_before, got_after - got_before);
    let lost = 1.0 - got as f64 / sent.max(1) as f64;
    eprintln!(
        "30 % loss on 2 -> 1, 3: {sent} packets sent, {got} arrived ({:.0} % lost)",
        lost * 100.0
    );
    assert!(sent >= 40, "too few packets to measure loss: {sent}");
    assert!(
        (0.1..=0.5).contains(&lost),
        "loss {lost:.2} is not about 30 %"
    );
    net.heal().expect("heal");

    // Netem: 300 ms on everything node 2 (the shard's leader) sends; a write
    // there waits at least for the leader's answer to the router.
    let delay = Duration::from_millis(300);
    let base = median_upsert(&c0, &col, &on_2, 5).await;
    let netem = Netem {
        delay,
        ..Netem::default()
    };
    match net.netem(2, netem) {
        Ok(()) => {}
        Err(FaultError::Unavailable(why)) => {
            eprintln!("SKIPPED the netem delay part: {why}");
            net.heal().expect("heal");
            cluster.wait_converged(LONG).await;
            return;
        }
        Err(e) => panic!("netem: {e}"),
    }
    let slow = median_upsert(&c0, &col, &on_2, 5).await;
    eprintln!("upsert on node 2's shard: median {base:?} before, {slow:?} with {delay:?} netem");
    assert!(slow >= delay, "netem delay not seen: {slow:?} < {delay:?}");
    net.heal().expect("heal");
    // Per link: only node 2's packets to router 1 are delayed.
    net.netem_link(2, Member::Router(1), netem)
        .expect("netem link");
    let via_1 = median_upsert(&c1, &col, &on_2, 5).await;
    let via_0 = median_upsert(&c0, &col, &on_2, 5).await;
    eprintln!("link netem 2 -> router 1: median {via_1:?} via router 1, {via_0:?} via router 0");
    assert!(
        via_1 >= delay,
        "link netem not seen via router 1: {via_1:?}"
    );
    assert!(
        via_0 < via_1,
        "router 0's link was delayed too: {via_0:?} vs {via_1:?}"
    );
    net.heal().expect("heal");
    cluster.wait_converged(LONG).await;
}
