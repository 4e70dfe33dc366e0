//! Single message transforms, as Kafka Connect's: `transforms=a,b` with `transforms.a.type=...`
//! and the transform's own keys under `transforms.a.`, each optionally guarded by a predicate
//! (`transforms.a.predicate=p`, `transforms.a.negate`, `predicates=p`, `predicates.p.type=...`).
//! Kafka's and Debezium's class names are accepted, as are the short names (`InsertField$Value`).
//!
//! Transforms see a [`Parts`] (what Kafka Connect's `ConnectRecord` has) and return it changed,
//! or `None` to drop the record. Source records are transformed before conversion, sink records
//! after; a dropped record still counts as handled for offsets.

mod debezium;
mod kafka;
mod reshape;

use std::sync::Arc;

use sluice_api::{
    ConfigErrors, ConfigMap, Field, Header, Schema, SchemaRef, SchemaType, SinkRecord, SourceRecord, Value,
};

/// The parts of a record a transform may read or change.
#[derive(Debug, Clone, PartialEq)]
pub struct Parts {
    /// Topic.
    pub topic: String,
    /// Kafka partition, when known (sink records; sources that set one).
    pub kafka_partition: Option<i32>,
    /// Kafka offset (sink records).
    pub kafka_offset: Option<i64>,
    /// Key schema.
    pub key_schema: Option<SchemaRef>,
    /// Key.
    pub key: Value,
    /// Value schema.
    pub value_schema: Option<SchemaRef>,
    /// Value.
    pub value: Value,
    /// Timestamp, epoch milliseconds.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl Parts {
    /// The parts of a source record.
    pub fn of_source(r: &SourceRecord) -> Parts {
        Parts {
            topic: r.topic.clone(),
            kafka_partition: r.kafka_partition,
            kafka_offset: None,
            key_schema: r.key_schema.clone(),
            key: r.key.clone(),
            value_schema: r.value_schema.clone(),
            value: r.value.clone(),
            timestamp: r.timestamp,
            headers: r.headers.clone(),
        }
    }

    /// A source record with these parts (partition and offset maps from `original`).
    pub fn into_source(self, original: &SourceRecord) -> SourceRecord {
        SourceRecord {
            source_partition: original.source_partition.clone(),
            source_offset: original.source_offset.clone(),
            topic: self.topic,
            kafka_partition: self.kafka_partition,
            key_schema: self.key_schema,
            key: self.key,
            value_schema: self.value_schema,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The parts of a sink record.
    pub fn of_sink(r: SinkRecord) -> (Parts, SinkRecord) {
        let parts = Parts {
            topic: r.topic.clone(),
            kafka_partition: Some(r.kafka_partition),
            kafka_offset: Some(r.kafka_offset),
            key_schema: r.key_schema.clone(),
            key: r.key.clone(),
            value_schema: r.value_schema.clone(),
            value: r.value.clone(),
            timestamp: r.timestamp,
            headers: r.headers.clone(),
        };
        (parts, r)
    }

    /// The sink record with these parts (its Kafka coordinates stay those it was read at).
    pub fn into_sink(self, mut original: SinkRecord) -> SinkRecord {
        if self.topic != original.topic && original.original_topic.is_none() {
            original.original_topic = Some(std::mem::replace(&mut original.topic, self.topic));
        } else {
            original.topic = self.topic;
        }
        original.key_schema = self.key_schema;
        original.key = self.key;
        original.value_schema = self.value_schema;
        original.value = self.value;
        original.timestamp = self.timestamp;
        original.headers = self.headers;
        original
    }
}

/// A transformation.
pub trait Transform: Send + Sync {
    /// The record changed, or `None` to drop it; `Err` says why it cannot be transformed.
    fn apply(&self, record: Parts) -> Result<Option<Parts>, String>;
}

/// A condition for applying a transformation.
pub trait Predicate: Send + Sync {
    /// Whether the record matches.
    fn test(&self, record: &Parts) -> bool;
}

struct Step {
    alias: String,
    transform: Box<dyn Transform>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// The configured chain, applied in order.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

/// The keys of one transform or predicate (prefix removed), with its alias for errors.
pub(crate) struct Props<'a> {
    prefix: String,
    map: &'a ConfigMap,
}

impl Props<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    /// A string key.
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.map.get(&self.key(k)).map(String::as_str).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A required string key.
    pub(crate) fn required(&self, k: &str) -> Result<&str, ConfigErrors> {
        self.get(k).ok_or_else(|| {
            ConfigErrors::one(
                self.key(k),
                format!("Missing required configuration \"{}\" which has no default value.", self.key(k)),
            )
        })
    }

    /// A comma-separated list.
    pub(crate) fn list(&self, k: &str) -> Vec<String> {
        self.get(k)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default()
    }

    /// A boolean with a default.
    pub(crate) fn boolean(&self, k: &str, default: bool) -> Result<bool, ConfigErrors> {
        match self.get(k) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(self.invalid(k, v, "Expected value to be either true or false")),
        }
    }

    /// A "bad value" error in Kafka's words.
    pub(crate) fn invalid(&self, k: &str, v: &str, why: &str) -> ConfigErrors {
        ConfigErrors::one(self.key(k), format!("Invalid value {v} for configuration {}: {why}", self.key(k)))
    }

    /// A regex that must match the whole string (Java's `matches`).
    pub(crate) fn regex(&self, k: &str) -> Result<regex::Regex, ConfigErrors> {
        let raw = self.required(k)?;
        regex::Regex::new(&format!("^(?:{raw})$")).map_err(|e| self.invalid(k, raw, &e.to_string()))
    }
}

/// Every transform class this runtime provides, by Kafka Connect's (and Debezium's) class name:
/// what `GET /connector-plugins?connectorsOnly=false` lists as `transformation`.
pub const TRANSFORM_CLASSES: &[&str] = &[
    "io.debezium.transforms.ExtractNewRecordState",
    "org.apache.kafka.connect.transforms.Cast$Key",
    "org.apache.kafka.connect.transforms.Cast$Value",
    "org.apache.kafka.connect.transforms.DropHeaders",
    "org.apache.kafka.connect.transforms.ExtractField$Key",
    "org.apache.kafka.connect.transforms.ExtractField$Value",
    "org.apache.kafka.connect.transforms.Filter",
    "org.apache.kafka.connect.transforms.Flatten$Key",
    "org.apache.kafka.connect.transforms.Flatten$Value",
    "org.apache.kafka.connect.transforms.HeaderFrom$Key",
    "org.apache.kafka.connect.transforms.HeaderFrom$Value",
    "org.apache.kafka.connect.transforms.HoistField$Key",
    "org.apache.kafka.connect.transforms.HoistField$Value",
    "org.apache.kafka.connect.transforms.InsertField$Key",
    "org.apache.kafka.connect.transforms.InsertField$Value",
    "org.apache.kafka.connect.transforms.InsertHeader",
    "org.apache.kafka.connect.transforms.MaskField$Key",
    "org.apache.kafka.connect.transforms.MaskField$Value",
    "org.apache.kafka.connect.transforms.RegexRouter",
    "org.apache.kafka.connect.transforms.ReplaceField$Key",
    "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "org.apache.kafka.connect.transforms.TimestampConverter$Key",
    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
    "org.apache.kafka.connect.transforms.TimestampRouter",
    "org.apache.kafka.connect.transforms.ValueToKey",
];

/// Every predicate class, listed as `predicate`.
pub const PREDICATE_CLASSES: &[&str] = &[
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
];

/// The class's simple name: `org.apache.kafka.connect.transforms.InsertField$Value` → `InsertField$Value`.
fn simple(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

fn predicate(class: &str, p: &Props<'_>) -> Result<Arc<dyn Predicate>, ConfigErrors> {
    Ok(match simple(class) {
        "TopicNameMatches" => Arc::new(kafka::TopicNameMatches(p.regex("pattern")?)),
        "HasHeaderKey" => Arc::new(kafka::HasHeaderKey(p.required("name")?.to_string())),
        "RecordIsTombstone" => Arc::new(kafka::RecordIsTombstone),
        _ => {
            return Err(p.invalid(
                "type",
                class,
                "Class could not be found (known predicates: TopicNameMatches, HasHeaderKey, RecordIsTombstone)",
            ))
        }
    })
}

fn transform(class: &str, p: &Props<'_>) -> Result<Box<dyn Transform>, ConfigErrors> {
    if let Some(t) = kafka::create(simple(class), p)? {
        return Ok(t);
    }
    if simple(class) == "ExtractNewRecordState" {
        return Ok(Box::new(debezium::ExtractNewRecordState::configure(p)?));
    }
    Err(p.invalid(
        "type",
        class,
        "Class could not be found (known: InsertField, ReplaceField, MaskField, Cast, Flatten, TimestampConverter, HeaderFrom, ExtractField, HoistField (each $Key/$Value), ValueToKey, RegexRouter, TimestampRouter, Filter, InsertHeader, DropHeaders, io.debezium.transforms.ExtractNewRecordState)",
    ))
}

impl TransformChain {
    /// Builds the chain of a connector config; every problem is reported with its key.
    pub fn from_config(config: &ConfigMap) -> Result<TransformChain, ConfigErrors> {
        let list = |k: &str| -> Vec<String> {
            config
                .get(k)
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default()
        };
        let mut errors = ConfigErrors::default();
        let mut predicates: Vec<(String, Arc<dyn Predicate>)> = Vec::new();
        for alias in list("predicates") {
            let p = Props { prefix: format!("predicates.{alias}."), map: config };
            match p.required("type").and_then(|class| predicate(class, &p)) {
                Ok(pred) => predicates.push((alias, pred)),
                Err(e) => errors.extend(e),
            }
        }
        let mut steps = Vec::new();
        for alias in list("transforms") {
            let p = Props { prefix: format!("transforms.{alias}."), map: config };
            let built = p.required("type").and_then(|class| transform(class, &p));
            let pred = match p.get("predicate") {
                None => Ok(None),
                Some(name) => match predicates.iter().find(|(a, _)| a == name) {
                    Some((_, pred)) => p.boolean("negate", false).map(|negate| Some((pred.clone(), negate))),
                    None => Err(p.invalid("predicate", name, "the predicate is not listed in 'predicates'")),
                },
            };
            match (built, pred) {
                (Ok(transform), Ok(predicate)) => steps.push(Step { alias, transform, predicate }),
                (Err(a), Err(b)) => {
                    errors.extend(a);
                    errors.extend(b);
                }
                (Err(e), _) | (_, Err(e)) => errors.extend(e),
            }
        }
        errors.into_result()?;
        Ok(TransformChain { steps })
    }

    /// No transforms configured.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every step in order; `None` when a step dropped the record.
    pub fn apply(&self, mut record: Parts) -> Result<Option<Parts>, String> {
        for step in &self.steps {
            if let Some((pred, negate)) = &step.predicate {
                if pred.test(&record) == *negate {
                    continue;
                }
            }
            match step.transform.apply(record).map_err(|e| format!("transform {}: {e}", step.alias))? {
                Some(r) => record = r,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }
}

/// A STRUCT schema like `base` (name, version, optionality) with these fields.
pub(crate) fn struct_schema(base: Option<&Schema>, fields: Vec<(String, SchemaRef)>) -> Schema {
    let fields = fields.into_iter().enumerate().map(|(index, (name, schema))| Field { name, index, schema }).collect();
    let mut s = Schema { fields, ..Schema::new(SchemaType::Struct) };
    if let Some(b) = base {
        s.name = b.name.clone();
        s.version = b.version;
        s.optional = b.optional;
        s.doc = b.doc.clone();
    }
    s
}

#[cfg(test)]
mod tests;
