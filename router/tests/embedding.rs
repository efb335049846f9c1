//! The candle port of all-MiniLM-L6-v2 against sentence-transformers itself
//! (fixture from scripts/make-embedding-fixture), plus semantic sanity and
//! the async service. These need the model files: they fail, with a pointer
//! to scripts/fetch-model, when it is missing; scripts/test fetches it first.

use std::sync::OnceLock;

use router::embedding::{default_model_dir, Embedder, EmbeddingService};
use serde::Deserialize;

const DIM: usize = 384;

/// Loaded once per test binary: loading costs a fraction of a second and
/// every test here wants the same model.
fn embedder() -> &'static Embedder {
    static MODEL: OnceLock<Embedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = default_model_dir();
        Embedder::load(&dir).unwrap_or_else(|err| {
            panic!(
                "{err}\nThese tests need the embedding model: run scripts/fetch-model \
                 (or set EMBEDDING_MODEL_DIR to a copy of all-MiniLM-L6-v2)."
            )
        })
    })
}

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    tokens_before_truncation: usize,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    );
    let bytes = std::fs::read(path).expect("read the reference fixture");
    serde_json::from_slice(&bytes).expect("parse the reference fixture")
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn matches_sentence_transformers_reference() {
    let fixture = fixture();
    assert!(
        fixture
            .cases
            .iter()
            .any(|c| c.tokens_before_truncation > fixture.max_seq_length),
        "the fixture should exercise truncation"
    );
    let inputs: Vec<String> = fixture.cases.iter().map(|c| c.text.clone()).collect();
    let got = embedder().embed(&inputs).unwrap();
    assert_eq!(got.len(), fixture.cases.len());

    let mut worst = (0.0f64, "");
    for (case, vector) in fixture.cases.iter().zip(&got) {
        assert_eq!(vector.len(), DIM);
        let d = cosine_distance(vector, &case.embedding);
        assert!(
            d < 1e-4,
            "cosine distance {d:e} to sentence-transformers for {:?}",
            case.text
        );
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm} for {:?}", case.text);
        if d > worst.0 {
            worst = (d, &case.text);
        }
    }
    eprintln!(
        "max cosine distance to sentence-transformers over {} sentences: {:e} ({:?})",
        fixture.cases.len(),
        worst.0,
        worst.1.chars().take(40).collect::<String>()
    );
}

#[test]
fn padding_and_batching_do_not_change_vectors() {
    // 70 texts: several forward passes of mixed lengths, versus each text
    // alone (no padding at all). The long cases are left out to keep the
    // test quick; the reference test covers them.
    let fixture = fixture();
    let short: Vec<String> = fixture
        .cases
        .iter()
        .filter(|c| c.tokens_before_truncation <= 64)
        .map(|c| c.text.clone())
        .collect();
    let inputs: Vec<String> = short.iter().cloned().cycle().take(70).collect();
    let together = embedder().embed(&inputs).unwrap();
    for (i, text) in short.iter().enumerate() {
        let alone = embedder().embed(std::slice::from_ref(text)).unwrap();
        let d = cosine_distance(&alone[0], &together[i]);
        assert!(d < 1e-5, "batched vs alone differ by {d:e} for {text:?}");
        let again = &together[i + short.len()];
        assert!(cosine_distance(again, &together[i]) < 1e-5);
    }
    assert!(embedder().embed(&[]).unwrap().is_empty());
}

#[test]
fn nearest_by_meaning_wins() {
    let candidates = texts(&[
        "A man is playing a guitar.",
        "The chef is cooking pasta in the kitchen.",
        "Stocks dropped after the central bank raised interest rates.",
        "The kitten is sleeping on the sofa.",
        "How can I recover access to my account?",
        "The spacecraft landed safely on the surface of Mars.",
    ]);
    // (query, index of the candidate it means)
    let queries = [
        ("Someone strums an acoustic instrument.", 0),
        ("Someone is preparing spaghetti for dinner.", 1),
        ("Shares fell when rates went up.", 2),
        ("A cat naps on the couch.", 3),
        ("I forgot my password and can't log in.", 4),
        ("A rover touched down on the red planet.", 5),
    ];
    let model = embedder();
    let cand = model.embed(&candidates).unwrap();
    let query_texts: Vec<String> = queries.iter().map(|(q, _)| q.to_string()).collect();
    let qv = model.embed(&query_texts).unwrap();
    for ((query, want), v) in queries.iter().zip(&qv) {
        let distances: Vec<f64> = cand.iter().map(|c| cosine_distance(v, c)).collect();
        let best = (0..distances.len())
            .min_by(|&a, &b| distances[a].total_cmp(&distances[b]))
            .unwrap();
        assert_eq!(
            best, *want,
            "{query:?} is nearest to {:?}, not {:?}; distances {distances:?}",
            candidates[best], candidates[*want]
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn service_embeds_concurrent_requests_off_the_async_runtime() {
    fn cheap_shared<T: Clone + Send + Sync + 'static>(_: &T) {}

    let service = EmbeddingService::new(default_model_dir(), 2).unwrap();
    cheap_shared(&service);
    service.preload().await.unwrap_or_else(|err| {
        panic!("{err}\n(these tests need the model: run scripts/fetch-model)")
    });

    // A job of a good fraction of a second (4 texts at the 256-token limit).
    // On this single-threaded runtime the timer below can only tick while it
    // runs if inference happens on other threads.
    let long: Vec<String> = (0..4)
        .map(|i| format!("{i} {}", "a rather long document ".repeat(80)))
        .collect();
    let long_job = tokio::spawn({
        let service = service.clone();
        async move { service.embed(long).await }
    });
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(
        !long_job.is_finished(),
        "the runtime was blocked while embedding"
    );

    let batches: Vec<Vec<String>> = (0..4)
        .map(|i| {
            (0..10)
                .map(|j| format!("request {i} sentence {j} about vector search"))
                .collect()
        })
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, batch) in batches.iter().cloned().enumerate() {
        let service = service.clone();
        set.spawn(async move { (i, service.embed(batch).await) });
    }
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.unwrap();
        let vectors = result.unwrap();
        let direct = embedder().embed(&batches[i]).unwrap();
        assert_eq!(vectors.len(), direct.len());
        for (a, b) in vectors.iter().zip(&direct) {
            assert!(cosine_distance(a, b) < 1e-5);
        }
    }
    assert_eq!(long_job.await.unwrap().unwrap().len(), 4);
}
