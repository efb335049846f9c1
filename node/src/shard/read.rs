//! The read path of a collection: `get` in stable id order and `query` by
//! vector, planned as exact scan or HNSW search.
//!
//! # Long reads run in steps
//! A scan over a collection's records (a filtered `get`, a `count`, finding
//! the candidates of a filtered query) examines at most [`SCAN_STEP`] records
//! per step. The replica re-takes its state machine's read lock for each step
//! (`raft::state_machine::read_in_steps`), so the apply thread, and with it
//! every write of the shard, waits at most one step instead of a whole scan.
//! Between steps a scan keeps only keys (the last record id it examined, or
//! its place in a sorted id list) and what it has answered so far, never a
//! reference into the state.
//!
//! What such a read promises: every record is read at or after the read's
//! ReadIndex point (the first step runs only once the replica applied that
//! far) and before the reply, so the answer about each record is linearizable
//! on its own; a read of many records is not a snapshot: records written while
//! it runs may be seen or not, depending on whether the scan had passed their
//! id. Because a scan resumes after the last id it examined, in id order, a
//! record present during the whole read is examined exactly once: `get` never
//! returns a record twice nor skips one that existed throughout, and its
//! offset counts matching records in the same id order the page is cut from.
//! A collection dropped between steps ends the read as `NoSuchCollection`.

use std::ops::{Bound, ControlFlow};

use common::read::{hit_order, GetRequest, Include, QueryHit, QueryRequest, RecordView};
use common::Filter;

use super::collection::{CollectionShard, StoredRecord};
use super::index::PointId;
use super::indexer::IndexView;

/// When a filter leaves at most this many candidates, they are scanned
/// exactly: the scan is cheaper than a graph walk that would have to skip
/// most of what it visits, and its results are exact. A graph walk restricted
/// to a fraction `s` of a shard's points visits about `ef / s` points, so the
/// scan wins up to roughly `sqrt(ef * 2M * points)` candidates (~30,000 in a
/// 333k-point shard). 8,192 128-d vectors scan in ~0.25 ms (`shard_bench`:
/// 33M vectors/s); at 2,048 a 1% filter over a 300k-point shard (3,000
/// candidates) took the restricted walk, 10.2 ms p50 against 3.3 ms exact
/// (`shard_bench --n 300000`, most of the 3.3 ms the records' lookups by id).
pub const EXACT_SCAN_MAX_CANDIDATES: usize = 8192;

/// A filter estimated to match more records than this is answered by a graph
/// walk that checks the filter on each point it visits, without collecting the
/// candidates first; fewer are collected (in steps) and planned from the list.
const LAZY_FILTER_MIN_MATCHES: usize = 8192;

/// Records a long read examines per step, under one hold of the read lock
/// (a few milliseconds with a filter on every record).
pub const SCAN_STEP: usize = 4096;

/// Where a scan of a collection's records stands between steps.
#[derive(Debug)]
pub struct Scan {
    source: Source,
    done: bool,
}

#[derive(Debug)]
enum Source {
    /// Every record in id order, after this id (`None`: from the first).
    All { after: Option<String> },
    /// These ids (sorted, without duplicates) from position `next`: the ids a
    /// request names, or the metadata index's candidates for its filter.
    Listed { ids: Vec<String>, next: usize },
}

impl Scan {
    fn new(shard: &CollectionShard, ids: Option<&[String]>, filter: &Filter) -> Scan {
        let listed = |mut ids: Vec<String>| {
            ids.sort_unstable();
            ids.dedup();
            Source::Listed { ids, next: 0 }
        };
        let source = match ids {
            Some(ids) => listed(ids.to_vec()),
            None => match shard.indexed_candidates(filter) {
                Some(ids) => listed(ids.into_iter().map(str::to_owned).collect()),
                None => Source::All { after: None },
            },
        };
        Scan {
            source,
            done: false,
        }
    }
}

/// A `get` or `count` between steps.
#[derive(Debug)]
pub struct GetProgress {
    scan: Scan,
    skipped: usize,
    matched: usize,
    records: Vec<RecordView>,
}

/// A query whose candidates are being collected, between steps.
#[derive(Debug)]
pub struct QueryProgress {
    scan: Scan,
    candidates: Vec<String>,
}

fn view(id: &str, r: &StoredRecord, include: Include) -> RecordView {
    RecordView {
        id: id.to_owned(),
        embedding: include.embeddings.then(|| r.embedding.to_vec()),
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

/// Runs a stepped read to its answer without letting go in between (the
/// one-lock form of `get_step`, `count_step`, `query_step`).
fn to_the_end<P, T>(mut step: impl FnMut(&mut Option<P>) -> Option<T>) -> T {
    let mut progress = None;
    loop {
        if let Some(answer) = step(&mut progress) {
            return answer;
        }
    }
}

impl CollectionShard {
    /// Records passing the request's ids and filter, in id order, after
    /// `offset` of them, at most `limit`; in one step.
    pub fn get(&self, req: &GetRequest) -> Vec<RecordView> {
        to_the_end(|progress| self.get_step(req, progress))
    }

    /// One step of [`Self::get`]: the answer, or `None` to be called again
    /// (possibly after writes were applied) with the same `progress`.
    pub fn get_step(
        &self,
        req: &GetRequest,
        progress: &mut Option<GetProgress>,
    ) -> Option<Vec<RecordView>> {
        let limit = req.limit.unwrap_or(usize::MAX);
        let p = progress.get_or_insert_with(|| self.start_get(req));
        let GetProgress {
            scan,
            skipped,
            records,
            ..
        } = p;
        if limit > 0 {
            self.scan_step(scan, &req.filter, |id, r| {
                if *skipped < req.offset {
                    *skipped += 1;
                } else {
                    records.push(view(id, r, req.include));
                    if records.len() >= limit {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            });
        }
        (limit == 0 || p.scan.done).then(|| std::mem::take(&mut p.records))
    }

    /// Counts records passing the request's ids and filter, in one step.
    pub fn count_matching(&self, req: &GetRequest) -> usize {
        to_the_end(|progress| self.count_step(req, progress))
    }

    /// One step of [`Self::count_matching`] (see [`Self::get_step`]).
    pub fn count_step(
        &self,
        req: &GetRequest,
        progress: &mut Option<GetProgress>,
    ) -> Option<usize> {
        let p = progress.get_or_insert_with(|| self.start_get(req));
        let matched = &mut p.matched;
        self.scan_step(&mut p.scan, &req.filter, |_, _| {
            *matched += 1;
            ControlFlow::Continue(())
        });
        p.scan.done.then_some(p.matched)
    }

    fn start_get(&self, req: &GetRequest) -> GetProgress {
        GetProgress {
            scan: Scan::new(self, req.ids.as_deref(), &req.filter),
            skipped: 0,
            matched: 0,
            records: Vec::new(),
        }
    }

    /// Examines up to [`SCAN_STEP`] records of `scan` in id order, passing
    /// those that exist and pass `filter` to `visit` until it breaks; marks
    /// the scan done when it broke or ran out of records.
    fn scan_step(
        &self,
        scan: &mut Scan,
        filter: &Filter,
        mut visit: impl FnMut(&str, &StoredRecord) -> ControlFlow<()>,
    ) {
        let mut visit = |id: &str, r: &StoredRecord| {
            if filter.is_empty() || filter.matches(r.metadata.as_ref(), r.document.as_deref()) {
                visit(id, r)
            } else {
                ControlFlow::Continue(())
            }
        };
        let records = &self.state.records;
        let mut examined = 0;
        let mut flow = ControlFlow::Continue(());
        match &mut scan.source {
            Source::All { after } => {
                let from = match after.as_deref() {
                    Some(id) => Bound::Excluded(id),
                    None => Bound::Unbounded,
                };
                let mut last = None;
                for (id, r) in records.range::<str, _>((from, Bound::Unbounded)) {
                    if examined == SCAN_STEP {
                        break;
                    }
                    examined += 1;
                    last = Some(id);
                    flow = visit(id, r);
                    if flow.is_break() {
                        break;
                    }
                }
                match last {
                    // Resume after the last id examined: ids are unique and
                    // ordered, so no record is examined twice.
                    Some(id) if examined == SCAN_STEP => *after = Some(id.clone()),
                    _ => scan.done = true,
                }
            }
            Source::Listed { ids, next } => {
                while *next < ids.len() && examined < SCAN_STEP && flow.is_continue() {
                    if let Some((id, r)) = records.get_key_value(ids[*next].as_str()) {
                        flow = visit(id, r);
                    }
                    *next += 1;
                    examined += 1;
                }
                scan.done = *next == ids.len();
            }
        }
        if flow.is_break() {
            scan.done = true;
        }
    }

    /// Top `n_results` hits per query embedding, sorted by (distance, id),
    /// in one step. Embedding dimensions are checked by the caller.
    pub fn query(&self, req: &QueryRequest) -> Vec<Vec<QueryHit>> {
        to_the_end(|progress| self.query_step(req, progress))
    }

    /// One step of [`Self::query`] (see [`Self::get_step`]). A query the
    /// graph answers takes one step (an HNSW search is short); one that needs
    /// its filter's candidates collects their ids in steps, then re-reads
    /// those records and answers from them in a last step.
    pub fn query_step(
        &self,
        req: &QueryRequest,
        progress: &mut Option<QueryProgress>,
    ) -> Option<Vec<Vec<QueryHit>>> {
        if self.state.records.is_empty() || req.n_results == 0 {
            return Some(req.embeddings.iter().map(|_| Vec::new()).collect());
        }
        let p = match progress {
            Some(p) => p,
            None => {
                if let Some(plan) = self.plan_in_one_step(req) {
                    return Some(self.answer(req, &plan));
                }
                progress.insert(QueryProgress {
                    scan: Scan::new(self, req.ids.as_deref(), &req.filter),
                    candidates: Vec::new(),
                })
            }
        };
        let candidates = &mut p.candidates;
        self.scan_step(&mut p.scan, &req.filter, |id, _| {
            candidates.push(id.to_owned());
            ControlFlow::Continue(())
        });
        if !p.scan.done {
            return None;
        }
        // Collected over several steps: each candidate is read again now (it
        // may have changed or gone since) and must still pass the filter.
        let candidates: Vec<&StoredRecord> = p
            .candidates
            .iter()
            .filter_map(|id| self.state.records.get(id).map(|r| &**r))
            .filter(|r| self.passes(r, &req.filter))
            .collect();
        Some(self.answer(req, &Plan::from_candidates(candidates)))
    }

    /// The plan of a query answered in one step: by the graph without a list
    /// of candidates (no ids and no filter, or a filter too broad for an exact
    /// scan to pay), or from the metadata index's candidates when there are
    /// no more of them than one scan step examines ([`SCAN_STEP`]). `None`: the candidates
    /// are collected in steps.
    fn plan_in_one_step(&self, req: &QueryRequest) -> Option<Plan<'_>> {
        if req.ids.is_some() {
            return None;
        }
        if req.filter.is_empty() {
            return Some(Plan::Graph);
        }
        if let Some(points) = self.indexed_points(&req.filter, SCAN_STEP) {
            // The index's candidates may be a superset (a clause it cannot
            // answer, a where_document): each is checked against the filter.
            let candidates: Vec<&StoredRecord> = points
                .into_iter()
                .filter_map(|p| self.current_record(p))
                .filter(|r| self.passes(r, &req.filter))
                .collect();
            return Some(Plan::from_candidates(candidates));
        }
        (self.estimated_matches(&req.filter) > LAZY_FILTER_MIN_MATCHES)
            .then_some(Plan::GraphFiltered(None))
    }

    fn answer(&self, req: &QueryRequest, plan: &Plan<'_>) -> Vec<Vec<QueryHit>> {
        // Never more than there are records: n_results comes from the network.
        let k = req.n_results.min(self.state.records.len());
        if k == 0 {
            return req.embeddings.iter().map(|_| Vec::new()).collect();
        }
        let space = self.state.config.space;
        let allow = |p: PointId| match plan {
            Plan::GraphFiltered(Some(allowed)) => allowed.binary_search(&p).is_ok(),
            _ => self
                .current_record(p)
                .is_some_and(|r| self.passes(r, &req.filter)),
        };
        let filter: Option<&(dyn Fn(PointId) -> bool + Sync)> = match plan {
            Plan::GraphFiltered(_) => Some(&allow),
            _ => None,
        };
        let view = self.index.view();
        req.embeddings
            .iter()
            .map(|q| {
                let scored = match plan {
                    Plan::Exact(c) => exact_top_k(c, q, k, space),
                    Plan::Graph | Plan::GraphFiltered(_) => {
                        self.graph_and_tail(&view, q, k, filter)
                    }
                };
                self.hits(scored, req.include)
            })
            .collect()
    }

    /// Top-k over the graph and, exactly, over the tail the indexer has not
    /// reached yet, both restricted to `filter`: every applied record version
    /// is in exactly one of the two (`indexer.rs`). Graph hits that are no
    /// longer a record's current version (replaced or deleted, tombstone still
    /// queued) are kept out of the search, so they cannot take a place in the
    /// top k.
    fn graph_and_tail(
        &self,
        view: &IndexView<'_>,
        q: &[f32],
        k: usize,
        filter: Option<&(dyn Fn(PointId) -> bool + Sync)>,
    ) -> Vec<(PointId, f32)> {
        let allowed = |p: PointId| filter.is_none_or(|f| f(p));
        // Points at or above the watermark belong to the tail, even when a
        // chunk being linked has put them in the graph already.
        let indexed = |p: PointId| p < view.through && allowed(p);
        let current = |p: PointId| indexed(p) && self.current_record(p).is_some();
        let in_graph: &(dyn Fn(PointId) -> bool + Sync) = if view.stale_possible {
            &current
        } else {
            &indexed
        };
        let mut scored = match view.index() {
            Some(index) => index.search(q, k, Some(in_graph)),
            None => Vec::new(),
        };
        let space = self.state.config.space;
        let tail = self
            .point_to_id
            .range(view.through..)
            .filter(|(p, _)| allowed(**p))
            .map(|(p, live)| (*p, space.distance(q, &live.record.embedding)));
        let graph_hits = scored.len();
        scored.extend(tail);
        if scored.len() == graph_hits {
            return scored; // no tail: the graph's answer is already the top k in order
        }
        top_k(scored, k)
    }

    /// Estimates how many records pass `filter` from a sample, without a
    /// full scan (which costs more than the graph search it would guide).
    ///
    /// The sample is taken at evenly spaced point ids, each found with one
    /// tree lookup: stepping an iterator through the map instead walks every
    /// entry (a millisecond at 100k records, more than the exact scan of a
    /// selective filter's candidates).
    fn estimated_matches(&self, filter: &Filter) -> usize {
        const SAMPLE: u64 = 512;
        let n = self.state.records.len();
        if n <= LAZY_FILTER_MIN_MATCHES {
            return n; // small: collecting the candidates is cheap anyway
        }
        let (Some((&first, _)), Some((&last, _))) = (
            self.point_to_id.first_key_value(),
            self.point_to_id.last_key_value(),
        ) else {
            return 0;
        };
        // Points after a gap in the ids are sampled more than once (a bias an
        // estimate can live with); a point whose record moved on is skipped
        // and not counted.
        let span = u128::from(last - first) + 1;
        let (mut sampled, mut passing) = (0usize, 0usize);
        for i in 0..SAMPLE {
            // < span, so it fits a PointId again.
            let offset = (u128::from(i) * span / u128::from(SAMPLE)) as u64;
            let Some((&p, _)) = self.point_to_id.range(first + offset..).next() else {
                continue;
            };
            if let Some(r) = self.current_record(p) {
                sampled += 1;
                passing += usize::from(self.passes(r, filter));
            }
        }
        passing * n / sampled.max(1)
    }

    fn current_record(&self, point: PointId) -> Option<&StoredRecord> {
        self.point_to_id.get(&point).map(|live| &*live.record)
    }

    fn passes(&self, r: &StoredRecord, filter: &Filter) -> bool {
        filter.matches(r.metadata.as_ref(), r.document.as_deref())
    }

    fn hits(&self, scored: Vec<(PointId, f32)>, include: Include) -> Vec<QueryHit> {
        let mut hits: Vec<QueryHit> = scored
            .into_iter()
            .filter_map(|(point, distance)| {
                let live = self.point_to_id.get(&point)?;
                Some(QueryHit {
                    record: view(&live.id, &live.record, include),
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

impl<'a> Plan<'a> {
    /// The plan for a known list of records passing the filter: an exact scan
    /// of few, a graph search restricted to their points for more.
    fn from_candidates(candidates: Vec<&'a StoredRecord>) -> Plan<'a> {
        if candidates.len() <= EXACT_SCAN_MAX_CANDIDATES {
            return Plan::Exact(candidates);
        }
        let mut allowed: Vec<PointId> = candidates.iter().map(|r| r.point).collect();
        allowed.sort_unstable();
        Plan::GraphFiltered(Some(allowed))
    }
}

/// Exact top-k by brute force over `candidates`, ties broken by point id.
fn exact_top_k(
    candidates: &[&StoredRecord],
    q: &[f32],
    k: usize,
    space: common::Space,
) -> Vec<(PointId, f32)> {
    let scored: Vec<(PointId, f32)> = candidates
        .iter()
        .map(|r| (r.point, space.distance(q, &r.embedding)))
        .collect();
    top_k(scored, k)
}

/// The first `k` of `scored` by (distance, point id).
fn top_k(mut scored: Vec<(PointId, f32)>, k: usize) -> Vec<(PointId, f32)> {
    let by_distance =
        |a: &(PointId, f32), b: &(PointId, f32)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, by_distance);
        scored.truncate(k);
    }
    scored.sort_by(by_distance);
    scored
}
