//! Server-side embeddings (issue 5) through the router: a collection whose
//! embedding function is Chroma's default stores documents sent without
//! embeddings and finds them by meaning with `query_texts`; one without an
//! embedding function refuses both with a clear 400. Needs the model
//! (`scripts/fetch-model`, which `scripts/test` runs first).

use serde_json::json;
use tests::{str_list, Checks, Cluster, ClusterOptions, DEFAULT_DB};

const DEFAULT_EF: &str =
    r#"{"embedding_function": {"type": "known", "name": "default", "config": {}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_embedded_and_found_by_meaning() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();

    {
        let c = c.clone();
        checks
            .run("documents only, then query_texts", async move {
                let configuration: serde_json::Value =
                    serde_json::from_str(DEFAULT_EF).expect("valid JSON");
                let id = c
                    .new_collection("texts", json!({"configuration": configuration}))
                    .await;
                let docs = [
                    ("cat", "The cat sleeps on the warm windowsill all afternoon."),
                    ("stocks", "Stock markets fell sharply after the interest rate decision."),
                    ("pasta", "Boil the spaghetti for nine minutes and add tomato sauce."),
                    ("football", "The striker scored twice in the second half of the match."),
                    ("rain", "Heavy rain and strong winds are expected over the weekend."),
                ];
                c.add_ok(
                    &id,
                    &json!({
                        "ids": docs.iter().map(|d| d.0).collect::<Vec<_>>(),
                        "documents": docs.iter().map(|d| d.1).collect::<Vec<_>>(),
                    }),
                )
                .await;
                assert_eq!(c.count(&id).await, 5);
                let got = c
                    .get_ok(&id, &json!({"ids": ["cat"], "include": ["embeddings"]}))
                    .await;
                let dims = got["embeddings"][0].as_array().map_or(0, Vec::len);
                assert_eq!(dims, 384, "all-MiniLM-L6-v2 vectors are stored");
                let questions = [
                    ("What is the weather forecast?", "rain"),
                    ("a recipe for an Italian dinner", "pasta"),
                    ("my kitten is napping", "cat"),
                    ("who won the soccer game", "football"),
                    ("the economy and the share prices", "stocks"),
                ];
                let got = c
                    .query_ok(
                        &id,
                        &json!({
                            "query_texts": questions.iter().map(|q| q.0).collect::<Vec<_>>(),
                            "n_results": 1,
                        }),
                    )
                    .await;
                for (i, (q, want)) in questions.iter().enumerate() {
                    assert_eq!(str_list(&got["ids"][i]), [*want], "nearest to {q:?}");
                }
                // A document-only upsert re-embeds: the record moves in meaning.
                c.records(
                    &id,
                    "upsert",
                    &json!({"ids": ["rain"], "documents": ["Snow storms closed the mountain roads."]}),
                )
                .await
                .expect_status(200, "document-only upsert");
                let got = c
                    .query_ok(&id, &json!({"query_texts": ["blizzard"], "n_results": 1}))
                    .await;
                assert_eq!(str_list(&got["ids"][0]), ["rain"]);
            })
            .await;
    }
    {
        let c = c.clone();
        checks
            .run(
                "no embedding function: 400 that says what to do",
                async move {
                    let id = c.new_collection("plain", json!({})).await;
                    let msg = c
                        .records(&id, "add", &json!({"ids": ["a"], "documents": ["hello"]}))
                        .await
                        .expect_error(400, "InvalidArgumentError", "documents without embeddings");
                    assert!(msg.contains("embedding function"), "{msg}");
                    let msg = c
                        .records(&id, "query", &json!({"query_texts": ["hello"]}))
                        .await
                        .expect_error(400, "InvalidArgumentError", "query_texts");
                    assert!(msg.contains("embedding function"), "{msg}");
                    assert_eq!(c.count(&id).await, 0, "nothing written");
                    c.get(&format!("{DEFAULT_DB}/collections/plain"))
                        .await
                        .expect_status(200, "collection still there");
                },
            )
            .await;
    }
    checks.finish();
}
