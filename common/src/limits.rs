//! Every limit on what one request may ask of the cluster, in one place.
//!
//! The router checks these before it proposes or reads anything, so a
//! request over a limit writes nothing anywhere and gets 400
//! `InvalidArgumentError` naming the limit (a write whose encoded shard part
//! is too large gets 413 `BatchSizeExceededError`). The nodes check them
//! again where a command is applied or a read is answered, with the same
//! functions, so a command that reaches a node some other way is refused the
//! same way on every replica (HNSW parameters are clamped there instead, see
//! [`IndexConfig::clamped`](crate::command::IndexConfig::clamped)).
//!
//! Chroma's open-source server has none of these limits; Chroma Cloud has
//! quotas for the same things, much tighter (e.g. 16 KiB documents, 128-byte
//! ids, 32 metadata keys, 8 where predicates, 300 results; see
//! <https://docs.trychroma.com/cloud/quotas-limits>). Ours are loose enough
//! for every request Chroma's own test suite sends, and tight enough that no
//! request can make a node allocate without bound, recurse without bound or
//! work for minutes. They are constants, not settings: a replica must judge a
//! command exactly as every other replica does.

use std::ops::RangeInclusive;

// ---- HNSW parameters -------------------------------------------------------

/// `max_neighbors` (`hnsw:M`) a collection may ask for. Chroma accepts any
/// `usize` and its own tests send 1..=1000. The index uses it clamped to
/// `2..=255` (hnsw_rs keeps it in a `u8` and exits the process above 256), as
/// it always has.
pub const HNSW_MAX_NEIGHBORS: RangeInclusive<usize> = 1..=1024;

/// `ef_construction` (`hnsw:construction_ef`). Chroma accepts any `usize`
/// (its tests send 1..=1000); insert cost grows linearly with it.
pub const HNSW_EF_CONSTRUCTION: RangeInclusive<usize> = 1..=10_000;

/// `ef_search` (`hnsw:search_ef`, also SPANN's `ef_search` on modify, which
/// we apply to the same index). Chroma accepts any `usize` for HNSW (its
/// tests send 1..=1000) and at most 200 for SPANN.
pub const HNSW_EF_SEARCH: RangeInclusive<usize> = 1..=10_000;

/// Layers of a collection's graph (hnsw_rs's `NB_LAYER_MAX`): a point's level is
/// below it.
pub const HNSW_LAYERS: usize = 16;

/// Points one `LinkHints` command may describe (a shard leader's indexer sends one
/// per chunk of 256).
pub const MAX_LINK_HINTS: usize = 4_096;

// ---- Filters (`where`, `where_document`) ----------------------------------

/// Deepest nesting of `$and` / `$or`: a condition under 100 logical
/// operators is accepted, one more level is not. JSON bodies cannot reach it
/// (serde_json stops at 128 JSON levels, about 64 logical levels); it bounds
/// the recursion of decoding (bincode, from another process), evaluating and
/// dropping a filter.
pub const MAX_FILTER_DEPTH: usize = 100;

/// Nodes of one filter (`where` and `where_document` together): every
/// condition, every `$and` / `$or`, and every value of an `$in` / `$nin`
/// list counts one. Bounds the work of evaluating the filter on one record.
pub const MAX_FILTER_TERMS: usize = 16_384;

/// Values in one `$in` / `$nin` list.
pub const MAX_IN_VALUES: usize = 4_096;

/// `$regex` / `$not_regex` conditions in one filter (each is compiled).
pub const MAX_REGEXES: usize = 32;

/// Bytes of one regex pattern (Chroma Cloud: 256).
pub const MAX_REGEX_PATTERN_BYTES: usize = 4_096;

/// Size of one compiled regex (the `regex` crate's `size_limit`; its default
/// is 10 MiB). A pattern like `a{1000}{1000}` is short but compiles huge;
/// over this it is refused.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Cache of the lazy DFA of one regex (the `regex` crate's
/// `dfa_size_limit`; its default is 2 MiB).
pub const REGEX_DFA_SIZE_LIMIT: usize = 1 << 20;

// ---- Records ---------------------------------------------------------------

/// Bytes of one record id (Chroma Cloud: 128).
pub const MAX_ID_BYTES: usize = 4_096;

/// Bytes of one document (Chroma Cloud: 16 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;

/// Bytes of one URI (Chroma Cloud: 256).
pub const MAX_URI_BYTES: usize = 65_536;

/// Values of one embedding (Chroma Cloud: 4,096).
pub const MAX_EMBEDDING_DIMENSION: usize = 65_536;

/// Keys of one record's (or collection's) metadata (Chroma Cloud: 32).
pub const MAX_METADATA_KEYS: usize = 1_024;

/// Bytes of one metadata key (Chroma Cloud: 36).
pub const MAX_METADATA_KEY_BYTES: usize = 1_024;

/// Bytes of one string metadata value, and of each string of a string list
/// (Chroma Cloud: 4 KiB for a value).
pub const MAX_METADATA_STRING_BYTES: usize = 1 << 20;

/// Items of one list metadata value.
pub const MAX_METADATA_LIST_ITEMS: usize = 4_096;

/// Ids in the `ids` list of a get, query or delete (a write's ids are bounded
/// by the router's `max_batch_size`).
pub const MAX_SELECT_IDS: usize = 100_000;

// ---- Reads -----------------------------------------------------------------

/// Query embeddings (or `query_texts`) in one query request.
pub const MAX_QUERY_EMBEDDINGS: usize = 1_024;

/// `n_results` of one query (Chroma Cloud: 300). Each shard returns at most
/// this many hits per query embedding.
pub const MAX_N_RESULTS: usize = 100_000;

/// `n_results` times the number of query embeddings: the most hits one query
/// request may ask for in all.
pub const MAX_QUERY_HITS: usize = 1_000_000;

/// `limit` and `offset` of a get: Chroma takes them as `u32`.
pub const MAX_LIMIT_OFFSET: usize = u32::MAX as usize;

// ---- Proposals ---------------------------------------------------------------

/// Bytes of one encoded command a node accepts to propose (the Raft entry).
/// The router measures every shard part of a write before proposing any, and
/// refuses the whole write with 413 when one part is over.
pub const MAX_PROPOSAL_BYTES: usize = 64 << 20;

// ---- Checks ------------------------------------------------------------------
//
// Each check names the limit (its constant) in its message, so a client that
// hits one knows which; the router and the nodes call the same checks.

use crate::error::CommonError;
use crate::record::MetadataValue;

/// "`subject` is `got`, over the limit of `limit` (`NAME`)".
pub fn exceeded(subject: &str, got: usize, limit: usize, name: &str) -> CommonError {
    CommonError::invalid(format!(
        "{subject} is {got}, over the limit of {limit} ({name})"
    ))
}

fn at_most(subject: &str, got: usize, limit: usize, name: &str) -> Result<(), CommonError> {
    if got > limit {
        return Err(exceeded(subject, got, limit, name));
    }
    Ok(())
}

/// One record id.
pub fn check_id(id: &str) -> Result<(), CommonError> {
    at_most(
        "The size in bytes of an id",
        id.len(),
        MAX_ID_BYTES,
        "MAX_ID_BYTES",
    )
}

/// One document.
pub fn check_document(document: &str) -> Result<(), CommonError> {
    at_most(
        "The size in bytes of a document",
        document.len(),
        MAX_DOCUMENT_BYTES,
        "MAX_DOCUMENT_BYTES",
    )
}

/// One URI.
pub fn check_uri(uri: &str) -> Result<(), CommonError> {
    at_most(
        "The size in bytes of a uri",
        uri.len(),
        MAX_URI_BYTES,
        "MAX_URI_BYTES",
    )
}

/// One embedding's (or query embedding's) number of values.
pub fn check_embedding_dimension(dimension: usize) -> Result<(), CommonError> {
    at_most(
        "The dimension of an embedding",
        dimension,
        MAX_EMBEDDING_DIMENSION,
        "MAX_EMBEDDING_DIMENSION",
    )
}

/// One metadata value (strings and list items).
fn check_metadata_value(key: &str, value: &MetadataValue) -> Result<(), CommonError> {
    let subject = |what: &str| format!("{what} of metadata key '{}'", shorten(key));
    let strings: &[String] = match value {
        MetadataValue::Str(s) => std::slice::from_ref(s),
        MetadataValue::StrList(l) => l,
        _ => &[],
    };
    let items = match value {
        MetadataValue::StrList(l) => l.len(),
        MetadataValue::IntList(l) => l.len(),
        MetadataValue::FloatList(l) => l.len(),
        MetadataValue::BoolList(l) => l.len(),
        _ => 0,
    };
    at_most(
        &subject("The number of list items"),
        items,
        MAX_METADATA_LIST_ITEMS,
        "MAX_METADATA_LIST_ITEMS",
    )?;
    for s in strings {
        at_most(
            &subject("The size in bytes of a string value"),
            s.len(),
            MAX_METADATA_STRING_BYTES,
            "MAX_METADATA_STRING_BYTES",
        )?;
    }
    Ok(())
}

/// One record's or collection's metadata (or a metadata patch: `None`
/// values remove a key and count as keys).
pub fn check_metadata<'a>(
    entries: impl ExactSizeIterator<Item = (&'a String, Option<&'a MetadataValue>)>,
) -> Result<(), CommonError> {
    at_most(
        "The number of metadata keys",
        entries.len(),
        MAX_METADATA_KEYS,
        "MAX_METADATA_KEYS",
    )?;
    for (key, value) in entries {
        at_most(
            "The size in bytes of a metadata key",
            key.len(),
            MAX_METADATA_KEY_BYTES,
            "MAX_METADATA_KEY_BYTES",
        )?;
        if let Some(value) = value {
            check_metadata_value(key, value)?;
        }
    }
    Ok(())
}

/// The `ids` list of a get, query or delete.
pub fn check_select_ids(ids: &[String]) -> Result<(), CommonError> {
    at_most(
        "The number of ids",
        ids.len(),
        MAX_SELECT_IDS,
        "MAX_SELECT_IDS",
    )?;
    ids.iter().try_for_each(|id| check_id(id))
}

/// A query's number of query embeddings (or texts) and `n_results`.
pub fn check_query(queries: usize, n_results: usize) -> Result<(), CommonError> {
    at_most(
        "The number of query embeddings",
        queries,
        MAX_QUERY_EMBEDDINGS,
        "MAX_QUERY_EMBEDDINGS",
    )?;
    at_most("n_results", n_results, MAX_N_RESULTS, "MAX_N_RESULTS")?;
    at_most(
        "n_results times the number of query embeddings",
        n_results.saturating_mul(queries),
        MAX_QUERY_HITS,
        "MAX_QUERY_HITS",
    )
}

/// A get's `limit` or `offset` (`name` says which).
pub fn check_limit_offset(name: &str, value: usize) -> Result<(), CommonError> {
    at_most(name, value, MAX_LIMIT_OFFSET, "MAX_LIMIT_OFFSET")
}

/// A key for a message: at most 64 characters of it.
fn shorten(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &key[..cut]),
        None => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn record_checks_name_their_limit() {
        assert!(check_id(&"a".repeat(MAX_ID_BYTES)).is_ok());
        let e = check_id(&"a".repeat(MAX_ID_BYTES + 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The size in bytes of an id is 4097, over the limit of 4096 (MAX_ID_BYTES)"
        );
        assert!(check_document(&"d".repeat(MAX_DOCUMENT_BYTES)).is_ok());
        assert!(check_document(&"d".repeat(MAX_DOCUMENT_BYTES + 1))
            .unwrap_err()
            .to_string()
            .contains("MAX_DOCUMENT_BYTES"));
        assert!(check_uri(&"u".repeat(MAX_URI_BYTES + 1)).is_err());
        assert!(check_embedding_dimension(MAX_EMBEDDING_DIMENSION).is_ok());
        assert!(check_embedding_dimension(MAX_EMBEDDING_DIMENSION + 1).is_err());
        let ids: Vec<String> = (0..=MAX_SELECT_IDS).map(|i| i.to_string()).collect();
        assert!(check_select_ids(&ids[..MAX_SELECT_IDS]).is_ok());
        assert!(check_select_ids(&ids)
            .unwrap_err()
            .to_string()
            .contains("MAX_SELECT_IDS"));
    }

    #[test]
    fn metadata_checks() {
        let check = |m: &BTreeMap<String, Option<MetadataValue>>| {
            check_metadata(m.iter().map(|(k, v)| (k, v.as_ref())))
        };
        let mut m = BTreeMap::new();
        m.insert("k".to_owned(), Some(MetadataValue::Str("v".into())));
        m.insert("gone".to_owned(), None);
        assert!(check(&m).is_ok());
        m.insert("x".repeat(MAX_METADATA_KEY_BYTES + 1), None);
        assert!(check(&m)
            .unwrap_err()
            .to_string()
            .contains("MAX_METADATA_KEY_BYTES"));
        let mut m = BTreeMap::new();
        m.insert(
            "s".to_owned(),
            Some(MetadataValue::Str(
                "v".repeat(MAX_METADATA_STRING_BYTES + 1),
            )),
        );
        assert!(check(&m)
            .unwrap_err()
            .to_string()
            .contains("MAX_METADATA_STRING_BYTES"));
        m.insert(
            "s".to_owned(),
            Some(MetadataValue::IntList(vec![1; MAX_METADATA_LIST_ITEMS + 1])),
        );
        assert!(check(&m)
            .unwrap_err()
            .to_string()
            .contains("MAX_METADATA_LIST_ITEMS"));
        let many: BTreeMap<String, Option<MetadataValue>> = (0..=MAX_METADATA_KEYS)
            .map(|i| (i.to_string(), Some(MetadataValue::Int(1))))
            .collect();
        assert!(check(&many)
            .unwrap_err()
            .to_string()
            .contains("MAX_METADATA_KEYS"));
    }

    #[test]
    fn query_checks() {
        assert!(check_query(MAX_QUERY_EMBEDDINGS, 10).is_ok());
        assert!(check_query(MAX_QUERY_EMBEDDINGS + 1, 10)
            .unwrap_err()
            .to_string()
            .contains("MAX_QUERY_EMBEDDINGS"));
        assert!(check_query(1, MAX_N_RESULTS + 1)
            .unwrap_err()
            .to_string()
            .contains("MAX_N_RESULTS"));
        assert!(check_query(1000, 10_000)
            .unwrap_err()
            .to_string()
            .contains("MAX_QUERY_HITS"));
        assert!(check_query(usize::MAX, usize::MAX).is_err());
        assert!(check_limit_offset("limit", u32::MAX as usize).is_ok());
        assert!(check_limit_offset("offset", u32::MAX as usize + 1).is_err());
    }
}
