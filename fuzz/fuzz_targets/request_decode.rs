//! Frames and request decoding must never panic, whatever the bytes.
//! Run: `cargo +nightly fuzz run request_decode` from the repository root.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_protocol::codec::{decode_body, decode_header};
use sluice_protocol::frame::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    let decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        if let Ok(header) = decode_header(frame) {
            let _ = decode_body(&header);
        }
    }
    // The frame itself as a request body, without the size prefix.
    if let Ok(header) = decode_header(bytes::Bytes::copy_from_slice(data)) {
        let _ = decode_body(&header);
    }
});
