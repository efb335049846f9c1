//! Random command sequences against the model: after every step the state
//! machine's `get` and exact-path `query` agree with brute force, and no
//! deleted or replaced version of a record is ever returned.

use common::command::{AddMode, MetadataPatch, RecordWrite, ShardCommand};
use common::{Filter, MetadataValue, Space};
use proptest::prelude::*;
use serde_json::json;

use super::model::{Driver, Model, COLLECTION};

const DIM: usize = 4;

fn record_write(full: bool) -> impl Strategy<Value = RecordWrite> {
    (
        0u8..16,
        if full {
            prop::collection::vec(-4.0f32..4.0, DIM)
                .prop_map(Some)
                .boxed()
        } else {
            prop::option::of(prop::collection::vec(-4.0f32..4.0, DIM)).boxed()
        },
        prop::option::of(prop::option::of(0i64..3)),
        prop::option::of(prop::sample::select(vec!["alpha beta", "beta", "gamma"])),
    )
        .prop_map(|(id, embedding, k, doc)| RecordWrite {
            id: format!("id{id:02}"),
            embedding,
            metadata: k
                .map(|v| -> MetadataPatch { [("k".to_owned(), v.map(MetadataValue::Int))].into() }),
            document: doc.map(str::to_owned),
            uri: None,
        })
}

fn unique(mut records: Vec<RecordWrite>) -> Vec<RecordWrite> {
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| seen.insert(r.id.clone()));
    records
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    prop_oneof![
        Just(Filter::default()),
        (0i64..3).prop_map(|v| Filter::parse(Some(&json!({ "k": v })), None).expect("valid")),
        (0i64..3)
            .prop_map(|v| Filter::parse(Some(&json!({"k": {"$ne": v}})), None).expect("valid")),
        Just(Filter::parse(None, Some(&json!({"$contains": "beta"}))).expect("valid")),
    ]
}

fn command() -> impl Strategy<Value = ShardCommand> {
    let c = || COLLECTION.to_owned();
    prop_oneof![
        (
            prop::collection::vec(record_write(true), 1..6),
            any::<bool>()
        )
            .prop_map(move |(r, skip)| {
                ShardCommand::Add {
                    collection: c(),
                    records: unique(r),
                    mode: if skip {
                        AddMode::SkipExisting
                    } else {
                        AddMode::RejectExisting
                    },
                }
            }),
        prop::collection::vec(record_write(true), 1..6).prop_map(move |r| ShardCommand::Upsert {
            collection: c(),
            records: unique(r)
        }),
        prop::collection::vec(record_write(false), 1..6).prop_map(move |r| ShardCommand::Update {
            collection: c(),
            records: unique(r)
        }),
        (
            prop::option::of(prop::collection::vec(0u8..16, 0..4)),
            filter_strategy(),
            prop::option::of(1usize..4)
        )
            .prop_map(move |(ids, filter, limit)| ShardCommand::Delete {
                collection: c(),
                ids: ids.map(|ids| ids.into_iter().map(|i| format!("id{i:02}")).collect()),
                filter,
                limit,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn state_machine_matches_model(
        space in prop::sample::select(vec![Space::L2, Space::Cosine, Space::Ip]),
        commands in prop::collection::vec(command(), 1..40),
        queries in prop::collection::vec((prop::collection::vec(-4.0f32..4.0, DIM), filter_strategy(), 1usize..8), 4),
    ) {
        let mut driver = Driver::new(space);
        let mut model = Model::default();
        for cmd in &commands {
            driver.apply(cmd.clone());
            model.apply(cmd);
            prop_assert_eq!(driver.get_all(Filter::default()), model.records.keys().cloned().collect::<Vec<_>>());
            for (q, filter, k) in &queries {
                prop_assert_eq!(driver.get_all(filter.clone()), model.select(None, filter));
                let got = driver.query(q, *k, filter.clone());
                let want = model.query(q, *k, filter, space);
                prop_assert_eq!(&got, &want, "query {:?} k {} filter {:?}", q, k, filter);
            }
        }
    }
}
