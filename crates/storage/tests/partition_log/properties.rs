//! Property tests: random appends against a simple model, reads at every offset, and
//! recovery after a random tear of the active segment.

use proptest::prelude::*;
use sluice_storage::{LogConfig, PartitionLog, StorageEnv};

use crate::common::*;

fn arb_config() -> impl Strategy<Value = LogConfig> {
    (150u64..2_000, 0u32..400).prop_map(|(segment_bytes, index_interval_bytes)| LogConfig {
        segment_bytes,
        index_interval_bytes,
        ..small_config()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn appends_read_back_and_survive_a_torn_tail(
        config in arb_config(),
        batches in proptest::collection::vec((1usize..5, 0usize..120), 1..40),
        max_bytes in 1usize..3_000,
        cut in any::<proptest::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config.clone(), false, 0, &StorageEnv::unbounded()).unwrap();
        // Model: (base offset, last offset, bytes) per batch.
        let mut model = Vec::new();
        for (i, (count, value_len)) in batches.iter().enumerate() {
            let b = batch(*count, i as i64 * 10, *value_len);
            let info = log.append(&b, 1, None, 0).unwrap();
            let expected_base = model.last().map_or(0, |m: &(i64, i64, Vec<u8>)| m.1 + 1);
            prop_assert_eq!(info.base_offset, expected_base);
            prop_assert_eq!(info.last_offset, expected_base + *count as i64 - 1);
            model.push((info.base_offset, info.last_offset, stamped(&b, info.base_offset, 1)));
        }
        let end = model.last().unwrap().1 + 1;
        prop_assert_eq!(log.log_end_offset(), end);
        prop_assert_eq!(log.size_bytes(), model.iter().map(|m| m.2.len() as u64).sum::<u64>());

        // Every offset reads back the batch holding it, followed by whole batches.
        for offset in 0..end {
            let data = log.read(offset, max_bytes, i64::MAX).unwrap();
            let got = batch_offsets(&data);
            let first = model.iter().position(|m| m.1 >= offset).unwrap();
            prop_assert_eq!(got[0], (model[first].0, model[first].1));
            prop_assert!(data.len() <= max_bytes.max(model[first].2.len()));
            let mut pos = 0;
            for (k, (base, last)) in got.iter().enumerate() {
                let m = &model[first + k];
                prop_assert_eq!((m.0, m.1), (*base, *last));
                prop_assert_eq!(&data[pos..pos + m.2.len()], &m.2[..]);
                pos += m.2.len();
            }
        }

        // Crash (no close), tear the active segment at a random length, recover.
        drop(log);
        let files = log_files(dir.path());
        let last = files.last().unwrap();
        let last_base: i64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let len = std::fs::metadata(last).unwrap().len() as usize;
        let keep = if len == 0 { 0 } else { cut.index(len + 1) };
        std::fs::OpenOptions::new().write(true).open(last).unwrap().set_len(keep as u64).unwrap();
        let mut pos = 0;
        let mut expected_end = last_base;
        for m in model.iter().filter(|m| m.0 >= last_base) {
            pos += m.2.len();
            if pos > keep {
                break;
            }
            expected_end = m.1 + 1;
        }
        let mut log = PartitionLog::open(dir.path(), config, true, 0, &StorageEnv::unbounded()).unwrap();
        prop_assert_eq!(log.log_end_offset(), expected_end);
        let records = all_records(&log, max_bytes);
        prop_assert_eq!(records.len() as i64, expected_end);
        let info = log.append(&batch(1, 0, 1), 1, None, 0).unwrap();
        prop_assert_eq!(info.base_offset, expected_end);
    }
}
