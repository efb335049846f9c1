//! Embedding throughput on this machine: sentences/s through
//! `EmbeddingService` for typical 10-20 word sentences, per thread count.
//!
//! cargo run --release -p router --bin embed_bench -- [--threads 1,2]
//!     [--sentences 1024] [--batch 32] [--model-dir DIR]
//!
//! For each thread count N it runs two scenarios: one request at a time
//! (what a single client sees; the pool's N threads only help through
//! candle's parallel matmuls), and N concurrent requests (a busy router).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use router::embedding::{default_model_dir, EmbeddingService};

struct Args {
    threads: Vec<usize>,
    sentences: usize,
    batch: usize,
    model_dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: vec![1, 2],
        sentences: 1024,
        batch: 32,
        model_dir: default_model_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--threads" => args.threads = value.split(',').map(number).collect::<Result<_, _>>()?,
            "--sentences" => args.sentences = number(&value)?,
            "--batch" => args.batch = number(&value)?.max(1),
            "--model-dir" => args.model_dir = PathBuf::from(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

/// Deterministic English-like sentences of 10-20 words.
fn sentences(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "database",
        "stores",
        "vectors",
        "for",
        "fast",
        "similarity",
        "search",
        "a",
        "user",
        "asks",
        "about",
        "weather",
        "in",
        "paris",
        "today",
        "and",
        "tomorrow",
        "our",
        "team",
        "shipped",
        "new",
        "release",
        "with",
        "better",
        "recall",
        "on",
        "large",
        "collections",
        "of",
        "documents",
        "customers",
        "reported",
        "slow",
        "queries",
        "after",
        "upgrade",
        "please",
        "reset",
        "my",
        "password",
        "because",
        "I",
        "forgot",
        "it",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64: reproducible without a rand dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let len = 10 + (next() % 11) as usize;
            let words: Vec<&str> = (0..len)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect();
            format!("{}.", words.join(" "))
        })
        .collect()
}

async fn run(
    service: &EmbeddingService,
    texts: &[String],
    batch: usize,
    concurrency: usize,
) -> Duration {
    let chunks: Vec<Vec<String>> = texts.chunks(batch).map(<[String]>::to_vec).collect();
    let start = Instant::now();
    for wave in chunks.chunks(concurrency) {
        let mut set = tokio::task::JoinSet::new();
        for chunk in wave.iter().cloned() {
            let service = service.clone();
            set.spawn(async move { service.embed(chunk).await });
        }
        while let Some(done) = set.join_next().await {
            if let Err(err) = done.expect("embedding task") {
                panic!("{err}");
            }
        }
    }
    start.elapsed()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("embed_bench: {err}");
            return ExitCode::from(2);
        }
    };
    let texts = sentences(args.sentences);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    println!(
        "{} sentences of 10-20 words, {} per request, model {}",
        texts.len(),
        args.batch,
        args.model_dir.display()
    );
    println!("| threads | requests in flight | sentences/s | ms per request |");
    println!("|---|---|---|---|");
    runtime.block_on(async {
        for &threads in &args.threads {
            let service = EmbeddingService::new(args.model_dir.clone(), threads).expect("pool");
            if let Err(err) = service.preload().await {
                eprintln!("embed_bench: {err}");
                return ExitCode::FAILURE;
            }
            // Warm-up: first-touch allocations, page faults in the weights.
            run(
                &service,
                &texts[..args.batch.min(texts.len())],
                args.batch,
                1,
            )
            .await;
            let scenarios = if threads > 1 {
                vec![1, threads]
            } else {
                vec![1]
            };
            for concurrency in scenarios {
                let elapsed = run(&service, &texts, args.batch, concurrency).await;
                let requests = texts.len().div_ceil(args.batch);
                println!(
                    "| {threads} | {concurrency} | {:.0} | {:.1} |",
                    texts.len() as f64 / elapsed.as_secs_f64(),
                    elapsed.as_secs_f64() * 1000.0 * concurrency as f64 / requests as f64
                );
            }
        }
        ExitCode::SUCCESS
    })
}
