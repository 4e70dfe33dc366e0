//! Delta tables: the S3 store for delta-rs, opening and creating tables, and Connect rows as
//! batches of a table's schema.
//!
//! delta-rs' own S3 support (deltalake-aws) brings the AWS SDK and a DynamoDB lock client; sluice
//! registers object_store's S3 client for `s3://` and `s3a://` instead, with delta-rs' default log
//! store. That store commits a version with `PUT If-None-Match: *` (object_store's
//! `PutMode::Create`), which AWS S3, MinIO and SeaweedFS honour, so concurrent writers need no lock
//! table.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Once};

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields, Schema as ArrowSchema, SchemaRef, TimeUnit};
use deltalake_core::arrow::compute::cast;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::StructType;
use deltalake_core::logstore::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use deltalake_core::logstore::object_store::path::Path;
use deltalake_core::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory, ObjectStoreFactory,
    ObjectStoreRef, StorageConfig,
};
use deltalake_core::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

/// object_store's S3 client for delta-rs (see the module docs).
struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(&self, url: &Url, config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, Path)> {
        let mut b =
            AmazonS3Builder::from_env().with_url(url.as_str()).with_conditional_put(S3ConditionalPut::ETagMatch);
        for (k, v) in &config.raw {
            if let Ok(key) = AmazonS3ConfigKey::from_str(&k.to_ascii_lowercase()) {
                b = b.with_config(key, v);
            }
        }
        let store = b.build().map_err(|e| DeltaTableError::ObjectStore { source: e })?;
        let path = Path::from_url_path(url.path()).map_err(|e| DeltaTableError::InvalidTableLocation(e.to_string()))?;
        Ok((Arc::new(store), path))
    }
}

/// delta-rs' default log store (conditional-create commits) for the S3 schemes.
struct DefaultLogStores;

impl LogStoreFactory for DefaultLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// Makes `s3://` and `s3a://` table URLs known to delta-rs (once per process).
pub fn register_s3() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            if let Ok(u) = Url::parse(scheme) {
                object_store_factories().insert(u.clone(), Arc::new(S3Stores));
                logstore_factories().insert(u, Arc::new(DefaultLogStores));
            }
        }
    });
}

/// The table at `location`, loaded when it exists (`None` state otherwise).
pub async fn open(location: &str, storage: &HashMap<String, String>) -> DeltaResult<DeltaTable> {
    register_s3();
    let url = deltalake_core::ensure_table_uri(location)?;
    let mut table = DeltaTableBuilder::from_url(url)?.with_storage_options(storage.clone()).build()?;
    match table.load().await {
        Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(table),
        Err(e) => Err(e),
    }
}

/// A Connect-derived Arrow type as the Delta protocol stores it: timestamps in microseconds
/// (UTC), times of day as their int32 milliseconds (Delta has no time type), every field nullable.
pub fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Time32(_) => DataType::Int32,
        DataType::Time64(_) => DataType::Int64,
        DataType::List(f) => DataType::List(Arc::new(delta_field(f))),
        DataType::Map(f, sorted) => DataType::Map(Arc::new(delta_field(f)), *sorted),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| delta_field(f)).collect::<Fields>()),
        other => other.clone(),
    }
}

fn delta_field(f: &Field) -> Field {
    // Map entries stay non-null (Arrow requires it); everything else may be null.
    let nullable = f.is_nullable() || !matches!(f.name().as_str(), "entries" | "key_value" | "key");
    Field::new(f.name(), delta_type(f.data_type()), nullable)
}

/// The schema of a table created for rows of `schema`.
pub fn delta_schema(schema: &ArrowSchema) -> ArrowSchema {
    ArrowSchema::new(schema.fields().iter().map(|f| delta_field(f)).collect::<Vec<_>>())
}

/// The kernel schema of an Arrow schema (for creating tables and adding columns).
pub fn kernel_schema(schema: &ArrowSchema) -> Result<StructType, String> {
    schema.try_into_kernel().map_err(|e| e.to_string())
}

/// Whether a row's Arrow type (already [`delta_type`]d) can be written to a column of `table`
/// type without changing values: the same type up to nullability, child field names and the
/// string/binary encodings.
pub fn compatible(row: &DataType, table: &DataType) -> bool {
    use DataType::*;
    match (row, table) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (Timestamp(_, _), Timestamp(_, _)) => true,
        (List(a) | LargeList(a), List(b) | LargeList(b)) => compatible(a.data_type(), b.data_type()),
        (Map(a, _), Map(b, _)) => compatible(a.data_type(), b.data_type()),
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(x, y)| x.name() == y.name() && compatible(x.data_type(), y.data_type()))
        }
        // A narrower integer fits a wider column (INT32 field into a BIGINT column).
        (Int8, Int16 | Int32 | Int64) | (Int16, Int32 | Int64) | (Int32, Int64) | (Float32, Float64) => true,
        (a, b) => a == b,
    }
}

/// How the rows of a batch relate to a table's columns.
#[derive(Debug, Default, PartialEq)]
pub struct Fit {
    /// Row fields the table lacks (to be added as nullable columns).
    pub new_fields: Vec<Field>,
    /// `column: reason` for row fields whose type does not fit their column.
    pub incompatible: Vec<String>,
}

/// Compares a row schema (already [`delta_schema`]d) with a table schema.
pub fn fit(row: &ArrowSchema, table: &ArrowSchema) -> Fit {
    let mut out = Fit::default();
    for f in row.fields() {
        match table.field_with_name(f.name()) {
            Ok(col) if compatible(f.data_type(), col.data_type()) => {}
            Ok(col) => out.incompatible.push(format!(
                "column {}: the table has {}, the record has {}",
                f.name(),
                col.data_type(),
                f.data_type()
            )),
            Err(_) => out.new_fields.push(f.as_ref().clone().with_nullable(true)),
        }
    }
    out
}

/// `batch` as a batch of exactly `table`'s schema: columns by name, cast to the column type,
/// absent columns null. Call after [`fit`] found no incompatible column.
pub fn conform(batch: &RecordBatch, table: &SchemaRef) -> Result<RecordBatch, String> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.fields().len());
    for f in table.fields() {
        let col = match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) => cast(c, f.data_type()).map_err(|e| format!("column {}: {e}", f.name()))?,
            None if f.is_nullable() => new_null_array(f.data_type(), rows),
            None => {
                return Err(format!("column {} is NOT NULL in the table and the record has no such field", f.name()))
            }
        };
        if !f.is_nullable() && col.null_count() > 0 {
            return Err(format!("column {} is NOT NULL in the table and a record has it null", f.name()));
        }
        columns.push(col);
    }
    RecordBatch::try_new(table.clone(), columns).map_err(|e| e.to_string())
}

/// `batch` with string columns appended (derived partition values).
pub fn with_columns(batch: &RecordBatch, extra: Vec<(String, Vec<String>)>) -> Result<RecordBatch, String> {
    if extra.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, values) in extra {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(values)));
    }
    RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, TimestampMillisecondArray};

    #[test]
    fn fit_finds_new_and_incompatible_columns() {
        let table =
            ArrowSchema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]);
        let row = delta_schema(&ArrowSchema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        ]));
        let f = fit(&row, &table);
        assert_eq!(f.new_fields.len(), 1);
        assert_eq!(f.new_fields[0].name(), "ts");
        assert!(f.new_fields[0].is_nullable());
        assert_eq!(f.new_fields[0].data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(f.incompatible.len(), 1, "{f:?}");
        assert!(f.incompatible[0].starts_with("column name:"), "{f:?}");
    }

    #[test]
    fn conform_casts_reorders_and_fills_nulls() {
        let table: SchemaRef = Arc::new(ArrowSchema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("id", DataType::Int64, true),
            Field::new("extra", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![
                Field::new("id", DataType::Int32, false),
                Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
            ])),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000]).with_timezone("UTC")),
            ],
        )
        .expect("batch");
        let out = conform(&batch, &table).expect("conform");
        assert_eq!(out.schema(), table);
        assert_eq!(out.column(2).null_count(), 2);
        let ts = out.column(0).as_any().downcast_ref::<arrow_array::TimestampMicrosecondArray>().expect("µs");
        assert_eq!(ts.value(1), 2_000_000);
    }
}
