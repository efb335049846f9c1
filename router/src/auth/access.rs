//! What a request path needs: nothing (the probes), a valid token, or a
//! token that may use the tenant or database the path names. Decided from
//! the path alone, before routing, so it holds for every endpoint without
//! each handler having to remember it. The two endpoints that name their
//! tenant or database in the body (create tenant, create database) check
//! that name themselves (`super::authorize`).

/// The probes Chroma leaves open (`chroma_server_auth_ignore_paths`: the
/// v2 root, heartbeat, version) plus healthcheck, which load balancers and
/// `scripts/cluster` poll without credentials.
const OPEN: [&str; 5] = ["", "/", "/heartbeat", "/version", "/healthcheck"];

const PREFIX: &str = "/api/v2";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Open,
    /// Any valid token.
    Authenticated,
    /// A token that may use this tenant.
    Tenant(String),
    /// A token that may use this database of this tenant.
    Database(String, String),
    /// A token for every tenant and database (reset wipes them all; the dashboard
    /// shows them all).
    Unrestricted,
}

/// The live cluster page and its data show every tenant's collections and the whole
/// cluster: with token auth on, only a token for every tenant and database may see them.
fn is_dashboard(path: &str) -> bool {
    path.strip_prefix(crate::dashboard::PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` is one of the open probes (also exempt from the in-flight
/// limit, so health checks answer under load).
pub fn is_probe(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| OPEN.contains(&rest))
}

pub fn access(path: &str) -> Access {
    if is_dashboard(path) {
        return Access::Unrestricted;
    }
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Access::Authenticated;
    };
    if OPEN.contains(&rest) {
        return Access::Open;
    }
    if rest == "/reset" {
        return Access::Unrestricted;
    }
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    match segments.as_slice() {
        ["tenants", tenant] | ["tenants", tenant, "databases"] => Access::Tenant(decode(tenant)),
        ["tenants", tenant, "databases", database, ..] => {
            Access::Database(decode(tenant), decode(database))
        }
        _ => Access::Authenticated,
    }
}

/// Percent-decodes a path segment, as the router decodes the `{tenant}` and
/// `{database}` it hands to the handlers, so `/tenants/%61cme` is checked as
/// `acme`. A malformed escape stays as it is (and matches no real name).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified() {
        for open in [
            "/api/v2",
            "/api/v2/heartbeat",
            "/api/v2/version",
            "/api/v2/healthcheck",
        ] {
            assert_eq!(access(open), Access::Open, "{open}");
            assert!(is_probe(open));
        }
        for closed in [
            "/api/v2/pre-flight-checks",
            "/api/v2/auth/identity",
            "/api/v2/tenants",
            "/api/v2//heartbeat",
            "/api/v2/heartbeat/",
            "/api/v1/heartbeat",
            "/openapi.json",
        ] {
            assert_eq!(access(closed), Access::Authenticated, "{closed}");
            assert!(!is_probe(closed));
        }
        assert_eq!(access("/api/v2/reset"), Access::Unrestricted);
        for dashboard in ["/dashboard", "/dashboard/state", "/dashboard/page.js"] {
            assert_eq!(access(dashboard), Access::Unrestricted, "{dashboard}");
        }
        assert_eq!(access("/dashboards"), Access::Authenticated);
        assert_eq!(access("/api/v2/tenants/t"), Access::Tenant("t".into()));
        assert_eq!(
            access("/api/v2/tenants/t/databases"),
            Access::Tenant("t".into())
        );
        assert_eq!(
            access("/api/v2/tenants/t/databases/d"),
            Access::Database("t".into(), "d".into())
        );
        assert_eq!(
            access("/api/v2/tenants/t/databases/d/collections/x/add"),
            Access::Database("t".into(), "d".into())
        );
        assert_eq!(
            access("/api/v2/tenants/%61cme/databases/d%2"),
            Access::Database("acme".into(), "d%2".into())
        );
        assert_eq!(decode("a%zz%4"), "a%zz%4");
        assert_eq!(decode("%2F%"), "/%");
    }
}
