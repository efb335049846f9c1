//! The values the workload writes: unique per write, and carrying the
//! metadata group that `delete` with a `where` on `g` and filtered queries
//! select on, so a read names the exact write it observes.

use serde_json::{json, Value as Json};

/// A written value: client `c`, that client's operation `s`, the record's
/// place `i` in the batch, its group `g`. Shown as `c3-s17.0-g2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    pub client: u32,
    pub seq: u32,
    pub index: u32,
    pub group: u8,
}

/// Groups the values are spread over (the `g` metadata field).
pub const GROUPS: u8 = 3;

/// Dimension of the embeddings the workload writes.
pub const DIM: usize = 4;

impl Value {
    pub fn text(&self) -> String {
        format!(
            "c{}-s{}.{}-g{}",
            self.client, self.seq, self.index, self.group
        )
    }

    /// The inverse of [`Value::text`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<Value> {
        let rest = text.strip_prefix('c')?;
        let (client, rest) = rest.split_once("-s")?;
        let (seq, rest) = rest.split_once('.')?;
        let (index, group) = rest.split_once("-g")?;
        Some(Value {
            client: client.parse().ok()?,
            seq: seq.parse().ok()?,
            index: index.parse().ok()?,
            group: group.parse().ok()?,
        })
    }

    /// The embedding derived from the value (small integers: exact in f32).
    pub fn embedding(&self) -> [f32; DIM] {
        [
            self.client as f32,
            self.seq as f32,
            self.index as f32,
            self.group as f32,
        ]
    }

    /// The metadata the record carries: the value and its group.
    pub fn metadata(&self) -> Json {
        json!({ "v": self.text(), "g": self.group })
    }
}

/// The value a returned record holds, judged from all three fields: the
/// document, the metadata `v` and `g`, and the embedding (when included)
/// must name the same write. A record mixing writes (or holding anything
/// else) comes back as a `torn(...)` text no write produced, which the
/// checker reports as a phantom.
pub fn observed(document: &Json, metadata: &Json, embedding: &Json) -> String {
    let doc = document.as_str().unwrap_or_default();
    let meta_v = metadata.get("v").and_then(Json::as_str).unwrap_or_default();
    let parsed = Value::parse(doc);
    let consistent = parsed.is_some_and(|v| {
        meta_v == doc
            && metadata.get("g").and_then(Json::as_u64) == Some(v.group as u64)
            && (embedding.is_null()
                || embedding
                    .as_array()
                    .map(|xs| xs.iter().filter_map(Json::as_f64).collect::<Vec<_>>())
                    == Some(v.embedding().iter().map(|x| *x as f64).collect()))
    });
    if consistent {
        doc.to_string()
    } else {
        format!("torn(document={document}, metadata={metadata}, embedding={embedding})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reads_back_from_its_text_and_fields() {
        let v = Value {
            client: 3,
            seq: 17,
            index: 1,
            group: 2,
        };
        assert_eq!(v.text(), "c3-s17.1-g2");
        assert_eq!(Value::parse(&v.text()), Some(v));
        assert_eq!(Value::parse("c3-s17-g2"), None);
        let emb = json!(v.embedding());
        assert_eq!(observed(&json!(v.text()), &v.metadata(), &emb), v.text());
        assert_eq!(
            observed(&json!(v.text()), &v.metadata(), &Json::Null),
            v.text()
        );
        let other = Value { seq: 18, ..v };
        assert!(observed(&json!(v.text()), &other.metadata(), &emb).starts_with("torn("));
        assert!(
            observed(&json!(v.text()), &v.metadata(), &json!(other.embedding()))
                .starts_with("torn(")
        );
    }
}
