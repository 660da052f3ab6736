//! Just enough DER to read a certificate's subject and expiry: tag-length-value elements
//! with single-byte tags and definite lengths, every length checked against the input.

/// A DER element: its tag, its contents, and its whole encoding (tag and length included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// The identifier octet (class, constructed bit and tag number).
    pub tag: u8,
    /// The contents octets.
    pub contents: &'a [u8],
    /// The encoding of the whole element.
    pub encoding: &'a [u8],
}

/// Why bytes are not the DER expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct DerError(pub &'static str);

/// Tags the certificate reader uses.
pub mod tag {
    /// SEQUENCE.
    pub const SEQUENCE: u8 = 0x30;
    /// SET.
    pub const SET: u8 = 0x31;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// UTCTime.
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// `[0]` constructed, context-specific (a certificate's version).
    pub const CONTEXT_0: u8 = 0xa0;
}

/// Reads elements one after another from a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, without reading it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next element.
    pub fn element(&mut self) -> Result<Element<'a>, DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(DerError("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tag"));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(DerError("truncated"))?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(DerError("unsupported length"));
            }
            let (bytes, rest) = after_len
                .split_at_checked(count)
                .ok_or(DerError("truncated length"))?;
            after_len = rest;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let (contents, rest) = after_len
            .split_at_checked(length)
            .ok_or(DerError("length beyond the input"))?;
        let header = input.len() - after_len.len();
        let encoding = input
            .get(..header + length)
            .ok_or(DerError("length beyond the input"))?;
        self.rest = rest;
        Ok(Element {
            tag,
            contents,
            encoding,
        })
    }

    /// Reads the next element, which must have `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<Element<'a>, DerError> {
        let element = self.element()?;
        if element.tag != tag {
            return Err(DerError("unexpected element"));
        }
        Ok(element)
    }
}

/// An OBJECT IDENTIFIER's contents in dotted form (`2.5.4.3`).
pub fn oid_to_string(contents: &[u8]) -> Result<String, DerError> {
    let mut arcs: Vec<u128> = Vec::new();
    let mut value: u128 = 0;
    let mut pending = false;
    for &b in contents {
        if value > (u128::MAX >> 8) {
            return Err(DerError("object identifier arc too large"));
        }
        value = (value << 7) | u128::from(b & 0x7f);
        pending = true;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
            pending = false;
        }
    }
    if pending || arcs.is_empty() {
        return Err(DerError("truncated object identifier"));
    }
    Ok(arcs
        .iter()
        .map(u128::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn elements_and_object_identifiers_decode() {
        // SEQUENCE { OID 2.5.4.3, OID 1.2.840.113549.1.9.1 }
        let der = [
            0x30, 0x10, 0x06, 0x03, 0x55, 0x04, 0x03, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
            0x0d, 0x01, 0x09, 0x01,
        ];
        let seq = Reader::new(&der).expect(tag::SEQUENCE).unwrap();
        let mut inner = Reader::new(seq.contents);
        let cn = inner.expect(tag::OID).unwrap();
        assert_eq!(oid_to_string(cn.contents).unwrap(), "2.5.4.3");
        assert_eq!(cn.encoding, &der[2..7]);
        let email = inner.expect(tag::OID).unwrap();
        assert_eq!(
            oid_to_string(email.contents).unwrap(),
            "1.2.840.113549.1.9.1"
        );
        assert!(inner.is_empty());
    }

    #[test]
    fn lengths_beyond_the_input_are_refused() {
        for bad in [
            &[0x30, 0x05, 0x01][..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30],
            &[0x1f, 0x00],
            &[0x30, 0x80],
        ] {
            assert!(Reader::new(bad).element().is_err(), "{bad:?}");
        }
        assert!(oid_to_string(&[0x55, 0x84]).is_err());
    }
}
