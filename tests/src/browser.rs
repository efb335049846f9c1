//! A real browser for the tests of the router's pages: headless Chromium, run once per
//! look (`--dump-dom` for the DOM after the page's scripts ran, `--screenshot` for a
//! PNG). `--virtual-time-budget` lets timers run ahead while network requests are real,
//! so a page that polls has made its first rounds by the time the DOM is dumped.
//!
//! Chromium is an optional tool: [`Chromium::find`] says why it is not there, and the
//! tests print that and pass (as the network-fault tests do without nftables).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Programs tried in order (`CHROMIUM` names another).
const CANDIDATES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// The most one look may take before Chromium is killed.
const LOOK_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Debug, Error)]
pub enum BrowserError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {LOOK_TIMEOUT:?}")]
    Timeout { program: String },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Chromium {
    program: String,
    /// Profile and output files; removed on drop.
    dir: tempfile::TempDir,
}

impl Chromium {
    /// The first Chromium that answers `--version`, or why there is none.
    pub fn find() -> Result<Chromium, String> {
        let named = std::env::var("CHROMIUM").ok();
        let candidates: Vec<String> = match named {
            Some(p) => vec![p],
            None => CANDIDATES.iter().map(|s| s.to_string()).collect(),
        };
        for program in &candidates {
            let ok = Command::new(program)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
                return Ok(Chromium {
                    program: program.clone(),
                    dir,
                });
            }
        }
        Err(format!(
            "no Chromium found (tried {}; apt-get install chromium, or set CHROMIUM)",
            candidates.join(", ")
        ))
    }

    /// The DOM of `url` after `budget` of (virtual) time.
    pub fn dump_dom(&self, url: &str, budget: Duration) -> Result<String, BrowserError> {
        let out = self.dir.path().join("dom.html");
        self.run(&["--dump-dom".to_string()], url, budget, &out)?;
        Ok(std::fs::read_to_string(&out)?)
    }

    /// A `width`x`height` PNG of `url` after `budget`, written to `png`.
    pub fn screenshot(
        &self,
        url: &str,
        budget: Duration,
        (width, height): (u32, u32),
        png: &Path,
    ) -> Result<(), BrowserError> {
        let args = [
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_string(),
        ];
        self.run(&args, url, budget, &self.dir.path().join("screenshot.out"))
    }

    fn run(
        &self,
        args: &[String],
        url: &str,
        budget: Duration,
        stdout: &Path,
    ) -> Result<(), BrowserError> {
        let stderr_path: PathBuf = self.dir.path().join("stderr.log");
        let spawn = |source| BrowserError::Spawn {
            program: self.program.clone(),
            source,
        };
        let mut child = Command::new(&self.program)
            .args([
                "--headless=new",
                // Root in CI containers: Chromium's sandbox needs user namespaces.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
            ])
            .arg(format!(
                "--user-data-dir={}",
                self.dir.path().join("profile").display()
            ))
            .arg(format!("--virtual-time-budget={}", budget.as_millis()))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(stdout)?)
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()
            .map_err(spawn)?;
        let deadline = Instant::now() + LOOK_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BrowserError::Timeout {
                    program: self.program.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            return Err(BrowserError::Failed {
                program: self.program.clone(),
                status,
                stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
            });
        }
        Ok(())
    }
}
