//! The JSON of GetResult and QueryResult (http-api.md). Built from typed
//! structs so f32 values print in their shortest f32 form (0.1, not
//! 0.10000000149011612), as Chroma prints them.

use common::read::{QueryHit, RecordView};
use common::record::metadata_to_json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::parse::Included;

/// The records found, column by column; a column not included is null.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetResult {
    ids: Vec<String>,
    embeddings: Option<Vec<Vec<f32>>>,
    documents: Option<Vec<Option<String>>>,
    #[schema(value_type = Option<Vec<Option<crate::api::schemas::Metadata>>>)]
    metadatas: Option<Vec<Value>>,
    uris: Option<Vec<Option<String>>>,
    include: Vec<String>,
}

/// One list per query embedding, nearest first; a column not included is null.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryResult {
    ids: Vec<Vec<String>>,
    embeddings: Option<Vec<Vec<Vec<f32>>>>,
    documents: Option<Vec<Vec<Option<String>>>>,
    #[schema(value_type = Option<Vec<Vec<Option<crate::api::schemas::Metadata>>>>)]
    metadatas: Option<Vec<Vec<Value>>>,
    uris: Option<Vec<Vec<Option<String>>>>,
    distances: Option<Vec<Vec<f32>>>,
    include: Vec<String>,
}

/// The included fields of a list of records, each `None` when not included.
struct Columns {
    ids: Vec<String>,
    embeddings: Option<Vec<Vec<f32>>>,
    documents: Option<Vec<Option<String>>>,
    metadatas: Option<Vec<Value>>,
    uris: Option<Vec<Option<String>>>,
}

fn columns(records: Vec<RecordView>, include: &Included) -> Columns {
    let f = include.fields;
    let mut c = Columns {
        ids: Vec::with_capacity(records.len()),
        embeddings: f.embeddings.then(Vec::new),
        documents: f.documents.then(Vec::new),
        metadatas: f.metadatas.then(Vec::new),
        uris: f.uris.then(Vec::new),
    };
    for r in records {
        c.ids.push(r.id);
        if let Some(e) = c.embeddings.as_mut() {
            e.push(r.embedding.unwrap_or_default());
        }
        if let Some(d) = c.documents.as_mut() {
            d.push(r.document);
        }
        if let Some(m) = c.metadatas.as_mut() {
            m.push(r.metadata.as_ref().map_or(Value::Null, metadata_to_json));
        }
        if let Some(u) = c.uris.as_mut() {
            u.push(r.uri);
        }
    }
    c
}

pub fn get_result(records: Vec<RecordView>, include: &Included) -> GetResult {
    let c = columns(records, include);
    GetResult {
        ids: c.ids,
        embeddings: c.embeddings,
        documents: c.documents,
        metadatas: c.metadatas,
        uris: c.uris,
        include: include.names.clone(),
    }
}

pub fn query_result(per_query: Vec<Vec<QueryHit>>, include: &Included) -> QueryResult {
    let f = include.fields;
    let mut out = QueryResult {
        ids: Vec::with_capacity(per_query.len()),
        embeddings: f.embeddings.then(Vec::new),
        documents: f.documents.then(Vec::new),
        metadatas: f.metadatas.then(Vec::new),
        uris: f.uris.then(Vec::new),
        distances: include.distances.then(Vec::new),
        include: include.names.clone(),
    };
    for hits in per_query {
        let distances: Vec<f32> = hits.iter().map(|h| h.distance).collect();
        let c = columns(hits.into_iter().map(|h| h.record).collect(), include);
        out.ids.push(c.ids);
        if let (Some(all), Some(one)) = (out.embeddings.as_mut(), c.embeddings) {
            all.push(one);
        }
        if let (Some(all), Some(one)) = (out.documents.as_mut(), c.documents) {
            all.push(one);
        }
        if let (Some(all), Some(one)) = (out.metadatas.as_mut(), c.metadatas) {
            all.push(one);
        }
        if let (Some(all), Some(one)) = (out.uris.as_mut(), c.uris) {
            all.push(one);
        }
        if let Some(all) = out.distances.as_mut() {
            all.push(distances);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::read::Include;
    use serde_json::json;

    fn record(id: &str) -> RecordView {
        RecordView {
            id: id.into(),
            embedding: Some(vec![0.1, 2.0]),
            metadata: None,
            document: Some("doc".into()),
            uri: None,
        }
    }

    #[test]
    fn shapes_and_f32_printing() {
        let include = Included {
            fields: Include {
                embeddings: true,
                documents: true,
                metadatas: true,
                uris: false,
            },
            distances: true,
            names: vec![
                "embeddings".into(),
                "documents".into(),
                "metadatas".into(),
                "distances".into(),
            ],
        };
        // Through the text form, as a client sees it.
        let as_json = |text: String| serde_json::from_str::<Value>(&text).unwrap();
        let get = as_json(serde_json::to_string(&get_result(vec![record("a")], &include)).unwrap());
        assert_eq!(
            get,
            json!({"ids": ["a"], "embeddings": [[0.1, 2.0]], "documents": ["doc"],
                "metadatas": [null], "uris": null,
                "include": ["embeddings", "documents", "metadatas", "distances"]})
        );
        assert!(
            serde_json::to_string(&get_result(vec![record("a")], &include))
                .unwrap()
                .contains("[[0.1,2.0]]")
        );
        let hits = vec![
            vec![QueryHit {
                record: record("a"),
                distance: 0.5,
            }],
            vec![],
        ];
        let q = as_json(serde_json::to_string(&query_result(hits, &include)).unwrap());
        assert_eq!(q["ids"], json!([["a"], []]));
        assert_eq!(q["distances"], json!([[0.5], []]));
        assert_eq!(q["documents"], json!([["doc"], []]));
        assert_eq!(q["uris"], Value::Null);
    }
}
