//! `_bulk` bodies and the reading of their per-item results.

use serde::Deserialize;
use sluice_api::json::write_str;

/// What one action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `index`: replace the document.
    Index,
    /// `update` with `doc_as_upsert`: merge into the document.
    Update,
    /// `delete`.
    Delete,
}

/// One bulk action, ready to write.
#[derive(Debug, Clone)]
pub struct Op {
    /// The action.
    pub action: Action,
    /// Target index.
    pub index: std::sync::Arc<str>,
    /// Document id.
    pub id: String,
    /// External version (the Kafka offset), when versioned.
    pub version: Option<i64>,
    /// The document (empty for deletes).
    pub doc: String,
    /// Where the record came from, for messages: `topic-partition@offset`.
    pub origin: String,
}

impl Op {
    /// Appends the action line and (except for deletes) the source line.
    pub fn write(&self, out: &mut String, retry_on_conflict: usize) {
        out.push_str(match self.action {
            Action::Index => "{\"index\":{\"_index\":",
            Action::Update => "{\"update\":{\"_index\":",
            Action::Delete => "{\"delete\":{\"_index\":",
        });
        write_str(out, &self.index);
        out.push_str(",\"_id\":");
        write_str(out, &self.id);
        if let Some(v) = self.version {
            out.push_str(",\"version\":");
            out.push_str(&v.to_string());
            out.push_str(",\"version_type\":\"external\"");
        }
        if self.action == Action::Update {
            out.push_str(",\"retry_on_conflict\":");
            out.push_str(&retry_on_conflict.to_string());
        }
        out.push_str("}}\n");
        match self.action {
            Action::Index => {
                out.push_str(&self.doc);
                out.push('\n');
            }
            Action::Update => {
                out.push_str("{\"doc\":");
                out.push_str(&self.doc);
                out.push_str(",\"doc_as_upsert\":true}\n");
            }
            Action::Delete => {}
        }
    }

    /// Bytes [`Op::write`] appends, about.
    pub fn size(&self) -> usize {
        self.doc.len() + self.id.len() + self.index.len() + 96
    }
}

/// How the server answered one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written (or, for a delete, already absent).
    Done,
    /// A version conflict on a versioned action: the stored document is as new or newer (a replay).
    Stale,
    /// Worth retrying: 429, 5xx.
    Retry(String),
    /// The document does not fit the index (mapping errors).
    Malformed(String),
    /// Anything else: a reason to stop.
    Failed(String),
}

#[derive(Deserialize)]
struct Head {
    errors: bool,
}

#[derive(Deserialize)]
struct Full {
    items: Vec<std::collections::HashMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Error types Confluent's sink treats as malformed documents.
const MALFORMED: &[&str] = &[
    "mapper_parsing_exception",
    "strict_dynamic_mapping_exception",
    "illegal_argument_exception",
    "action_request_validation_exception",
    "document_parsing_exception",
];

/// Reads a 200 answer to a bulk request of `ops`: one outcome per op, or why the answer is unusable.
pub fn outcomes(body: &[u8], ops: &[&Op]) -> Result<Vec<Outcome>, String> {
    let head: Head = serde_json::from_slice(body).map_err(|e| format!("unreadable _bulk answer: {e}"))?;
    if !head.errors {
        return Ok(vec![Outcome::Done; ops.len()]);
    }
    let full: Full = serde_json::from_slice(body).map_err(|e| format!("unreadable _bulk answer: {e}"))?;
    if full.items.len() != ops.len() {
        return Err(format!("the _bulk answer has {} items for {} actions", full.items.len(), ops.len()));
    }
    Ok(full
        .items
        .into_iter()
        .zip(ops)
        .map(|(item, op)| match item.into_values().next() {
            Some(item) => classify(&item, op),
            None => Outcome::Failed("an empty item in the _bulk answer".into()),
        })
        .collect())
}

fn classify(item: &Item, op: &Op) -> Outcome {
    let (kind, reason) = match &item.error {
        Some(serde_json::Value::Object(e)) => (
            e.get("type").and_then(|t| t.as_str()).unwrap_or("").to_string(),
            e.get("reason").and_then(|t| t.as_str()).unwrap_or("").to_string(),
        ),
        Some(other) => (String::new(), other.to_string()),
        None => (String::new(), String::new()),
    };
    let describe = || format!("{} {kind}: {reason}", item.status);
    match item.status {
        200..=299 => Outcome::Done,
        404 if op.action == Action::Delete && item.error.is_none() => Outcome::Done,
        409 if op.version.is_some() => Outcome::Stale,
        409 | 429 => Outcome::Retry(describe()),
        s if s >= 500 => Outcome::Retry(describe()),
        400 if MALFORMED.contains(&kind.as_str()) => Outcome::Malformed(describe()),
        _ => Outcome::Failed(describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(action: Action, version: Option<i64>) -> Op {
        Op { action, index: "orders".into(), id: "1".into(), version, doc: r#"{"a":1}"#.into(), origin: "t-0@5".into() }
    }

    #[test]
    fn actions_as_ndjson() {
        let mut out = String::new();
        op(Action::Index, Some(5)).write(&mut out, 0);
        op(Action::Update, None).write(&mut out, 3);
        op(Action::Delete, Some(6)).write(&mut out, 0);
        assert_eq!(
            out,
            concat!(
                "{\"index\":{\"_index\":\"orders\",\"_id\":\"1\",\"version\":5,\"version_type\":\"external\"}}\n{\"a\":1}\n",
                "{\"update\":{\"_index\":\"orders\",\"_id\":\"1\",\"retry_on_conflict\":3}}\n{\"doc\":{\"a\":1},\"doc_as_upsert\":true}\n",
                "{\"delete\":{\"_index\":\"orders\",\"_id\":\"1\",\"version\":6,\"version_type\":\"external\"}}\n"
            )
        );
    }

    #[test]
    fn per_item_results() {
        let ops = [
            op(Action::Index, Some(1)),
            op(Action::Index, Some(2)),
            op(Action::Index, Some(3)),
            op(Action::Index, Some(4)),
            op(Action::Delete, Some(5)),
            op(Action::Index, Some(6)),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let body = br#"{"took":3,"errors":true,"items":[
            {"index":{"_id":"1","status":201}},
            {"index":{"_id":"1","status":409,"error":{"type":"version_conflict_engine_exception","reason":"current version [9] is higher"}}},
            {"index":{"_id":"1","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"index":{"_id":"1","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n]"}}},
            {"delete":{"_id":"1","status":404,"result":"not_found"}},
            {"index":{"_id":"1","status":403,"error":{"type":"cluster_block_exception","reason":"read-only"}}}]}"#;
        let out = outcomes(body, &refs).expect("parsed");
        assert_eq!(out[0], Outcome::Done);
        assert_eq!(out[1], Outcome::Stale);
        assert!(matches!(&out[2], Outcome::Retry(r) if r.contains("429")));
        assert!(matches!(&out[3], Outcome::Malformed(r) if r.contains("mapper_parsing_exception")));
        assert_eq!(out[4], Outcome::Done);
        assert!(matches!(&out[5], Outcome::Failed(r) if r.contains("cluster_block_exception")));
        assert_eq!(outcomes(br#"{"took":1,"errors":false,"items":[]}"#, &refs).expect("ok"), vec![Outcome::Done; 6]);
        assert!(outcomes(br#"{"errors":true,"items":[]}"#, &refs).is_err());
        assert!(outcomes(b"<html>", &refs).is_err());
    }
}
