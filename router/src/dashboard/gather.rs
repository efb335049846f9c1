//! Gathering what the dashboard shows, from what the router can already reach: every
//! node's admin status (with the cluster secret the router holds), the groups' replicas
//! from the cluster map it follows, and the catalogue's collections with their record
//! counts (the same count the API's `count` runs). Each part has a short deadline and
//! fails on its own: a down node or an unavailable shard shows as such, never as a
//! failed page.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::catalog::{CatalogRead, CatalogReadValue, CollectionModel};
use futures::future::join_all;
use thiserror::Error;

use super::state::{self, CollectionView, CollectionsView, DashboardState, NodeAnswer};
use super::traffic;
use crate::api::AppState;
use crate::error::ApiError;
use crate::records;
use crate::shards::CollectionShards;

/// How long a node may take to answer its status before it is shown down. Short: the
/// page refreshes every second or two, and a node slower than this is worth a look.
const STATUS_TIMEOUT: Duration = Duration::from_millis(1500);

/// The catalogue read and the counts together.
const COLLECTIONS_TIMEOUT: Duration = Duration::from_millis(1500);

/// Collections listed (and counted: one read per shard each, every refresh).
pub const MAX_COLLECTIONS: u32 = 50;

/// Why the collections could not be listed.
#[derive(Debug, Error)]
pub enum GatherError {
    #[error("{0}")]
    Catalogue(#[from] ApiError),
    #[error("unexpected catalogue answer to a listing: {0}")]
    Unexpected(String),
}

pub async fn build(app: &AppState) -> DashboardState {
    let addrs = app.cluster.node_addrs();
    let expected = app.cluster.group_replicas();
    let statuses = join_all(addrs.iter().map(|(id, _)| async move {
        let answer: NodeAnswer = app
            .cluster
            .node_status(*id, true, STATUS_TIMEOUT)
            .await
            .map_err(|e| e.to_string());
        (*id, answer)
    }));
    let (answers, collections) = futures::join!(statuses, collections(app));
    let answers: BTreeMap<u64, NodeAnswer> = answers.into_iter().collect();
    DashboardState {
        generated_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        nodes: state::nodes(&addrs, &answers),
        groups: state::groups(&expected, &answers),
        collections,
        traffic: traffic::series(),
    }
}

async fn collections(app: &AppState) -> CollectionsView {
    let deadline = Instant::now() + COLLECTIONS_TIMEOUT;
    match list(app, deadline).await {
        Ok(mut listed) => {
            let truncated = listed.len() > MAX_COLLECTIONS as usize;
            listed.truncate(MAX_COLLECTIONS as usize);
            let items = join_all(listed.into_iter().map(|c| counted(app, c, deadline))).await;
            CollectionsView {
                items,
                truncated,
                error: None,
            }
        }
        Err(e) => CollectionsView {
            items: Vec::new(),
            truncated: false,
            error: Some(e.to_string()),
        },
    }
}

/// One more than shown, to know whether there are more.
async fn list(app: &AppState, deadline: Instant) -> Result<Vec<CollectionModel>, GatherError> {
    let read = CatalogRead::AllCollections {
        limit: MAX_COLLECTIONS + 1,
    };
    match app.catalog().read(read, deadline).await? {
        CatalogReadValue::Collections(all) => Ok(all),
        other => Err(GatherError::Unexpected(format!("{other:?}"))),
    }
}

async fn counted(app: &AppState, collection: CollectionModel, deadline: Instant) -> CollectionView {
    let mut view = CollectionView {
        id: collection.id.clone(),
        name: collection.name.clone(),
        tenant: collection.tenant.clone(),
        database: collection.database.clone(),
        records: None,
        error: None,
    };
    let shards = CollectionShards {
        cluster: &*app.cluster,
        catalog: app.catalog(),
        collection,
        deadline,
    };
    match records::count(&shards).await {
        Ok(n) => view.records = Some(n),
        Err(e) => view.error = Some(e.to_string()),
    }
    view
}
