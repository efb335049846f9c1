//! Token authentication of the public API, configured as Chroma's
//! `TokenAuthenticationServerProvider` is: which tokens exist and what each
//! may reach (`users`), what each path needs (`access`), and the one
//! middleware that enforces it (`authenticate`). Without credentials the API
//! is open, as Chroma's is.
//!
//! Authorization: Chroma's token provider only authenticates (its tenant and
//! databases restrict nothing unless an authorization provider is added); we
//! enforce them: a token used on a tenant or database outside its user's
//! `tenant`/`databases` gets 403 `AuthorizationError`.

mod access;
mod users;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use thiserror::Error;

pub use access::{access, is_probe, Access};
pub use users::{Identity, Users, UsersError, ANY};

use crate::api::AppState;
use crate::error::ApiError;

/// `CHROMA_SERVER_AUTHN_PROVIDER`'s one supported value.
pub const TOKEN_PROVIDER: &str = "chromadb.auth.token_authn.TokenAuthenticationServerProvider";

/// The header a client sends its token in (`CHROMA_AUTH_TOKEN_TRANSPORT_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportHeader {
    /// `Authorization: Bearer <token>` (the default).
    Authorization,
    /// `X-Chroma-Token: <token>`.
    XChromaToken,
}

impl TransportHeader {
    /// Chroma 1.5.9 takes the header's name (`Authorization`,
    /// `X-Chroma-Token`); older versions took the enum's (`AUTHORIZATION`,
    /// `X_CHROMA_TOKEN`). Both are accepted, in any case.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "authorization" => Some(TransportHeader::Authorization),
            "x-chroma-token" | "x_chroma_token" => Some(TransportHeader::XChromaToken),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TransportHeader::Authorization => "Authorization",
            TransportHeader::XChromaToken => "X-Chroma-Token",
        }
    }

    /// The token a request carries, as Chroma reads it: `Authorization` must
    /// start with `Bearer ` (exactly), then surrounding spaces are ignored.
    fn token(self, headers: &HeaderMap) -> Option<&str> {
        let value = headers.get(self.name())?.to_str().ok()?;
        let token = match self {
            TransportHeader::Authorization => value.strip_prefix("Bearer ")?,
            TransportHeader::XChromaToken => value,
        };
        Some(token.trim())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthConfigError {
    #[error("unsupported authentication provider {0:?}; the supported one is {TOKEN_PROVIDER}")]
    UnsupportedProvider(String),
    #[error(
        "authentication credentials are set but no provider; set \
         CHROMA_SERVER_AUTHN_PROVIDER={TOKEN_PROVIDER} (or router.authn_provider), \
         or remove the credentials to run without authentication"
    )]
    CredentialsWithoutProvider,
    #[error("the token provider needs CHROMA_SERVER_AUTHN_CREDENTIALS or CHROMA_SERVER_AUTHN_CREDENTIALS_FILE")]
    NoCredentials,
    #[error("both CHROMA_SERVER_AUTHN_CREDENTIALS and CHROMA_SERVER_AUTHN_CREDENTIALS_FILE are set; set one")]
    BothCredentials,
    #[error("unsupported token transport header {0:?}; use Authorization or X-Chroma-Token")]
    BadHeader(String),
    #[error(transparent)]
    Users(#[from] UsersError),
}

/// The configured authentication: the users and the header tokens come in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub users: Users,
    pub header: TransportHeader,
}

/// The four settings as Chroma names them, after the config and the
/// environment are merged (empty = unset).
#[derive(Debug, Clone, Default)]
pub struct AuthSources {
    pub provider: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<std::path::PathBuf>,
    pub transport_header: Option<String>,
}

impl AuthConfig {
    /// `None`: no provider, the API is open. Credentials without a provider
    /// are refused rather than ignored (Chroma ignores them, leaving a server
    /// its operator believes protected open to anyone).
    pub fn load(sources: AuthSources) -> Result<Option<AuthConfig>, AuthConfigError> {
        let Some(provider) = sources.provider else {
            if sources.credentials.is_some() || sources.credentials_file.is_some() {
                return Err(AuthConfigError::CredentialsWithoutProvider);
            }
            return Ok(None);
        };
        if provider.trim() != TOKEN_PROVIDER {
            return Err(AuthConfigError::UnsupportedProvider(provider));
        }
        let header = match sources.transport_header {
            None => TransportHeader::Authorization,
            Some(h) => TransportHeader::parse(&h).ok_or(AuthConfigError::BadHeader(h))?,
        };
        let users = match (sources.credentials, sources.credentials_file) {
            (Some(_), Some(_)) => return Err(AuthConfigError::BothCredentials),
            (None, None) => return Err(AuthConfigError::NoCredentials),
            (Some(text), None) => Users::from_credentials(&text)?,
            (None, Some(path)) => Users::from_file(&path)?,
        };
        Ok(Some(AuthConfig { users, header }))
    }

    fn unauthenticated(&self) -> ApiError {
        let how = match self.header {
            TransportHeader::Authorization => "Authorization: Bearer <token>",
            TransportHeader::XChromaToken => "X-Chroma-Token: <token>",
        };
        ApiError::Unauthenticated(format!(
            "Unauthorized: this server needs a valid token in the header {how}"
        ))
    }
}

fn forbidden(identity: &Identity, what: &str) -> ApiError {
    ApiError::Forbidden(format!("User {:?} may not use {what}", identity.user_id))
}

fn check(identity: &Identity, access: &Access) -> Result<(), ApiError> {
    match access {
        Access::Open | Access::Authenticated => Ok(()),
        Access::Tenant(t) if identity.may_use(t, None) => Ok(()),
        Access::Tenant(t) => Err(forbidden(identity, &format!("tenant {t}"))),
        Access::Database(t, d) if identity.may_use(t, Some(d)) => Ok(()),
        Access::Database(t, d) => Err(forbidden(identity, &format!("database {d} of tenant {t}"))),
        Access::Unrestricted if identity.is_unrestricted() => Ok(()),
        Access::Unrestricted => Err(forbidden(
            identity,
            "this path (reset and the dashboard need every tenant and database)",
        )),
    }
}

/// The middleware (`actix_web::middleware::from_fn`): with authentication
/// configured, every request but the open probes must carry a valid token
/// and may only reach its user's tenant and databases. The user goes into
/// the request's extensions for `/auth/identity` and [`authorize`].
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // A refusal is answered here as a response (not an error), so the outer
    // middlewares still see it: the trace middleware gives it `chroma-trace-id`.
    match admit(&req) {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// 401/403 unless the request may go on; its user goes into its extensions.
fn admit(req: &ServiceRequest) -> Result<(), ApiError> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    if let Some(auth) = state.as_ref().and_then(|s| s.settings.auth.as_ref()) {
        let needs = access(req.path());
        if needs != Access::Open {
            let identity = auth
                .header
                .token(req.headers())
                .and_then(|token| auth.users.authenticate(token))
                .ok_or_else(|| auth.unauthenticated())?
                .clone();
            check(&identity, &needs)?;
            req.extensions_mut().insert(identity);
        }
    }
    Ok(())
}

/// The authenticated user of a request; `None` when the API is open.
pub fn identity(req: &HttpRequest) -> Option<Identity> {
    req.extensions().get::<Identity>().cloned()
}

/// For endpoints that name their tenant or database in the body: 403 unless
/// the request's user may use them (always fine when the API is open).
pub fn authorize(req: &HttpRequest, tenant: &str, database: Option<&str>) -> Result<(), ApiError> {
    match identity(req) {
        None => Ok(()),
        Some(identity) => {
            let needs = match database {
                None => Access::Tenant(tenant.to_owned()),
                Some(d) => Access::Database(tenant.to_owned(), d.to_owned()),
            };
            check(&identity, &needs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn tokens_are_read_from_the_configured_header() {
        let a = TransportHeader::Authorization;
        assert_eq!(
            a.token(&headers("authorization", "Bearer  tok ")),
            Some("tok")
        );
        assert_eq!(a.token(&headers("Authorization", "bearer tok")), None);
        assert_eq!(a.token(&headers("Authorization", "tok")), None);
        assert_eq!(a.token(&headers("X-Chroma-Token", "tok")), None);
        let x = TransportHeader::XChromaToken;
        assert_eq!(x.token(&headers("x-chroma-token", "tok")), Some("tok"));
        assert_eq!(x.token(&headers("Authorization", "Bearer tok")), None);
        assert_eq!(TransportHeader::parse("X_CHROMA_TOKEN"), Some(x));
        assert_eq!(TransportHeader::parse("Authorization"), Some(a));
        assert_eq!(TransportHeader::parse("Cookie"), None);
    }

    #[test]
    fn configuration_is_all_or_nothing() {
        let provider = Some(TOKEN_PROVIDER.to_owned());
        assert_eq!(AuthConfig::load(AuthSources::default()), Ok(None));
        let creds_only = AuthSources {
            credentials: Some("t".into()),
            ..AuthSources::default()
        };
        assert_eq!(
            AuthConfig::load(creds_only),
            Err(AuthConfigError::CredentialsWithoutProvider)
        );
        let basic = AuthSources {
            provider: Some("chromadb.auth.basic_authn.BasicAuthenticationServerProvider".into()),
            credentials: Some("t".into()),
            ..AuthSources::default()
        };
        assert!(matches!(
            AuthConfig::load(basic),
            Err(AuthConfigError::UnsupportedProvider(_))
        ));
        let none = AuthSources {
            provider: provider.clone(),
            ..AuthSources::default()
        };
        assert_eq!(AuthConfig::load(none), Err(AuthConfigError::NoCredentials));
        let both = AuthSources {
            provider: provider.clone(),
            credentials: Some("t".into()),
            credentials_file: Some("f".into()),
            ..AuthSources::default()
        };
        assert_eq!(
            AuthConfig::load(both),
            Err(AuthConfigError::BothCredentials)
        );
        let ok = AuthSources {
            provider,
            credentials: Some("tok".into()),
            transport_header: Some("X-Chroma-Token".into()),
            ..AuthSources::default()
        };
        let config = AuthConfig::load(ok).unwrap().unwrap();
        assert_eq!(config.header, TransportHeader::XChromaToken);
        assert!(config.users.authenticate("tok").is_some());
    }

    #[test]
    fn access_checks() {
        let bob = Identity {
            user_id: "bob".into(),
            tenant: "acme".into(),
            databases: vec!["db1".into()],
        };
        assert!(check(&bob, &Access::Authenticated).is_ok());
        assert!(check(&bob, &Access::Database("acme".into(), "db1".into())).is_ok());
        let denied = check(&bob, &Access::Database("acme".into(), "db2".into())).unwrap_err();
        assert_eq!(
            (denied.name(), denied.status().as_u16()),
            ("AuthorizationError", 403)
        );
        assert!(check(&bob, &Access::Tenant("other".into())).is_err());
        assert!(check(&bob, &Access::Unrestricted).is_err());
    }
}
