//! Kafka's compression codecs for the records section of a batch.
//!
//! The broker stores batches compressed as they arrived (docs/ARCHITECTURE.md §1), so decompression is
//! only needed where records must be looked at (timestamp lookup, compaction, key checks).
//! Everything that decompresses takes a size limit: a few kilobytes of zstd or gzip can
//! claim gigabytes, and a producer must not be able to exhaust the broker's memory that way.
//!
//! Snappy comes in two shapes: raw snappy blocks (librdkafka) and the xerial stream framing
//! that the Java client writes (`\x82SNAPPY\0`, two version ints, then length-prefixed raw
//! blocks). Decompression detects the framing by its magic; compression writes xerial, which
//! every client can read.

use std::io::{Read, Write};

use thiserror::Error;

use crate::batch::Compression;

/// Magic that starts a xerial-framed snappy stream.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Xerial header: magic, version i32, compatible version i32.
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed chunk size the Java client uses for xerial blocks.
const XERIAL_BLOCK: usize = 32 * 1024;

/// Why a payload could not be (de)compressed.
#[derive(Debug, Error)]
pub enum CompressionError {
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("corrupt {codec:?} data: {reason}")]
    Corrupt { codec: Compression, reason: String },
    #[error("{codec:?} compression failed: {source}")]
    Compress {
        codec: Compression,
        source: std::io::Error,
    },
}

/// Decompresses `data` written with `codec`, failing with [`CompressionError::TooLarge`]
/// as soon as the output would exceed `max_size` bytes.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    max_size: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if data.len() > max_size {
                return Err(CompressionError::TooLarge { limit: max_size });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), max_size),
        Compression::Snappy => {
            if data.starts_with(&XERIAL_MAGIC) {
                decompress_xerial(data, max_size)
            } else {
                let mut out = Vec::new();
                decompress_snappy_block(data, max_size, &mut out)?;
                Ok(out)
            }
        }
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), max_size),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(|e| {
                CompressionError::Corrupt {
                    codec,
                    reason: e.to_string(),
                }
            })?;
            read_bounded(codec, decoder, max_size)
        }
    }
}

/// Compresses `data` with `codec` the way Kafka clients do (xerial framing for snappy,
/// frame format for lz4 and zstd). Used by tests and the CLI producer.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let io = |source| CompressionError::Compress { codec, source };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(io)?;
            enc.finish().map_err(io)
        }
        Compression::Snappy => compress_xerial(data),
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(data).map_err(io)?;
            enc.finish()
                .map_err(|e| io(std::io::Error::other(e.to_string())))
        }
        Compression::Zstd => zstd::stream::encode_all(data, 3).map_err(io),
    }
}

/// Raw (unframed) snappy, as librdkafka writes it.
pub fn compress_snappy_raw(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .map_err(|e| CompressionError::Compress {
            codec: Compression::Snappy,
            source: std::io::Error::other(e.to_string()),
        })
}

/// Reads a streaming decoder to the end, but never more than `max_size` bytes: one byte more
/// is requested so that reaching the limit exactly is not mistaken for exceeding it.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    max_size: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_size)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| CompressionError::Corrupt {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > max_size {
        return Err(CompressionError::TooLarge { limit: max_size });
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its claimed length against what is
/// left of the budget before allocating.
fn decompress_snappy_block(
    block: &[u8],
    max_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let corrupt = |e: snap::Error| CompressionError::Corrupt {
        codec: Compression::Snappy,
        reason: e.to_string(),
    };
    let claimed = snap::raw::decompress_len(block).map_err(corrupt)?;
    if claimed > max_size.saturating_sub(out.len()) {
        return Err(CompressionError::TooLarge { limit: max_size });
    }
    let start = out.len();
    out.resize(start.saturating_add(claimed), 0);
    let dst = out.get_mut(start..).unwrap_or_default();
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(corrupt)?;
    out.truncate(start.saturating_add(written));
    Ok(())
}

fn decompress_xerial(data: &[u8], max_size: usize) -> Result<Vec<u8>, CompressionError> {
    let corrupt = |reason: &str| CompressionError::Corrupt {
        codec: Compression::Snappy,
        reason: reason.to_owned(),
    };
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt("truncated xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated xerial block length"))?;
        let len = usize::try_from(i32::from_be_bytes(*len_bytes))
            .map_err(|_| corrupt("negative xerial block length"))?;
        if len > tail.len() {
            return Err(corrupt("xerial block longer than the data"));
        }
        let (block, tail) = tail.split_at(len);
        decompress_snappy_block(block, max_size, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

fn compress_xerial(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN.saturating_add(data.len()));
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
    let mut encoder = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| CompressionError::Compress {
                codec: Compression::Snappy,
                source: std::io::Error::other(e.to_string()),
            })?;
        let len = i32::try_from(block.len()).map_err(|_| CompressionError::Compress {
            codec: Compression::Snappy,
            source: std::io::Error::other("block too large"),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn round_trip_every_codec() {
        for codec in ALL {
            for len in [0, 1, 100, 70_000] {
                let data = sample(len);
                let c = compress(codec, &data).unwrap();
                assert_eq!(decompress(codec, &c, len).unwrap(), data, "{codec:?} {len}");
            }
        }
    }

    #[test]
    fn raw_snappy_is_detected() {
        let data = sample(5000);
        let c = compress_snappy_raw(&data).unwrap();
        assert!(!c.starts_with(&XERIAL_MAGIC));
        assert_eq!(decompress(Compression::Snappy, &c, 5000).unwrap(), data);
    }

    #[test]
    fn xerial_has_magic_and_several_blocks() {
        let data = sample(100_000);
        let c = compress(Compression::Snappy, &data).unwrap();
        assert!(c.starts_with(&XERIAL_MAGIC));
        assert_eq!(decompress(Compression::Snappy, &c, 100_000).unwrap(), data);
    }

    #[test]
    fn bomb_is_stopped_at_the_limit() {
        let zeros = vec![0u8; 4 << 20];
        for codec in ALL {
            let c = compress(codec, &zeros).unwrap();
            let err = decompress(codec, &c, 1 << 20).unwrap_err();
            assert!(
                matches!(err, CompressionError::TooLarge { limit } if limit == 1 << 20),
                "{codec:?}: {err}"
            );
            // Exactly at the limit is fine.
            assert_eq!(decompress(codec, &c, 4 << 20).unwrap().len(), 4 << 20);
        }
        let raw = compress_snappy_raw(&zeros).unwrap();
        assert!(matches!(
            decompress(Compression::Snappy, &raw, 1000),
            Err(CompressionError::TooLarge { .. })
        ));
    }

    #[test]
    fn xerial_bad_lengths_rejected() {
        let mut c = XERIAL_MAGIC.to_vec();
        c.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        c.extend_from_slice(&(-5i32).to_be_bytes());
        assert!(decompress(Compression::Snappy, &c, 100).is_err());
        c.truncate(16);
        c.extend_from_slice(&100i32.to_be_bytes());
        c.extend_from_slice(&[1, 2, 3]);
        assert!(decompress(Compression::Snappy, &c, 100).is_err());
        assert!(decompress(Compression::Snappy, &XERIAL_MAGIC, 100).is_err());
    }

    proptest! {
        #[test]
        fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for codec in ALL {
                let _ = decompress(codec, &data, 10_000);
            }
            let mut x = XERIAL_MAGIC.to_vec();
            x.extend_from_slice(&data);
            let _ = decompress(Compression::Snappy, &x, 10_000);
        }

        #[test]
        fn prop_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            for codec in ALL {
                let c = compress(codec, &data).unwrap();
                prop_assert_eq!(&decompress(codec, &c, data.len()).unwrap(), &data);
            }
        }
    }
}
