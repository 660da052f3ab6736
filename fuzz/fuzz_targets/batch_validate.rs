//! Record batch validation and record decoding must never panic.
//! Run: `cargo +nightly fuzz run batch_validate` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_protocol::batch;
use sluice_protocol::records::decode_records;

fuzz_target!(|data: &[u8]| {
    for item in batch::split_batches(data) {
        let Ok((_, range)) = item else { break };
        let Some(bytes) = data.get(range) else { break };
        if batch::validate(bytes).is_ok() {
            let owned = bytes::Bytes::copy_from_slice(bytes);
            if let Ok(records) = decode_records(&owned, 1 << 20) {
                for record in records {
                    if record.is_err() {
                        break;
                    }
                }
            }
        }
    }
});
