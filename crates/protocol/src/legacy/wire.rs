//! Bounds-checked primitives of the classic (non-flexible) Kafka encoding, which is all
//! the legacy versions use: big-endian integers, i16-length strings, i32-length bytes and
//! i32-count arrays.
//!
//! Every read checks the bytes are there first, and every array count is checked against
//! the bytes left (each element needs at least `min_elem` bytes), so a hostile count can
//! neither panic nor make us pre-allocate gigabytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;

use super::LegacyError;

fn need(buf: &Bytes, n: usize, what: &'static str) -> Result<(), LegacyError> {
    if buf.remaining() < n {
        Err(LegacyError::Truncated { what })
    } else {
        Ok(())
    }
}

pub(crate) fn i8(buf: &mut Bytes, what: &'static str) -> Result<i8, LegacyError> {
    need(buf, 1, what)?;
    Ok(buf.get_i8())
}

pub(crate) fn i16(buf: &mut Bytes, what: &'static str) -> Result<i16, LegacyError> {
    need(buf, 2, what)?;
    Ok(buf.get_i16())
}

pub(crate) fn i32(buf: &mut Bytes, what: &'static str) -> Result<i32, LegacyError> {
    need(buf, 4, what)?;
    Ok(buf.get_i32())
}

pub(crate) fn i64(buf: &mut Bytes, what: &'static str) -> Result<i64, LegacyError> {
    need(buf, 8, what)?;
    Ok(buf.get_i64())
}

pub(crate) fn bool(buf: &mut Bytes, what: &'static str) -> Result<bool, LegacyError> {
    Ok(i8(buf, what)? != 0)
}

/// A nullable string (i16 length, -1 = null).
pub(crate) fn nullable_string(
    buf: &mut Bytes,
    what: &'static str,
) -> Result<Option<StrBytes>, LegacyError> {
    let len = i16(buf, what)?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| LegacyError::Malformed { what })?;
    need(buf, len, what)?;
    let raw = buf.split_to(len);
    StrBytes::from_utf8(raw)
        .map(Some)
        .map_err(|_| LegacyError::Malformed { what })
}

/// A non-null string.
pub(crate) fn string(buf: &mut Bytes, what: &'static str) -> Result<StrBytes, LegacyError> {
    nullable_string(buf, what)?.ok_or(LegacyError::Malformed { what })
}

/// Nullable bytes (i32 length, -1 = null), sliced from `buf` without copying.
pub(crate) fn nullable_bytes(
    buf: &mut Bytes,
    what: &'static str,
) -> Result<Option<Bytes>, LegacyError> {
    let len = i32(buf, what)?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| LegacyError::Malformed { what })?;
    need(buf, len, what)?;
    Ok(Some(buf.split_to(len)))
}

/// An array count (-1 = null), bounded by the bytes left: each element needs at least
/// `min_elem` bytes.
pub(crate) fn nullable_array_len(
    buf: &mut Bytes,
    min_elem: usize,
    what: &'static str,
) -> Result<Option<usize>, LegacyError> {
    let count = i32(buf, what)?;
    if count < 0 {
        return Ok(None);
    }
    let count = usize::try_from(count).map_err(|_| LegacyError::Malformed { what })?;
    if count.saturating_mul(min_elem.max(1)) > buf.remaining() {
        return Err(LegacyError::Truncated { what });
    }
    Ok(Some(count))
}

/// A non-null array count; see [`nullable_array_len`].
pub(crate) fn array_len(
    buf: &mut Bytes,
    min_elem: usize,
    what: &'static str,
) -> Result<usize, LegacyError> {
    nullable_array_len(buf, min_elem, what)?.ok_or(LegacyError::Malformed { what })
}

/// A non-null array of i32 (partition indexes, broker ids): `array` names the count and
/// `element` each value in errors.
pub(crate) fn i32_array(
    buf: &mut Bytes,
    array: &'static str,
    element: &'static str,
) -> Result<Vec<i32>, LegacyError> {
    let count = array_len(buf, 4, array)?;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        values.push(i32(buf, element)?);
    }
    Ok(values)
}

/// Writes an i16-length string; longer strings than i16 can express are a broker bug and
/// are reported rather than silently cut.
pub(crate) fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) -> Result<(), LegacyError> {
    match s {
        None => out.put_i16(-1),
        Some(s) => {
            let len = i16::try_from(s.len()).map_err(|_| LegacyError::TooLong {
                what: "string",
                len: s.len(),
            })?;
            out.put_i16(len);
            out.put_slice(s.as_bytes());
        }
    }
    Ok(())
}

pub(crate) fn put_string(out: &mut BytesMut, s: &str) -> Result<(), LegacyError> {
    put_nullable_string(out, Some(s))
}

/// Writes nullable bytes (i32 length).
pub(crate) fn put_nullable_bytes(out: &mut BytesMut, b: Option<&[u8]>) -> Result<(), LegacyError> {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(len_i32(b.len(), "bytes")?);
            out.put_slice(b);
        }
    }
    Ok(())
}

/// Writes an array count.
pub(crate) fn put_array_len(out: &mut BytesMut, len: usize) -> Result<(), LegacyError> {
    out.put_i32(len_i32(len, "array")?);
    Ok(())
}

pub(crate) fn len_i32(len: usize, what: &'static str) -> Result<i32, LegacyError> {
    i32::try_from(len).map_err(|_| LegacyError::TooLong { what, len })
}
