//! Link hints (`shard::indexer`): a follower links the points its leader indexed to
//! the neighbours the leader's search chose, without searching, and still finds
//! every record; it waits for hints only while they can still come.

use common::command::{ApplyOutcome, IndexConfig, PointLinks, RecordWrite, ShardCommand};
use common::{Filter, Space};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::model::{Driver, COLLECTION};
use crate::raft::state_machine::BackgroundRole;

const DIM: usize = 16;
const N: usize = 4_000;

fn leader() -> BackgroundRole {
    BackgroundRole {
        leading: true,
        has_followers: true,
        max_lag: 0,
    }
}

fn follower() -> BackgroundRole {
    BackgroundRole {
        leading: false,
        has_followers: true,
        max_lag: 0,
    }
}

fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect()
}

fn add(vs: &[Vec<f32>]) -> ShardCommand {
    add_as("r", vs)
}

/// An add of `vs` with ids `<prefix><i>`.
fn add_as(prefix: &str, vs: &[Vec<f32>]) -> ShardCommand {
    ShardCommand::Add {
        collection: COLLECTION.into(),
        records: vs
            .iter()
            .enumerate()
            .map(|(i, v)| RecordWrite {
                id: format!("{prefix}{i}"),
                embedding: Some(v.clone()),
                metadata: None,
                document: None,
                uri: None,
            })
            .collect(),
        mode: common::command::AddMode::RejectExisting,
    }
}

/// Two replicas of one shard with a low `ef_search`, so the graph's quality shows in
/// recall.
fn pair() -> (Driver, Driver) {
    let config = IndexConfig {
        space: Space::L2,
        ef_search: 12,
        ..IndexConfig::default()
    };
    (
        Driver::with_config(config.clone()),
        Driver::with_config(config),
    )
}

/// Runs the leader's next job and returns the command it answers, if any.
fn leader_step(d: &Driver) -> Option<ShardCommand> {
    let (collection, job) = d.sm.index_job(leader())?;
    let links = job.run();
    Some(ShardCommand::LinkHints { collection, links })
}

fn linked_from_hints(d: &Driver) -> u64 {
    d.sm.collection(COLLECTION)
        .expect("collection")
        .index()
        .linked_from_hints()
}

/// Recall@10 of the replica's queries (through its graph) against the exact answer.
fn recall(d: &Driver, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
    let mut found = 0;
    for q in queries {
        let mut exact: Vec<(usize, f32)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (i, Space::L2.distance(q, v)))
            .collect();
        exact.sort_by(|a, b| a.1.total_cmp(&b.1));
        let truth: Vec<String> = exact[..10].iter().map(|(i, _)| format!("r{i}")).collect();
        found += d
            .query(q, 10, Filter::default())
            .iter()
            .filter(|(id, _)| truth.contains(id))
            .count();
    }
    found as f64 / (10 * queries.len()) as f64
}

#[test]
fn a_follower_links_the_leaders_points_without_searching_at_the_same_recall() {
    let data = vectors(N, 7);
    let (mut l, mut f) = pair();
    l.apply_unindexed(add(&data));
    f.apply_unindexed(add(&data));
    // The log's order: the leader's hints follow the records they describe.
    while let Some(hints) = leader_step(&l) {
        l.apply_unindexed(hints.clone());
        f.apply_unindexed(hints);
        while let Some((_, job)) = f.sm.index_job(follower()) {
            assert!(job.run().is_empty(), "a follower reports no links");
        }
    }
    assert_eq!((l.sm.index_lag(), f.sm.index_lag()), (0, 0));
    assert_eq!(l.sm.digest(), f.sm.digest());
    assert_eq!(linked_from_hints(&l), 0, "the leader searches");
    let linked = linked_from_hints(&f);
    assert!(
        linked as usize >= N * 9 / 10,
        "{linked} of {N} points linked from hints"
    );
    let queries = vectors(200, 8);
    let (rl, rf) = (recall(&l, &data, &queries), recall(&f, &data, &queries));
    assert!(rl > 0.8, "leader recall {rl}");
    assert!(
        rf >= rl - 0.03,
        "follower recall {rf} against the leader's {rl}"
    );
}

#[test]
fn a_follower_waits_for_hints_and_stops_waiting_when_a_later_point_has_one() {
    let data = vectors(1_000, 9);
    let (mut l, mut f) = pair();
    l.apply_unindexed(add(&data));
    f.apply_unindexed(add(&data));
    // No hint yet, and the leader is heard from recently: the follower waits.
    assert!(f.sm.index_job(follower()).is_none());
    // The first chunk's hints are lost (a leader change); the second chunk's arrive.
    let _lost = leader_step(&l).expect("a first chunk");
    let second = leader_step(&l).expect("a second chunk");
    f.apply_unindexed(second);
    // The head's hint cannot come any more: its chunk is indexed by search, then the
    // hinted one without.
    let (_, job) = f.sm.index_job(follower()).expect("no more waiting");
    job.run();
    assert_eq!(linked_from_hints(&f), 0);
    let (_, job) = f.sm.index_job(follower()).expect("the hinted chunk");
    job.run();
    let linked = linked_from_hints(&f);
    assert!(linked >= 200, "{linked} of 256 linked from hints");
    // The rest has no hints and none are coming after them: the follower waits
    // again, and a leader's role indexes it all.
    assert!(f.sm.index_job(follower()).is_none());
    f.sm.index_everything();
    assert_eq!(f.sm.index_lag(), 0);
    assert_eq!(f.get_all(Filter::default()).len(), 1_000);
}

#[test]
fn hints_out_of_bounds_are_refused_and_wrong_ones_cost_nothing_but_time() {
    let data = vectors(1_500, 10);
    let (_, mut f) = pair();
    f.apply_unindexed(add(&data));
    let digest = f.sm.digest();
    let hint = |point: u64, level: u8, layers: Vec<Vec<u64>>| PointLinks {
        point,
        level,
        layers,
    };
    let refused = [
        vec![hint(0, 16, vec![vec![]; 17])],
        vec![hint(0, 1, vec![vec![1]])],
        vec![hint(0, 0, vec![vec![1; 2 * 1024 + 1]])],
        vec![hint(0, 0, vec![vec![1]]); common::limits::MAX_LINK_HINTS + 1],
    ];
    for links in refused {
        let outcome = f.apply_unindexed(ShardCommand::LinkHints {
            collection: COLLECTION.into(),
            links,
        });
        assert!(matches!(outcome, ApplyOutcome::Rejected(_)), "{outcome:?}");
    }
    // In bounds but wrong: every point linked to points that do not exist, or to
    // itself, at the top level. The follower falls back to searching.
    let first_point =
        f.sm.collection(COLLECTION)
            .expect("collection")
            .index()
            .through();
    let wrong: Vec<PointLinks> = (0..1_500u64)
        .map(|i| {
            let p = first_point + i;
            hint(p, 15, vec![vec![p, u64::MAX, p + 1_000_000]; 16])
        })
        .collect();
    let outcome = f.apply_unindexed(ShardCommand::LinkHints {
        collection: COLLECTION.into(),
        links: wrong,
    });
    assert_eq!(outcome, ApplyOutcome::Done);
    // Hints for a collection that is not there: ignored.
    let outcome = f.apply_unindexed(ShardCommand::LinkHints {
        collection: "gone".into(),
        links: vec![hint(0, 0, vec![vec![1]])],
    });
    assert_eq!(outcome, ApplyOutcome::Done);
    assert_eq!(f.sm.digest(), digest, "hints change no record");
    while let Some((_, job)) = f.sm.index_job(follower()) {
        job.run();
    }
    assert_eq!(f.sm.index_lag(), 0);
    let queries = vectors(50, 11);
    let r = recall(&f, &data, &queries);
    assert!(r > 0.8, "recall {r} after wrong hints");
}

#[test]
fn a_trickle_of_small_writes_carries_no_hints_and_followers_do_not_wait_for_it() {
    let data = vectors(3_000, 12);
    let (mut l, mut f) = pair();
    l.apply(add(&data[..2_000]));
    f.apply(add(&data[..2_000]));
    let small = &data[2_000..2_000 + crate::shard::indexer::HINT_MIN_POINTS - 1];
    let add_small = add_as("s", small);
    l.apply_unindexed(add_small.clone());
    f.apply_unindexed(add_small);
    let (_, job) = l.sm.index_job(leader()).expect("the leader's job");
    assert!(job.run().is_empty(), "no hints for a small chunk");
    let (_, job) =
        f.sm.index_job(follower())
            .expect("no wait for a short tail");
    job.run();
    assert_eq!(f.sm.index_lag(), 0);
}
