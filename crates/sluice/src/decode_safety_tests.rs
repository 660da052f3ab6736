//! Request decoding under this binary's allocator: arbitrary bytes, and array
//! counts far beyond the frame, must fail cleanly instead of aborting.
//! (These live here, not in sluice-protocol, because the guard that makes
//! absurd reservations survivable is this binary's global allocator.)

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::codec::{decode_body, decode_header};

fn request(api_key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(7); // correlation id
    b.put_i16(4);
    b.put_slice(b"test");
    b.put_slice(body);
    b.freeze()
}

#[test]
fn metadata_with_two_billion_topics_is_rejected() {
    let frame = request(3, 1, &0x7fff_ffffi32.to_be_bytes());
    let header = decode_header(frame).unwrap();
    assert!(decode_body(&header).is_err());
}

#[test]
fn compact_array_with_four_billion_entries_is_rejected() {
    // Metadata v12 (flexible): header tagged fields (0), then a compact array
    // whose unsigned varint length is 2^32-1.
    let frame = request(3, 12, &[0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let header = decode_header(frame).unwrap();
    assert!(decode_body(&header).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn arbitrary_bodies_never_panic(api_key in 0i16..80, version in 0i16..20, body in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(header) = decode_header(request(api_key, version, &body)) {
            let _ = decode_body(&header);
        }
    }

    #[test]
    fn arbitrary_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..96)) {
        if let Ok(header) = decode_header(Bytes::from(frame)) {
            let _ = decode_body(&header);
        }
    }
}
