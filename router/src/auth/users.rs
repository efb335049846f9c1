//! Who may use the API: the tokens and what each may reach, loaded the way
//! Chroma 1.5.9's `TokenAuthenticationServerProvider` loads them
//! (`chromadb/auth/token_authn/__init__.py`, `chromadb/auth/__init__.py`):
//!
//! - `CHROMA_SERVER_AUTHN_CREDENTIALS`: split on newlines, empty lines dropped;
//!   `CHROMA_SERVER_AUTHN_CREDENTIALS_FILE`: the file's lines. Exactly one line
//!   is a single token for user `anonymous` with every tenant and database
//!   (`tenant: "*"`, `databases: ["*"]`). More lines are a YAML document
//!   `users: [{id, tokens: [...], tenant?, databases?, role?}]`; a user
//!   without `tenant` gets `"*"`, without `databases` `["*"]`.
//! - Tokens are ASCII letters, digits and punctuation only; a token given to
//!   two different users is refused at load, as a user without tokens is.
//!
//! Where we differ, on purpose: a one-line file's trailing newline is not
//! part of its token (Chroma keeps it, so that token can never match), and a
//! user without `id` is refused at load (Chroma fails on each request).

use serde::Deserialize;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use thiserror::Error;

/// Tenant or database wildcard in the users file.
pub const ANY: &str = "*";

/// Users files are a few lines; anything this large is a mistake.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsersError {
    #[error("cannot read the credentials file {path}: {message}")]
    Read { path: String, message: String },
    #[error("the credentials file {0} is larger than 1 MiB")]
    TooLarge(String),
    #[error("the users file is not valid YAML with a top-level `users` list: {0}")]
    Yaml(String),
    #[error("user {0:?} has no tokens")]
    NoTokens(String),
    #[error(
        "a token of user {0:?} has characters other than ASCII letters, digits and punctuation"
    )]
    BadToken(String),
    #[error("a token is given to both user {0:?} and user {1:?}")]
    SharedToken(String, String),
    #[error("no token is configured")]
    Empty,
}

/// The user a request authenticated as: what `/auth/identity` answers and
/// what authorization checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = GetUserIdentityResponse)]
pub struct Identity {
    pub user_id: String,
    pub tenant: String,
    pub databases: Vec<String>,
}

impl Identity {
    /// Whether this user may use `tenant`, and `database` in it (`None`: the
    /// tenant itself, e.g. listing its databases).
    pub fn may_use(&self, tenant: &str, database: Option<&str>) -> bool {
        let tenant_ok = self.tenant == ANY || self.tenant == tenant;
        let database_ok =
            database.is_none_or(|d| self.databases.iter().any(|x| x == ANY || x == d));
        tenant_ok && database_ok
    }

    /// Every tenant and every database: the only kind of user that may reset
    /// the whole cluster.
    pub fn is_unrestricted(&self) -> bool {
        self.tenant == ANY && self.databases.iter().any(|d| d == ANY)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    /// Every token with the index of its user in `identities`.
    tokens: Vec<(Vec<u8>, usize)>,
    identities: Vec<Identity>,
}

#[derive(Deserialize)]
struct UsersFile {
    users: Vec<UserEntry>,
}

/// One user of Chroma's file; other keys (`role`, ...) are allowed and unused.
#[derive(Deserialize)]
struct UserEntry {
    id: String,
    tenant: Option<String>,
    databases: Option<Vec<String>>,
    tokens: Option<Vec<String>>,
}

/// Chroma's `_check_token`: printable ASCII without spaces.
fn valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

impl Users {
    /// From `CHROMA_SERVER_AUTHN_CREDENTIALS`.
    pub fn from_credentials(text: &str) -> Result<Self, UsersError> {
        Self::from_lines(text.split('\n').filter(|l| !l.is_empty()).collect())
    }

    /// From `CHROMA_SERVER_AUTHN_CREDENTIALS_FILE`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, UsersError> {
        let shown = path.display().to_string();
        let read_error = |e: std::io::Error| UsersError::Read {
            path: shown.clone(),
            message: e.to_string(),
        };
        let len = std::fs::metadata(path).map_err(read_error)?.len();
        if len > MAX_FILE_BYTES {
            return Err(UsersError::TooLarge(shown));
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        // Chroma counts the file's lines with readlines(): blank lines count.
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() == 1 {
            return Self::from_lines(vec![lines[0].trim_end_matches('\r')]);
        }
        Self::from_lines(lines)
    }

    fn from_lines(lines: Vec<&str>) -> Result<Self, UsersError> {
        match lines.as_slice() {
            [] => Err(UsersError::Empty),
            [token] => Self::from_entries(vec![UserEntry {
                id: "anonymous".into(),
                tenant: None,
                databases: None,
                tokens: Some(vec![(*token).to_owned()]),
            }]),
            _ => {
                let file: UsersFile = serde_norway::from_str(&lines.join("\n"))
                    .map_err(|e| UsersError::Yaml(e.to_string()))?;
                Self::from_entries(file.users)
            }
        }
    }

    fn from_entries(entries: Vec<UserEntry>) -> Result<Self, UsersError> {
        let mut users = Users {
            tokens: Vec::new(),
            identities: Vec::new(),
        };
        for entry in entries {
            let tokens = entry
                .tokens
                .filter(|t| !t.is_empty())
                .ok_or_else(|| UsersError::NoTokens(entry.id.clone()))?;
            let index = users.identities.len();
            for token in tokens {
                if !valid_token(&token) {
                    return Err(UsersError::BadToken(entry.id));
                }
                if let Some((_, other)) = users.tokens.iter().find(|(t, _)| *t == token.as_bytes())
                {
                    if *other != index {
                        let other = users.identities[*other].user_id.clone();
                        return Err(UsersError::SharedToken(other, entry.id));
                    }
                    continue;
                }
                users.tokens.push((token.into_bytes(), index));
            }
            users.identities.push(Identity {
                user_id: entry.id,
                tenant: entry.tenant.unwrap_or_else(|| ANY.to_owned()),
                databases: entry.databases.unwrap_or_else(|| vec![ANY.to_owned()]),
            });
        }
        if users.tokens.is_empty() {
            return Err(UsersError::Empty);
        }
        Ok(users)
    }

    /// The user holding `token`. Every configured token is compared in
    /// constant time (no early exit), so the time taken tells nothing about
    /// how much of a token was right or which user's it was.
    pub fn authenticate(&self, token: &str) -> Option<&Identity> {
        const NONE: u64 = u64::MAX;
        let mut found = NONE;
        for (candidate, index) in &self.tokens {
            let equal = candidate.as_slice().ct_eq(token.as_bytes());
            found = u64::conditional_select(&found, &(*index as u64), equal);
        }
        (found != NONE).then(|| &self.identities[found as usize])
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "users:\n  - id: alice\n    role: admin\n    tokens: [\"alice-1\", \"alice-2\"]\n  \
        - id: bob\n    tenant: acme\n    databases: [\"db1\"]\n    tokens:\n      - \"bob-token\"\n";

    #[test]
    fn a_single_credential_is_an_unrestricted_token() {
        let users = Users::from_credentials("s3cr3t!\n").unwrap();
        let id = users.authenticate("s3cr3t!").unwrap();
        assert_eq!(id.user_id, "anonymous");
        assert!(id.is_unrestricted());
        assert!(users.authenticate("s3cr3t").is_none());
        assert!(users.authenticate("").is_none());
        assert_eq!(Users::from_credentials("\n\n"), Err(UsersError::Empty));
        assert!(matches!(
            Users::from_credentials("has space"),
            Err(UsersError::BadToken(_))
        ));
    }

    #[test]
    fn the_users_file_maps_tokens_to_users_with_defaults() {
        let users = Users::from_credentials(FILE).unwrap();
        assert_eq!(users.len(), 2);
        let alice = users.authenticate("alice-2").unwrap();
        assert_eq!(
            (alice.user_id.as_str(), alice.tenant.as_str()),
            ("alice", ANY)
        );
        assert!(alice.may_use("any", Some("thing")));
        let bob = users.authenticate("bob-token").unwrap();
        assert_eq!(bob.databases, vec!["db1".to_owned()]);
        assert!(bob.may_use("acme", Some("db1")));
        assert!(bob.may_use("acme", None));
        assert!(!bob.may_use("acme", Some("db2")));
        assert!(!bob.may_use("other", Some("db1")));
        assert!(!bob.is_unrestricted());
        assert!(users.authenticate("bob-toke").is_none());
    }

    #[test]
    fn bad_users_files_are_refused() {
        let no_tokens = "users:\n  - id: a\n    tenant: t\n";
        assert_eq!(
            Users::from_credentials(no_tokens),
            Err(UsersError::NoTokens("a".into()))
        );
        let shared = "users:\n  - id: a\n    tokens: [x]\n  - id: b\n    tokens: [x]\n";
        assert_eq!(
            Users::from_credentials(shared),
            Err(UsersError::SharedToken("a".into(), "b".into()))
        );
        assert!(matches!(
            Users::from_credentials("users:\n  - tokens: [x]\n"),
            Err(UsersError::Yaml(_))
        ));
        assert!(matches!(
            Users::from_credentials("not: [yaml\n  at all"),
            Err(UsersError::Yaml(_))
        ));
    }

    #[test]
    fn files_are_read_like_chroma_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        std::fs::write(&one, "only-token\n").unwrap();
        let users = Users::from_file(&one).unwrap();
        assert_eq!(
            users.authenticate("only-token").unwrap().user_id,
            "anonymous"
        );
        let many = dir.path().join("users.yaml");
        std::fs::write(&many, FILE).unwrap();
        assert!(Users::from_file(&many)
            .unwrap()
            .authenticate("alice-1")
            .is_some());
        assert!(matches!(
            Users::from_file(&dir.path().join("missing")),
            Err(UsersError::Read { .. })
        ));
    }
}
