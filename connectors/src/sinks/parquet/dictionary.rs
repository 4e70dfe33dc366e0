//! Which columns of a topic's next file get a dictionary.
//!
//! A Parquet writer dictionary-encodes every column until a column chunk's dictionary passes its
//! size limit (1 MiB), then falls back to plain for the rest of the chunk. For columns whose values
//! are (nearly) all distinct (ids, timestamps, sequence numbers: much of a tracking event) that
//! work is wasted: hashing and interning their values was 15 % of the Parquet sink's CPU. So the
//! sink learns from each file it completes: a column whose chunk fell back to plain, or whose
//! dictionary page took most of the chunk's bytes, is written plain in the topic's next files.
//! Every [`PROBE_EVERY`]th file tries a dictionary on every column again, so a column whose
//! values become repetitive gets its dictionary back. Readers see ordinary Parquet either way.

use std::collections::HashSet;

use parquet::basic::{Encoding, PageType};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::schema::types::ColumnPath;

/// Files between two that try a dictionary on every column.
pub const PROBE_EVERY: u64 = 16;

/// A dictionary does not pay when its page is more than this share of the chunk's bytes.
const MAX_DICTIONARY_SHARE: f64 = 0.6;

/// Row groups smaller than this teach nothing (a file of a few rows looks all distinct).
const MIN_ROWS: i64 = 1000;

/// What the files of one topic taught about its columns.
#[derive(Debug, Default)]
pub struct Advice {
    plain: HashSet<ColumnPath>,
    files: u64,
}

impl Advice {
    /// Whether the next file tries a dictionary on every column.
    pub fn next_is_probe(&self) -> bool {
        self.files.is_multiple_of(PROBE_EVERY)
    }

    /// Writer properties for the next file: plain for the columns whose dictionary did not pay,
    /// except in a probe file.
    pub fn apply(&mut self, mut props: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
        let probe = self.next_is_probe();
        self.files += 1;
        if !probe {
            for col in &self.plain {
                props = props.set_column_dictionary_enabled(col.clone(), false);
            }
        }
        props
    }

    /// Learns from a completed file: columns written with a dictionary are judged again; columns
    /// written plain keep their advice until the next probe.
    pub fn learn(&mut self, meta: &ParquetMetaData) {
        let mut judged: Vec<(ColumnPath, u64, u64, bool)> = Vec::new();
        for rg in meta.row_groups().iter().filter(|rg| rg.num_rows() >= MIN_ROWS) {
            for col in rg.columns() {
                let Some(dict_start) = col.dictionary_page_offset() else { continue };
                let dict = u64::try_from(col.data_page_offset() - dict_start).unwrap_or(0);
                let total = u64::try_from(col.compressed_size()).unwrap_or(0);
                let fell_back = fell_back(col);
                match judged.iter_mut().find(|(p, ..)| p == col.column_path()) {
                    Some(j) => {
                        j.1 += dict;
                        j.2 += total;
                        j.3 |= fell_back;
                    }
                    None => judged.push((col.column_path().clone(), dict, total, fell_back)),
                }
            }
        }
        for (path, dict, total, fell_back) in judged {
            if fell_back || dict as f64 > MAX_DICTIONARY_SHARE * total as f64 {
                self.plain.insert(path);
            } else {
                self.plain.remove(&path);
            }
        }
    }

    /// Whether the next file writes `col` plain (for tests and logs).
    pub fn is_plain(&self, col: &ColumnPath) -> bool {
        self.plain.contains(col)
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
        let ids: Vec<String> = (0..n).map(|i| format!("message-{i:032x}")).collect();
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("seq", Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 7919)))),
            ("kind", Arc::new(StringArray::from_iter_values((0..n).map(|i| ["a", "b", "c", "d"][i % 4])))),
        ])
        .expect("batch");
        let props = advice.apply(WriterProperties::builder()).build();
        let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish")
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
        let first = file(&mut advice, 50_000);
        assert!(has_dictionary(&first, "id") && has_dictionary(&first, "seq") && has_dictionary(&first, "kind"));
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
    fn small_files_teach_nothing() {
        let mut advice = Advice::default();
        let small = file(&mut advice, 10);
        advice.learn(&small);
        assert!(!advice.is_plain(&ColumnPath::from("id")) && !advice.is_plain(&ColumnPath::from("seq")));
    }
}
