//! Named sub-checks inside one test function.
//!
//! Starting a cluster costs seconds and nextest runs every test function in
//! its own process, so per-binary sharing of a cluster does not happen there.
//! Each area is therefore one (or a few) test functions that start one
//! cluster and run many named checks on it. A failing check does not stop the
//! others: each runs as its own task, its panic is caught, and `finish`
//! fails the test with every failed check's name and message. Every check
//! prints PASS/FAIL so a run shows which parts of the contract hold.

use std::future::Future;
use std::time::Instant;

#[derive(Default)]
pub struct Checks {
    passed: Vec<String>,
    failed: Vec<(String, String)>,
}

/// The message of a caught panic's payload.
pub(crate) fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "panic with a non-string payload".into()
    }
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Runs one check to completion (a panic = failure).
    pub async fn run<F>(&mut self, name: &str, check: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let started = Instant::now();
        let outcome = tokio::spawn(check).await;
        let took = started.elapsed();
        match outcome {
            Ok(()) => {
                eprintln!("PASS {name} ({took:.1?})");
                self.passed.push(name.to_string());
            }
            Err(e) => {
                let text = if e.is_panic() {
                    panic_text(e.into_panic())
                } else {
                    format!("task failed: {e}")
                };
                eprintln!("FAIL {name} ({took:.1?}): {text}");
                self.failed.push((name.to_string(), text));
            }
        }
    }

    /// Fails the test if any check failed, listing them all.
    #[track_caller]
    pub fn finish(self) {
        eprintln!(
            "{} checks passed, {} failed",
            self.passed.len(),
            self.failed.len()
        );
        if !self.failed.is_empty() {
            let list: Vec<String> = self
                .failed
                .iter()
                .map(|(n, t)| format!("- {n}: {t}"))
                .collect();
            panic!(
                "{} of {} checks failed:\n{}",
                self.failed.len(),
                self.failed.len() + self.passed.len(),
                list.join("\n")
            );
        }
    }
}
