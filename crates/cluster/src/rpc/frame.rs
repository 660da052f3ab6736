//! Frames on a cluster connection: `[u32 length][body]`, the body starting with its kind
//! byte. Lengths are bounded before anything is allocated.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed in the middle of a frame.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The length is over the bound for this connection.
    #[error("a frame of {0} bytes is over the {1}-byte limit")]
    TooLarge(usize, usize),
    /// A frame with no kind byte.
    #[error("an empty frame")]
    Empty,
}

/// Reads one frame of at most `max` bytes; `None` when the peer closed the connection
/// cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut length = [0u8; 4];
    match reader.read(&mut length[..1]).await? {
        0 => return Ok(None),
        _ => reader.read_exact(&mut length[1..]).await?,
    };
    let length = u32::from_be_bytes(length) as usize;
    if length > max {
        return Err(FrameError::TooLarge(length, max));
    }
    if length == 0 {
        return Err(FrameError::Empty);
    }
    let mut body = BytesMut::zeroed(length);
    reader.read_exact(&mut body).await?;
    Ok(Some(body.freeze()))
}

/// Writes one frame whose body is `kind` then `payload` (two writes for a large payload,
/// so it is not copied).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    kind: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    const COPY_BELOW: usize = 64 * 1024;
    let length = u32::try_from(payload.len() + 1)
        .map_err(|_| std::io::Error::other("frame too large to send"))?;
    let mut head = Vec::with_capacity(5 + payload.len().min(COPY_BELOW));
    head.extend_from_slice(&length.to_be_bytes());
    head.push(kind);
    if payload.len() < COPY_BELOW {
        head.extend_from_slice(payload);
        writer.write_all(&head).await?;
    } else {
        writer.write_all(&head).await?;
        writer.write_all(payload).await?;
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_lengths_are_bounded() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        write_frame(&mut a, 3, b"hello").await.unwrap();
        let big = vec![7u8; 100_000];
        write_frame(&mut a, 1, &big).await.unwrap();
        assert_eq!(
            read_frame(&mut b, 1000).await.unwrap().unwrap(),
            &b"\x03hello"[..]
        );
        let err = read_frame(&mut b, 1000).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "a frame of 100001 bytes is over the 1000-byte limit"
        );
        drop(a);
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 0]).await.unwrap();
        assert!(matches!(
            read_frame(&mut b, 10).await,
            Err(FrameError::Empty)
        ));
        drop(a);
        assert!(read_frame(&mut b, 10).await.unwrap().is_none());
    }
}
