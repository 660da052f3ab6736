//! Length-prefixed frames: every Kafka request and response is an `i32` size
//! followed by that many bytes.
//!
//! The decoder is sans-IO so it can be tested without sockets and reused by the
//! client. The size is bounded *before* any buffer is reserved, so a frame that
//! claims 2 GiB costs nothing but a closed connection.

use bytes::{Buf, Bytes, BytesMut};

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix was negative.
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    /// The size prefix exceeds the configured bound (`socket.request.max.bytes`).
    #[error("frame size {size} exceeds the limit of {limit} bytes (socket.request.max.bytes)")]
    TooLarge {
        /// The size the peer announced.
        size: usize,
        /// The configured bound.
        limit: usize,
    },
}

/// Splits a byte stream into frames, each at most `max_frame_bytes` long.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames up to `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { max_frame_bytes }
    }

    /// Takes one complete frame (without its size prefix) off the front of
    /// `buf`, or returns `Ok(None)` when more bytes are needed. On `Ok(None)`
    /// the buffer is reserved for the rest of the announced frame, so the
    /// caller's next read can fill it.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(&[a, b, c, d]) = buf.get(..4) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([a, b, c, d]);
        let size = usize::try_from(size).map_err(|_| FrameError::NegativeSize(size))?;
        if size > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                size,
                limit: self.max_frame_bytes,
            });
        }
        let total = size + 4;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

/// Prepends the size prefix to an encoded frame body.
pub fn frame_size_prefix(body_len: usize) -> [u8; 4] {
    // Bodies are bounded far below i32::MAX by the request and fetch limits;
    // saturate rather than wrap if that ever stops being true.
    i32::try_from(body_len).unwrap_or(i32::MAX).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&frame_size_prefix(body.len()));
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn splits_complete_frames() {
        let d = FrameDecoder::new(1024);
        let mut buf = framed(b"hello");
        buf.extend_from_slice(&framed(b"world"));
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"world"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn waits_for_partial_frames() {
        let d = FrameDecoder::new(1024);
        let full = framed(b"partial frame");
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(d.decode(&mut buf).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn rejects_negative_and_oversized() {
        let d = FrameDecoder::new(1024);
        let mut neg = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut neg), Err(FrameError::NegativeSize(-1)));
        let mut huge = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            d.decode(&mut huge),
            Err(FrameError::TooLarge { .. })
        ));
        // The oversized claim must not have reserved memory for it.
        assert!(huge.capacity() < 1024 * 1024);
    }
}
