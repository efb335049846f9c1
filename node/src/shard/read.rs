//! The read path of a collection: `get` in stable id order and `query` by
//! vector, planned as exact scan or HNSW search.

use common::read::{hit_order, GetRequest, Include, QueryHit, QueryRequest, RecordView};
use common::Filter;

use super::collection::{CollectionShard, StoredRecord};
use super::index::PointId;

/// When a filter leaves at most this many candidates, they are scanned
/// exactly: the scan is cheaper than a graph walk that would have to skip
/// most of what it visits, and its results are exact.
pub const EXACT_SCAN_MAX_CANDIDATES: usize = 2048;

fn view(id: &str, r: &StoredRecord, include: Include) -> RecordView {
    RecordView {
        id: id.to_owned(),
        embedding: include.embeddings.then(|| r.embedding.clone()),
        metadata: if include.metadatas {
            r.metadata.clone()
        } else {
            None
        },
        document: if include.documents {
            r.document.clone()
        } else {
            None
        },
        uri: if include.uris { r.uri.clone() } else { None },
    }
}

impl CollectionShard {
    pub fn get(&self, req: &GetRequest) -> Vec<RecordView> {
        self.matching_ids(req.ids.as_deref(), &req.filter)
            .skip(req.offset)
            .take(req.limit.unwrap_or(usize::MAX))
            .filter_map(|id| self.state.records.get(id).map(|r| view(id, r, req.include)))
            .collect()
    }

    /// Counts records passing the request's ids and filter.
    pub fn count_matching(&self, req: &GetRequest) -> usize {
        self.matching_ids(req.ids.as_deref(), &req.filter).count()
    }

    /// Top `n_results` hits per query embedding, sorted by (distance, id).
    /// Embedding dimensions are checked by the caller.
    pub fn query(&self, req: &QueryRequest) -> Vec<Vec<QueryHit>> {
        // Never more than there are records: n_results comes from the network.
        let k = req.n_results.min(self.state.records.len());
        if k == 0 || self.state.records.is_empty() {
            return req.embeddings.iter().map(|_| Vec::new()).collect();
        }
        let space = self.state.config.space;
        // Planned once: the candidate set serves every query embedding.
        let plan = self.plan(req);
        let allow = |p: PointId| match &plan {
            Plan::GraphFiltered(Some(allowed)) => allowed.binary_search(&p).is_ok(),
            _ => self
                .current_record(p)
                .is_some_and(|r| self.passes(r, &req.filter)),
        };
        req.embeddings
            .iter()
            .map(|q| {
                let scored = match (&plan, &self.index) {
                    (Plan::Exact(c), _) => exact_top_k(c, q, k, space),
                    (Plan::Graph, Some(index)) => index.search(q, k, None),
                    (Plan::GraphFiltered(_), Some(index)) => index.search(q, k, Some(&allow)),
                    (_, None) => Vec::new(),
                };
                self.hits(scored, req.include)
            })
            .collect()
    }

    /// Chooses how to answer a query: exact scan of a small candidate set,
    /// or the HNSW graph, unfiltered or with the filter checked lazily.
    fn plan(&self, req: &QueryRequest) -> Plan<'_> {
        if req.ids.is_none() && req.filter.is_empty() {
            return Plan::Graph;
        }
        if req.ids.is_none() && self.estimated_matches(&req.filter) > 4 * EXACT_SCAN_MAX_CANDIDATES
        {
            return Plan::GraphFiltered(None);
        }
        let candidates: Vec<&StoredRecord> = self
            .matching_ids(req.ids.as_deref(), &req.filter)
            .filter_map(|id| self.state.records.get(id))
            .collect();
        if candidates.len() <= EXACT_SCAN_MAX_CANDIDATES || self.index.is_none() {
            Plan::Exact(candidates)
        } else {
            let mut allowed: Vec<PointId> = candidates.iter().map(|r| r.point).collect();
            allowed.sort_unstable();
            Plan::GraphFiltered(Some(allowed))
        }
    }

    /// Estimates how many records pass `filter` from a sample, without a
    /// full scan (which costs more than the graph search it would guide).
    fn estimated_matches(&self, filter: &Filter) -> usize {
        const SAMPLE: usize = 512;
        let n = self.state.records.len();
        if n <= 4 * EXACT_SCAN_MAX_CANDIDATES {
            return n.min(EXACT_SCAN_MAX_CANDIDATES); // small: scanning is cheap anyway
        }
        let stride = n / SAMPLE;
        let passing = self
            .point_to_id
            .values()
            .step_by(stride.max(1))
            .take(SAMPLE)
            .filter_map(|id| self.state.records.get(id))
            .filter(|r| self.passes(r, filter))
            .count();
        passing * n / SAMPLE
    }

    fn current_record(&self, point: PointId) -> Option<&StoredRecord> {
        let r = self.state.records.get(self.point_to_id.get(&point)?)?;
        (r.point == point).then_some(r)
    }

    fn passes(&self, r: &StoredRecord, filter: &Filter) -> bool {
        filter.matches(r.metadata.as_ref(), r.document.as_deref())
    }

    fn hits(&self, scored: Vec<(PointId, f32)>, include: Include) -> Vec<QueryHit> {
        let mut hits: Vec<QueryHit> = scored
            .into_iter()
            .filter_map(|(point, distance)| {
                let id = self.point_to_id.get(&point)?;
                let r = self.state.records.get(id)?;
                // A hit whose point is not the record's current version is stale.
                (r.point == point).then(|| QueryHit {
                    record: view(id, r, include),
                    distance,
                })
            })
            .collect();
        // The same order the router merges in, so one shard's answer is already merged.
        hits.sort_by(hit_order);
        hits
    }
}

enum Plan<'a> {
    Exact(Vec<&'a StoredRecord>),
    Graph,
    /// HNSW search restricted to these points, or (None) to the points that
    /// pass the filter, checked lazily as the graph walk visits them.
    GraphFiltered(Option<Vec<PointId>>),
}

/// Exact top-k by brute force over `candidates`, ties broken by point id.
fn exact_top_k(
    candidates: &[&StoredRecord],
    q: &[f32],
    k: usize,
    space: common::Space,
) -> Vec<(PointId, f32)> {
    let mut scored: Vec<(PointId, f32)> = candidates
        .iter()
        .map(|r| (r.point, space.distance(q, &r.embedding)))
        .collect();
    let by_distance =
        |a: &(PointId, f32), b: &(PointId, f32)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, by_distance);
        scored.truncate(k);
    }
    scored.sort_by(by_distance);
    scored
}
