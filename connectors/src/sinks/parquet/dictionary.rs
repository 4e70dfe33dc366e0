//! Which columns of a topic's next file get a dictionary.
//!
//! A Parquet writer dictionary-encodes every column until a column chunk's dictionary passes its
//! size limit (1 MiB), then falls back to plain for the rest of the chunk. For columns whose values
//! are (nearly) all distinct (ids, timestamps, sequence numbers: much of a tracking event) that
//! work is wasted: hashing and interning their values was 15 % of the Parquet sink's CPU. So the
//! sink learns from each file it completes: a column whose chunk fell back to plain, or whose
//! dictionary-encoded bytes (dictionary plus indices, before compression) are more than
//! [`MAX_ENCODED_SHARE`] of what the same values take plain, is written plain in the topic's next
//! files. Every [`PROBE_EVERY`]th file tries a dictionary on every column again, so a column
//! whose values become repetitive gets its dictionary back. Readers see ordinary Parquet either way.

use std::collections::HashSet;

use parquet::basic::{Encoding, PageType, Type};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::schema::types::ColumnPath;

/// Files between two that try a dictionary on every column.
pub const PROBE_EVERY: u64 = 16;

/// A dictionary does not pay when the chunk it encodes is more than this share of the plain size.
pub const MAX_ENCODED_SHARE: f64 = 0.8;

/// Row groups smaller than this teach nothing (a file of a few rows looks all distinct).
const MIN_ROWS: i64 = 1000;

/// What the files of one topic taught about its columns.
#[derive(Debug, Default)]
pub struct Advice {
    plain: HashSet<ColumnPath>,
    /// Files learned from (or passed over) so far.
    files: u64,
}

impl Advice {
    /// Whether the next file tries a dictionary on every column.
    pub fn next_is_probe(&self) -> bool {
        self.files.is_multiple_of(PROBE_EVERY)
    }

    /// Writer properties for the next file: plain for the columns whose dictionary did not pay,
    /// except in a probe file.
    pub fn apply(&self, mut props: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
        if !self.next_is_probe() {
            for col in &self.plain {
                props = props.set_column_dictionary_enabled(col.clone(), false);
            }
        }
        props
    }

    /// Learns from a completed file written with [`Advice::apply`]: columns written with a
    /// dictionary are judged again; columns written plain keep their advice until the next probe.
    pub fn learn(&mut self, meta: &ParquetMetaData) {
        self.files += 1;
        // Per column: (dictionary-encoded bytes, plain estimate, fell back, plain size unknown).
        let mut judged: Vec<(ColumnPath, i64, i64, bool, bool)> = Vec::new();
        for rg in meta.row_groups().iter().filter(|rg| rg.num_rows() >= MIN_ROWS) {
            for col in rg.columns() {
                if col.dictionary_page_offset().is_none() {
                    continue;
                }
                let plain = plain_size(col);
                let (encoded, fell_back) = (col.uncompressed_size(), fell_back(col));
                match judged.iter_mut().find(|(p, ..)| p == col.column_path()) {
                    Some(j) => {
                        j.1 += encoded;
                        j.2 += plain.unwrap_or(0);
                        j.3 |= fell_back;
                        j.4 |= plain.is_none();
                    }
                    None => judged.push((
                        col.column_path().clone(),
                        encoded,
                        plain.unwrap_or(0),
                        fell_back,
                        plain.is_none(),
                    )),
                }
            }
        }
        for (path, encoded, plain, fell_back, unknown) in judged {
            if fell_back || (!unknown && encoded as f64 > MAX_ENCODED_SHARE * plain as f64) {
                self.plain.insert(path);
            } else {
                self.plain.remove(&path);
            }
        }
    }

    /// Counts a file the advice was applied to but that teaches nothing (not a probe, or its
    /// footer could not be read), so that probes stay every [`PROBE_EVERY`]th file.
    pub fn pass(&mut self) {
        self.files += 1;
    }

    /// Whether the next file writes `col` plain (for tests and logs).
    pub fn is_plain(&self, col: &ColumnPath) -> bool {
        self.plain.contains(col)
    }
}

/// What a column chunk's values take plain-encoded, before compression (`None`: unknown).
fn plain_size(col: &ColumnChunkMetaData) -> Option<i64> {
    let n = col.num_values();
    match col.column_type() {
        // Each value: a 4-byte length and its bytes.
        Type::BYTE_ARRAY => col.unencoded_byte_array_data_bytes().map(|b| b + 4 * n),
        Type::FIXED_LEN_BYTE_ARRAY => Some(n * i64::from(col.column_descr().type_length())),
        Type::INT32 | Type::FLOAT => Some(4 * n),
        Type::INT64 | Type::DOUBLE => Some(8 * n),
        Type::INT96 => Some(12 * n),
        Type::BOOLEAN => None,
    }
}

/// Whether a dictionary-encoded chunk has data pages that are not (the writer's fallback).
fn fell_back(col: &ColumnChunkMetaData) -> bool {
    let dictionary = |e: Encoding| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY);
    if let Some(stats) = col.page_encoding_stats() {
        return stats
            .iter()
            .any(|s| matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2) && !dictionary(s.encoding));
    }
    if let Some(mask) = col.page_encoding_stats_mask() {
        return !(mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY));
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// Writes `n` rows: `id` all distinct strings, `seq` distinct integers, `kind` 4 values.
    fn file(advice: &mut Advice, n: usize) -> ParquetMetaData {
        file_of(advice, n, n).0
    }

    /// As [`file`], with `distinct` ids repeating in turn; also the file's bytes.
    fn file_of(advice: &mut Advice, n: usize, distinct: usize) -> (ParquetMetaData, Vec<u8>) {
        let ids: Vec<String> = (0..n).map(|i| format!("message-{:032x}", i % distinct)).collect();
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("seq", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 7919)))),
            ("kind", Arc::new(StringArray::from_iter_values((0..n).map(|i| ["a", "b", "c", "d"][i % 4])))),
        ])
        .expect("batch");
        let props = advice.apply(WriterProperties::builder()).build();
        let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).expect("writer");
        w.write(&batch).expect("write");
        let meta = w.finish().expect("finish");
        (meta, std::mem::take(w.inner_mut()))
    }

    /// The metadata as a reader decodes it from the footer (encoding stats as a mask).
    fn footer(bytes: &[u8]) -> ParquetMetaData {
        let len = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().expect("4 bytes")) as usize;
        let at = bytes.len() - 8 - len;
        parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&bytes[at..bytes.len() - 8]).expect("footer")
    }

    fn has_dictionary(meta: &ParquetMetaData, name: &str) -> bool {
        meta.row_group(0)
            .columns()
            .iter()
            .any(|c| c.column_path().string() == name && c.dictionary_page_offset().is_some())
    }

    #[test]
    fn distinct_columns_go_plain_repetitive_ones_keep_their_dictionary_and_probes_recheck() {
        let mut advice = Advice::default();
        // 50,000 ids of 40 bytes pass the 1 MiB dictionary limit: the writer falls back.
        let (first, bytes) = file_of(&mut advice, 50_000, 50_000);
        assert!(has_dictionary(&first, "id") && has_dictionary(&first, "seq") && has_dictionary(&first, "kind"));
        // Read back from the footer (as the Delta sink does), the same judgement.
        let mut from_footer = Advice::default();
        from_footer.learn(&footer(&bytes));
        assert!(from_footer.is_plain(&ColumnPath::from("id")) && from_footer.is_plain(&ColumnPath::from("seq")));
        assert!(!from_footer.is_plain(&ColumnPath::from("kind")));
        advice.learn(&first);
        let (id, seq, kind) = (ColumnPath::from("id"), ColumnPath::from("seq"), ColumnPath::from("kind"));
        assert!(advice.is_plain(&id), "a chunk that fell back");
        assert!(advice.is_plain(&seq), "distinct integers: the dictionary is most of the chunk");
        assert!(!advice.is_plain(&kind));

        for _ in 1..PROBE_EVERY {
            let next = file(&mut advice, 2_000);
            assert!(!has_dictionary(&next, "id") && !has_dictionary(&next, "seq"));
            assert!(has_dictionary(&next, "kind"));
            advice.learn(&next);
            assert!(advice.is_plain(&id) && advice.is_plain(&seq), "plain columns keep their advice");
        }
        // The probe tries every dictionary again and judges again.
        let probe = file(&mut advice, 2_000);
        assert!(has_dictionary(&probe, "id") && has_dictionary(&probe, "seq"));
        advice.learn(&probe);
        assert!(advice.is_plain(&id) && advice.is_plain(&seq) && !advice.is_plain(&kind));
    }

    #[test]
    fn a_column_that_turns_repetitive_gets_its_dictionary_back_at_the_probe() {
        let mut advice = Advice::default();
        advice.plain.insert(ColumnPath::from("kind"));
        advice.files = PROBE_EVERY;
        let probe = file(&mut advice, 2_000);
        advice.learn(&probe);
        assert!(!advice.is_plain(&ColumnPath::from("kind")));
    }

    #[test]
    fn long_values_that_repeat_keep_their_dictionary() {
        // 2,000 distinct 40-byte ids, each 10 times: the dictionary is 88 KB and the indices
        // 27 KB, against 880 KB plain.
        let mut advice = Advice::default();
        let (meta, _) = file_of(&mut advice, 20_000, 2_000);
        advice.learn(&meta);
        assert!(!advice.is_plain(&ColumnPath::from("id")));
        assert!(advice.is_plain(&ColumnPath::from("seq")));
    }

    #[test]
    fn small_files_teach_nothing() {
        let mut advice = Advice::default();
        let small = file(&mut advice, 10);
        advice.learn(&small);
        assert!(!advice.is_plain(&ColumnPath::from("id")) && !advice.is_plain(&ColumnPath::from("seq")));
    }
}
