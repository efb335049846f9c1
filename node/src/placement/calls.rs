//! The placement driver's requests to nodes: their status and the admin operations it
//! makes (JSON, with the cluster secret, like an operator's).

use std::time::Duration;

use common::secret::{ClusterSecret, CLUSTER_SECRET_HEADER};
use common::wire::NodeStatus;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

/// A node that has not answered its status in this long counts as silent this round (a
/// paused process accepts connections and answers nothing).
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a request to a node gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("node at {addr} did not answer: {why}")]
    Unreachable { addr: String, why: String },
    #[error("node at {addr} answered {status}: {body}")]
    Refused {
        addr: String,
        status: u16,
        body: String,
    },
}

impl CallError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Refused { status, .. } => Some(*status),
            CallError::Unreachable { .. } => None,
        }
    }

    /// The `leader` a 421 names.
    pub fn leader_hint(&self) -> Option<u64> {
        match self {
            CallError::Refused {
                status: 421, body, ..
            } => serde_json::from_str::<Value>(body)
                .ok()?
                .get("leader")?
                .as_u64(),
            _ => None,
        }
    }
}

/// A JSON client of the nodes' admin API.
#[derive(Clone)]
pub struct NodeCalls {
    http: reqwest::Client,
    secret: Option<ClusterSecret>,
    timeout: Duration,
}

impl NodeCalls {
    pub fn new(
        secret: Option<ClusterSecret>,
        timeout: Duration,
    ) -> Result<NodeCalls, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .pool_idle_timeout(common::wire::NODE_CLIENT_POOL_IDLE)
            .build()?;
        Ok(NodeCalls {
            http,
            secret,
            timeout,
        })
    }

    /// `GET /admin/status?digest=false` of the node at `addr` (no digests: they cost
    /// time in the size of the data).
    pub async fn status(&self, addr: &str) -> Result<NodeStatus, CallError> {
        let value = self
            .call_within(
                STATUS_TIMEOUT.min(self.timeout),
                Method::GET,
                addr,
                "/admin/status?digest=false",
                None,
            )
            .await?;
        serde_json::from_value(value).map_err(|e| CallError::Refused {
            addr: addr.to_owned(),
            status: 200,
            body: format!("undecodable status: {e}"),
        })
    }

    /// A JSON request; the answer's body if the status is a success.
    pub async fn send(
        &self,
        method: Method,
        addr: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Value, CallError> {
        let body = serde_json::to_value(body).unwrap_or(Value::Null);
        self.call(method, addr, path, Some(body)).await
    }

    async fn call(
        &self,
        method: Method,
        addr: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CallError> {
        self.call_within(self.timeout, method, addr, path, body)
            .await
    }

    async fn call_within(
        &self,
        timeout: Duration,
        method: Method,
        addr: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CallError> {
        let mut request = self
            .http
            .request(method, format!("http://{addr}{path}"))
            .timeout(timeout);
        if let Some(secret) = &self.secret {
            request = request.header(CLUSTER_SECRET_HEADER, secret.header_value());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unreachable = |e: reqwest::Error| CallError::Unreachable {
            addr: addr.to_owned(),
            why: e.to_string(),
        };
        let resp = request.send().await.map_err(unreachable)?;
        let status = resp.status();
        let text = resp.text().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        Err(CallError::Refused {
            addr: addr.to_owned(),
            status: status.as_u16(),
            body: text.chars().take(500).collect(),
        })
    }
}

/// Whether a refusal means "try again later" (another change in progress, a learner
/// catching up, not applied yet).
pub fn is_transient(e: &CallError) -> bool {
    matches!(
        e.status().map(StatusCode::from_u16),
        None | Some(Ok(StatusCode::CONFLICT
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::MISDIRECTED_REQUEST))
    )
}
