//! Primitives for Kafka's internal-topic record schemas.
//!
//! The keys and values Kafka writes to `__consumer_offsets` and
//! `__transaction_state` are not request or response messages, so the
//! generated types of `kafka_protocol` do not cover them. They are small
//! schemas in Kafka's message encoding: a big-endian `int16` schema version
//! followed by fields in either the classic encoding (`int16`-prefixed
//! strings, `int32`-prefixed bytes and arrays) or, for flexible versions, the
//! compact one (unsigned-varint lengths plus one, tagged fields at the end of
//! every struct).
//!
//! [`Reader`](crate::schema_codec::Reader) decodes those fields without
//! panicking: every read is bounds-checked, and every length prefix is checked
//! against the bytes actually present before anything is allocated, so a
//! damaged record yields a [`CodecError`](crate::schema_codec::CodecError)
//! rather than a panic or a huge allocation.
//! [`Writer`](crate::schema_codec::Writer) is its counterpart for encoding.

use bytes::{BufMut, Bytes, BytesMut};

/// A record of an internal topic could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The buffer ended before the field being read.
    #[error("record truncated while reading {0}")]
    Truncated(&'static str),
    /// A length prefix was negative (and not the null marker) or too large.
    #[error("invalid length {len} for {field}")]
    InvalidLength {
        /// The field whose length prefix was read.
        field: &'static str,
        /// The length as read (for a compact length, after subtracting one).
        len: i64,
    },
    /// A string was not valid UTF-8.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    /// The schema version is not one Kafka ever wrote for this record type.
    #[error("unsupported {record} version {version}")]
    UnsupportedVersion {
        /// The record type (key or value schema).
        record: &'static str,
        /// The version read.
        version: i16,
    },
    /// A non-nullable field was null.
    #[error("unexpected null {0}")]
    UnexpectedNull(&'static str),
    /// A field holds a value outside its domain (e.g. an unknown transaction status).
    #[error("invalid value {value} for {field}")]
    InvalidValue {
        /// The field read.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// A value does not fit its wire type (e.g. a string longer than 32767 bytes).
    #[error("{0} is too large to encode")]
    TooLarge(&'static str),
}

/// A record a coordinator skipped while loading its internal topic, so that the
/// caller, which knows where each record came from, can say which one it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    /// The record's position among the records handed to the loader, from 0.
    pub index: usize,
    /// Why it could not be decoded.
    pub error: CodecError,
}

/// Why the first of `skipped` was rejected, for one-line error messages.
pub fn first_skip_reason(skipped: &[SkippedRecord]) -> String {
    skipped
        .first()
        .map_or_else(|| "none".to_string(), |s| s.error.to_string())
}

/// How a length prefix is encoded in classic (non-flexible) versions.
#[derive(Clone, Copy)]
enum ClassicLen {
    /// `int16`, used by strings.
    I16,
    /// `int32`, used by bytes and arrays.
    I32,
}

/// Bounds-checked reader of one record in the classic or, when `flexible`,
/// the compact encoding of flexible versions.
///
/// Each read names the field it reads so errors say where a record is damaged.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `flexible` selects the compact encodings
    /// (varint lengths, tagged fields) of flexible schema versions.
    pub fn new(buf: &'a [u8], flexible: bool) -> Self {
        Self { buf, flexible }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// The next `n` bytes, or [`CodecError::Truncated`] if fewer are left.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        let (head, tail) = self
            .buf
            .split_at_checked(n)
            .ok_or(CodecError::Truncated(field))?;
        self.buf = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let bytes = self.take(N, field)?;
        <[u8; N]>::try_from(bytes).map_err(|_| CodecError::Truncated(field))
    }

    /// An `int8`.
    pub fn i8(&mut self, field: &'static str) -> Result<i8, CodecError> {
        self.array(field).map(i8::from_be_bytes)
    }

    /// A big-endian `int16`.
    pub fn i16(&mut self, field: &'static str) -> Result<i16, CodecError> {
        self.array(field).map(i16::from_be_bytes)
    }

    /// A big-endian `int32`.
    pub fn i32(&mut self, field: &'static str) -> Result<i32, CodecError> {
        self.array(field).map(i32::from_be_bytes)
    }

    /// A big-endian `int64`.
    pub fn i64(&mut self, field: &'static str) -> Result<i64, CodecError> {
        self.array(field).map(i64::from_be_bytes)
    }

    /// An unsigned varint of at most five bytes; a longer one is
    /// [`CodecError::InvalidLength`].
    pub fn unsigned_varint(&mut self, field: &'static str) -> Result<u32, CodecError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [byte] = self.array::<1>(field)?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::InvalidLength {
            field,
            len: i64::from(value),
        })
    }

    /// A length prefix: `None` for null (-1), an error for other negative lengths.
    fn length(
        &mut self,
        field: &'static str,
        classic: ClassicLen,
    ) -> Result<Option<usize>, CodecError> {
        let len: i64 = if self.flexible {
            i64::from(self.unsigned_varint(field)?) - 1
        } else {
            match classic {
                ClassicLen::I16 => i64::from(self.i16(field)?),
                ClassicLen::I32 => i64::from(self.i32(field)?),
            }
        };
        if len == -1 {
            return Ok(None);
        }
        usize::try_from(len)
            .map(Some)
            .map_err(|_| CodecError::InvalidLength { field, len })
    }

    /// A nullable string (`int16` length in classic versions, compact in
    /// flexible ones). A length past the end is [`CodecError::Truncated`].
    pub fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, CodecError> {
        match self.length(field, ClassicLen::I16)? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n, field)?;
                std::str::from_utf8(raw)
                    .map(|s| Some(s.to_owned()))
                    .map_err(|_| CodecError::InvalidUtf8(field))
            }
        }
    }

    /// A non-nullable string; null is [`CodecError::UnexpectedNull`].
    pub fn string(&mut self, field: &'static str) -> Result<String, CodecError> {
        self.nullable_string(field)?
            .ok_or(CodecError::UnexpectedNull(field))
    }

    /// Non-nullable bytes (`int32` length in classic versions, compact in
    /// flexible ones); null is [`CodecError::UnexpectedNull`].
    pub fn bytes(&mut self, field: &'static str) -> Result<Bytes, CodecError> {
        let n = self
            .length(field, ClassicLen::I32)?
            .ok_or(CodecError::UnexpectedNull(field))?;
        Ok(Bytes::copy_from_slice(self.take(n, field)?))
    }

    /// The element count of a nullable array (`int32` in classic versions,
    /// compact in flexible ones); `None` is null.
    ///
    /// Each element takes at least `min_elem_size` bytes (at least 1 is
    /// assumed), so a count the remaining bytes cannot hold is
    /// [`CodecError::InvalidLength`]: a corrupt count cannot make the caller
    /// allocate.
    pub fn nullable_array_len(
        &mut self,
        field: &'static str,
        min_elem_size: usize,
    ) -> Result<Option<usize>, CodecError> {
        let Some(n) = self.length(field, ClassicLen::I32)? else {
            return Ok(None);
        };
        if n.saturating_mul(min_elem_size.max(1)) > self.buf.len() {
            return Err(CodecError::InvalidLength {
                field,
                len: i64::try_from(n).unwrap_or(i64::MAX),
            });
        }
        Ok(Some(n))
    }

    /// The element count of a non-nullable array, bounded like
    /// [`Reader::nullable_array_len`]; null is [`CodecError::UnexpectedNull`].
    pub fn array_len(
        &mut self,
        field: &'static str,
        min_elem_size: usize,
    ) -> Result<usize, CodecError> {
        self.nullable_array_len(field, min_elem_size)?
            .ok_or(CodecError::UnexpectedNull(field))
    }

    /// Reads the tagged fields ending a struct of a flexible version, handing
    /// each tag and its data to `f`. Does nothing in classic versions.
    pub fn tagged_fields(
        &mut self,
        mut f: impl FnMut(u32, &'a [u8]) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint("tagged fields")?;
        for _ in 0..count {
            let tag = self.unsigned_varint("tag")?;
            let size = self.unsigned_varint("tagged field size")?;
            let size = usize::try_from(size).map_err(|_| CodecError::InvalidLength {
                field: "tagged field size",
                len: i64::from(size),
            })?;
            let data = self.take(size, "tagged field")?;
            f(tag, data)?;
        }
        Ok(())
    }

    /// Skips the tagged fields ending a struct of a flexible version (none
    /// is known to the caller). Does nothing in classic versions.
    pub fn skip_tagged_fields(&mut self) -> Result<(), CodecError> {
        self.tagged_fields(|_, _| Ok(()))
    }
}

/// Writer of one record in the classic or, when `flexible`, the compact
/// encoding of flexible versions. [`Writer::default`] writes classic.
#[derive(Debug, Default)]
pub struct Writer {
    buf: BytesMut,
    flexible: bool,
}

impl Writer {
    /// A writer; `flexible` selects the compact encodings of flexible versions.
    pub fn new(flexible: bool) -> Self {
        Self {
            buf: BytesMut::new(),
            flexible,
        }
    }

    /// An `int8`.
    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    /// A big-endian `int16`.
    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    /// A big-endian `int32`.
    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    /// A big-endian `int64`.
    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    /// An unsigned varint.
    pub fn unsigned_varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// The length prefix of a non-null field: compact (length plus one) in
    /// flexible versions, else `classic`.
    fn length(
        &mut self,
        len: usize,
        classic: ClassicLen,
        field: &'static str,
    ) -> Result<(), CodecError> {
        if self.flexible {
            let len = u32::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(1))
                .ok_or(CodecError::TooLarge(field))?;
            self.unsigned_varint(len);
        } else {
            match classic {
                ClassicLen::I16 => {
                    let len = i16::try_from(len).map_err(|_| CodecError::TooLarge(field))?;
                    self.i16(len);
                }
                ClassicLen::I32 => {
                    let len = i32::try_from(len).map_err(|_| CodecError::TooLarge(field))?;
                    self.i32(len);
                }
            }
        }
        Ok(())
    }

    /// The null length prefix: compact 0 in flexible versions, else -1 as `classic`.
    fn null(&mut self, classic: ClassicLen) {
        if self.flexible {
            self.unsigned_varint(0);
        } else {
            match classic {
                ClassicLen::I16 => self.i16(-1),
                ClassicLen::I32 => self.i32(-1),
            }
        }
    }

    /// A non-null string; [`CodecError::TooLarge`] if its length does not
    /// fit the prefix (32767 bytes in classic versions).
    pub fn string(&mut self, v: &str, field: &'static str) -> Result<(), CodecError> {
        self.length(v.len(), ClassicLen::I16, field)?;
        self.buf.put_slice(v.as_bytes());
        Ok(())
    }

    /// A nullable string.
    pub fn nullable_string(
        &mut self,
        v: Option<&str>,
        field: &'static str,
    ) -> Result<(), CodecError> {
        match v {
            None => {
                self.null(ClassicLen::I16);
                Ok(())
            }
            Some(s) => self.string(s, field),
        }
    }

    /// Non-null bytes.
    pub fn bytes(&mut self, v: &[u8], field: &'static str) -> Result<(), CodecError> {
        self.length(v.len(), ClassicLen::I32, field)?;
        self.buf.put_slice(v);
        Ok(())
    }

    /// The element count of a non-null array; the caller writes the elements.
    pub fn array_len(&mut self, len: usize, field: &'static str) -> Result<(), CodecError> {
        self.length(len, ClassicLen::I32, field)
    }

    /// A null array.
    pub fn null_array(&mut self) {
        self.null(ClassicLen::I32);
    }

    /// An empty set of tagged fields ending a struct of a flexible version
    /// (nothing in classic versions).
    pub fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.unsigned_varint(0);
        }
    }

    /// The encoded record.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_primitives_round_trip() {
        let mut w = Writer::default();
        w.i8(-3);
        w.i16(-2);
        w.i32(70_000);
        w.i64(-5_000_000_000);
        w.string("héllo", "s").unwrap();
        w.nullable_string(None, "ns").unwrap();
        w.nullable_string(Some(""), "ns").unwrap();
        w.bytes(b"\x00\x01", "b").unwrap();
        w.array_len(2, "a").unwrap();
        w.null_array();
        w.no_tagged_fields();
        let bytes = w.finish();

        let mut r = Reader::new(&bytes, false);
        assert_eq!(r.i8("i8").unwrap(), -3);
        assert_eq!(r.i16("i16").unwrap(), -2);
        assert_eq!(r.i32("i32").unwrap(), 70_000);
        assert_eq!(r.i64("i64").unwrap(), -5_000_000_000);
        assert_eq!(r.string("s").unwrap(), "héllo");
        assert_eq!(r.nullable_string("ns").unwrap(), None);
        assert_eq!(r.nullable_string("ns").unwrap().as_deref(), Some(""));
        assert_eq!(r.bytes("b").unwrap().as_ref(), b"\x00\x01");
        assert_eq!(r.array_len("a", 1).unwrap(), 2);
        assert_eq!(r.nullable_array_len("n", 4).unwrap(), None);
        r.skip_tagged_fields().unwrap();
        assert!(r.remaining().is_empty());
    }

    #[test]
    fn classic_layout_matches_kafka() {
        let mut w = Writer::default();
        w.string("ab", "s").unwrap();
        w.nullable_string(None, "ns").unwrap();
        w.bytes(b"x", "b").unwrap();
        w.array_len(1, "a").unwrap();
        w.null_array();
        assert_eq!(
            w.finish().as_ref(),
            &[
                0, 2, b'a', b'b', 0xff, 0xff, 0, 0, 0, 1, b'x', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff
            ][..]
        );
    }

    #[test]
    fn flexible_layout_matches_kafka() {
        let mut w = Writer::new(true);
        w.string("ab", "s").unwrap();
        w.nullable_string(None, "ns").unwrap();
        w.bytes(b"x", "b").unwrap();
        w.array_len(1, "a").unwrap();
        w.null_array();
        w.no_tagged_fields();
        w.unsigned_varint(300);
        let bytes = w.finish();
        assert_eq!(
            bytes.as_ref(),
            &[3, b'a', b'b', 0, 2, b'x', 2, 0, 0, 0xac, 0x02][..]
        );

        let mut r = Reader::new(&bytes, true);
        assert_eq!(r.string("s").unwrap(), "ab");
        assert_eq!(r.nullable_string("ns").unwrap(), None);
        assert_eq!(r.bytes("b").unwrap().as_ref(), b"x");
        assert_eq!(r.nullable_array_len("a", 1).unwrap(), Some(1));
        assert_eq!(r.nullable_array_len("n", 1).unwrap(), None);
        r.skip_tagged_fields().unwrap();
        assert_eq!(r.unsigned_varint("v").unwrap(), 300);
        assert!(r.remaining().is_empty());
    }

    #[test]
    fn truncation_is_an_error() {
        let mut w = Writer::default();
        w.string("abc", "s").unwrap();
        w.i64(1);
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut], false);
            let res = r.string("s").and_then(|_| r.i64("n"));
            assert!(
                matches!(res, Err(CodecError::Truncated(_))),
                "cut at {cut}: {res:?}"
            );
        }
        assert_eq!(
            Reader::new(&[0, 0, 0], false).i32("x"),
            Err(CodecError::Truncated("x"))
        );
        assert_eq!(
            Reader::new(&[0, 0, 0, 5, 1], false).bytes("b"),
            Err(CodecError::Truncated("b"))
        );
    }

    #[test]
    fn negative_and_null_lengths() {
        // -2 is neither null nor a length.
        assert_eq!(
            Reader::new(&[0xff, 0xfe], false).nullable_string("s"),
            Err(CodecError::InvalidLength {
                field: "s",
                len: -2
            })
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xf0], false).bytes("b"),
            Err(CodecError::InvalidLength {
                field: "b",
                len: -16
            })
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xfe], false).nullable_array_len("a", 1),
            Err(CodecError::InvalidLength {
                field: "a",
                len: -2
            })
        );
        // Null where a value is required.
        assert_eq!(
            Reader::new(&[0xff, 0xff], false).string("s"),
            Err(CodecError::UnexpectedNull("s"))
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff], false).bytes("b"),
            Err(CodecError::UnexpectedNull("b"))
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff], false).array_len("a", 1),
            Err(CodecError::UnexpectedNull("a"))
        );
        assert_eq!(
            Reader::new(&[0], true).string("s"),
            Err(CodecError::UnexpectedNull("s"))
        );
    }

    #[test]
    fn oversized_lengths_are_rejected_before_allocating() {
        // Array counts are bounded by the remaining bytes and the element size.
        let mut huge = i32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert_eq!(
            Reader::new(&huge, false).array_len("a", 1),
            Err(CodecError::InvalidLength {
                field: "a",
                len: i64::from(i32::MAX)
            })
        );
        let mut four = 4i32.to_be_bytes().to_vec();
        four.extend_from_slice(&[0; 15]);
        assert!(Reader::new(&four, false).array_len("a", 4).is_err());
        assert_eq!(Reader::new(&four, false).array_len("a", 3).unwrap(), 4);
        // A compact count of u32::MAX - 1.
        let flexible = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert!(matches!(
            Reader::new(&flexible, true).nullable_array_len("a", 1),
            Err(CodecError::InvalidLength { .. })
        ));
        // String and bytes lengths past the end never allocate.
        assert_eq!(
            Reader::new(&[0x7f, 0xff, b'a'], false).string("s"),
            Err(CodecError::Truncated("s"))
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f], true).bytes("b"),
            Err(CodecError::Truncated("b"))
        );
    }

    #[test]
    fn oversized_values_are_rejected_on_encode() {
        let long = "x".repeat(40_000);
        assert_eq!(
            Writer::default().string(&long, "s"),
            Err(CodecError::TooLarge("s"))
        );
        assert_eq!(
            Writer::default().nullable_string(Some(&long), "s"),
            Err(CodecError::TooLarge("s"))
        );
        // Flexible versions have no 32767-byte limit.
        let mut w = Writer::new(true);
        w.string(&long, "s").unwrap();
        let bytes = w.finish();
        assert_eq!(Reader::new(&bytes, true).string("s").unwrap(), long);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(
            Reader::new(&[0, 2, 0xff, 0xfe], false).string("s"),
            Err(CodecError::InvalidUtf8("s"))
        );
        assert_eq!(
            Reader::new(&[2, 0xc3], true).nullable_string("s"),
            Err(CodecError::InvalidUtf8("s"))
        );
    }

    #[test]
    fn varints() {
        for v in [0, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut w = Writer::default();
            w.unsigned_varint(v);
            let bytes = w.finish();
            let mut r = Reader::new(&bytes, false);
            assert_eq!(r.unsigned_varint("v").unwrap(), v);
            assert!(r.remaining().is_empty());
        }
        // More than five bytes overflows a u32.
        assert!(matches!(
            Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], false).unsigned_varint("v"),
            Err(CodecError::InvalidLength { field: "v", .. })
        ));
        // A varint cut short is truncated.
        assert_eq!(
            Reader::new(&[0x80, 0x80], false).unsigned_varint("v"),
            Err(CodecError::Truncated("v"))
        );
    }

    #[test]
    fn flexible_tagged_fields() {
        // Two tagged fields (0: 8 bytes, 5: 1 byte), then an i16.
        let mut w = Writer::new(true);
        w.unsigned_varint(2);
        w.unsigned_varint(0);
        w.unsigned_varint(8);
        w.i64(42);
        w.unsigned_varint(5);
        w.unsigned_varint(1);
        w.i8(7);
        w.i16(9);
        let bytes = w.finish();

        let mut seen = Vec::new();
        let mut r = Reader::new(&bytes, true);
        r.tagged_fields(|tag, data| {
            seen.push((tag, data.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, 42i64.to_be_bytes().to_vec()), (5, vec![7])]);
        assert_eq!(r.i16("after").unwrap(), 9);

        let mut r = Reader::new(&bytes, true);
        r.skip_tagged_fields().unwrap();
        assert_eq!(r.i16("after").unwrap(), 9);

        // The callback's error is returned.
        let mut r = Reader::new(&bytes, true);
        assert_eq!(
            r.tagged_fields(|tag, _| Err(CodecError::InvalidValue {
                field: "tag",
                value: i64::from(tag)
            })),
            Err(CodecError::InvalidValue {
                field: "tag",
                value: 0
            })
        );

        // A size past the end, and a count with no fields behind it.
        assert_eq!(
            Reader::new(&[1, 0, 9, 1], true).skip_tagged_fields(),
            Err(CodecError::Truncated("tagged field"))
        );
        assert_eq!(
            Reader::new(&[3, 0, 0], true).skip_tagged_fields(),
            Err(CodecError::Truncated("tag"))
        );

        // Classic versions have no tagged fields: nothing is consumed.
        let mut r = Reader::new(&[1, 2], false);
        r.skip_tagged_fields().unwrap();
        assert_eq!(r.remaining(), &[1, 2]);
    }
}
