//! The cluster secret: a shared random token every node endpoint requires (Raft transport,
//! internal API, admin API), sent by nodes and routers in the [`CLUSTER_SECRET_HEADER`]
//! header.
//!
//! It lives in a file (`[security] secret_file`, default `{data_dir}/cluster-secret`),
//! which `scripts/cluster start` generates (32 random bytes, hex) when it does not exist
//! yet. A process refuses to start when the file is missing, unreadable, shorter than
//! [`MIN_SECRET_CHARS`] characters, holds characters a header cannot carry, or can be read
//! or written by anyone but its owner (mode must be 0600 or stricter): a secret others can
//! read is not a secret.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Request header carrying the cluster secret on every call to a node.
pub const CLUSTER_SECRET_HEADER: &str = "x-cluster-secret";

/// Shortest accepted secret (the generated ones have 64 hex characters).
pub const MIN_SECRET_CHARS: usize = 32;

/// Longest accepted secret file: anything bigger is not a token.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cluster secret file {path} does not exist (scripts/cluster start generates one; or set [security] secret_file)")]
    Missing { path: PathBuf },
    #[error("cannot read the cluster secret file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster secret file {path} has mode {mode:o}: it must not be readable or writable by group or others (chmod 600)")]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("cluster secret file {path} must hold one token of {MIN_SECRET_CHARS} to {MAX_SECRET_FILE_BYTES} printable ASCII characters without spaces")]
    Malformed { path: PathBuf },
    #[error("cannot write the cluster secret file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The loaded secret. `Debug` never prints it.
#[derive(Clone)]
pub struct ClusterSecret(String);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// Reads and checks the secret file (see the module docs for what is refused).
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let unreadable = |source| SecretError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(unreadable(e)),
        };
        let meta = file.metadata().map_err(unreadable)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::LoosePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        (&mut file)
            .take(MAX_SECRET_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        Self::parse(&text).ok_or_else(|| SecretError::Malformed {
            path: path.to_path_buf(),
        })
    }

    /// A secret from its text (surrounding whitespace ignored); `None` if unusable.
    pub fn parse(text: &str) -> Option<Self> {
        let token = text.trim();
        let ok = token.len() >= MIN_SECRET_CHARS
            && token.len() as u64 <= MAX_SECRET_FILE_BYTES
            && token.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| ClusterSecret(token.to_string()))
    }

    /// Writes a new random secret (32 bytes from the OS, hex) to `path` with mode 0600;
    /// fails if the file exists. Test harnesses use it; `scripts/cluster` does the same in
    /// shell.
    pub fn generate(path: &Path) -> Result<Self, SecretError> {
        let write_err = |source| SecretError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut random = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .map_err(write_err)?;
        let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_err)?;
        file.write_all(format!("{token}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_err)?;
        Ok(ClusterSecret(token))
    }

    /// The value to send in [`CLUSTER_SECRET_HEADER`].
    pub fn header_value(&self) -> &str {
        &self.0
    }

    /// Whether `presented` (a header's bytes) is the secret. Constant time in the secret's
    /// content: every byte is compared whatever the first difference (only the length,
    /// which is not secret, ends the comparison early).
    pub fn verify(&self, presented: &[u8]) -> bool {
        let secret = self.0.as_bytes();
        if presented.len() != secret.len() {
            return false;
        }
        let diff = secret
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_load_and_verify() {
        let dir = tempfile_dir();
        let path = dir.join("s");
        let made = ClusterSecret::generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = ClusterSecret::load(&path).unwrap();
        assert_eq!(loaded.header_value(), made.header_value());
        assert_eq!(loaded.header_value().len(), 64);
        assert!(loaded.verify(made.header_value().as_bytes()));
        let mut wrong = made.header_value().as_bytes().to_vec();
        wrong[63] ^= 1;
        assert!(!loaded.verify(&wrong));
        assert!(!loaded.verify(&wrong[..10]));
        assert!(!loaded.verify(b""));
        assert!(ClusterSecret::generate(&path).is_err(), "never overwrites");
        assert!(!format!("{loaded:?}").contains(made.header_value()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unusable_files_are_refused() {
        let dir = tempfile_dir();
        let missing = ClusterSecret::load(&dir.join("none")).unwrap_err();
        assert!(matches!(missing, SecretError::Missing { .. }), "{missing}");

        let loose = dir.join("loose");
        std::fs::write(&loose, "a".repeat(64)).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ClusterSecret::load(&loose).unwrap_err();
        assert!(matches!(e, SecretError::LoosePermissions { .. }), "{e}");

        for (name, text) in [
            ("empty", String::new()),
            ("short", "abc".into()),
            ("spaces", format!("{} {}", "a".repeat(20), "b".repeat(20))),
            ("huge", "a".repeat(5000)),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            let e = ClusterSecret::load(&p).unwrap_err();
            assert!(matches!(e, SecretError::Malformed { .. }), "{name}: {e}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "secret-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
