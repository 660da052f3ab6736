//! How `sluice consume` prints a record: a kcat-style template written as raw bytes, or
//! one JSON object per line in which bytes that are not UTF-8 are given in base64.

use serde_json::{Value, json};
use sluice_client::Record;

/// One piece of a parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Key,
    Value,
    Headers,
    Partition,
    Offset,
    Timestamp,
    Topic,
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `%k %v %h %p %o %t %T %%` and the escapes `\n \t \\`; anything else is
    /// literal. A newline is appended unless the template already ends with one (so both
    /// `%v` and kcat's `%v\n` print one record per line).
    pub fn parse(template: &str) -> Template {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars();
        let field = |pieces: &mut Vec<Piece>, literal: &mut String, piece: Piece| {
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(literal).into_bytes()));
            }
            pieces.push(piece);
        };
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('k') => field(&mut pieces, &mut literal, Piece::Key),
                    Some('v') => field(&mut pieces, &mut literal, Piece::Value),
                    Some('h') => field(&mut pieces, &mut literal, Piece::Headers),
                    Some('p') => field(&mut pieces, &mut literal, Piece::Partition),
                    Some('o') => field(&mut pieces, &mut literal, Piece::Offset),
                    Some('t') => field(&mut pieces, &mut literal, Piece::Timestamp),
                    Some('T') => field(&mut pieces, &mut literal, Piece::Topic),
                    Some('%') => literal.push('%'),
                    Some(other) => {
                        literal.push('%');
                        literal.push(other);
                    }
                    None => literal.push('%'),
                },
                '\\' => match chars.next() {
                    Some('n') => literal.push('\n'),
                    Some('t') => literal.push('\t'),
                    Some('\\') => literal.push('\\'),
                    Some(other) => {
                        literal.push('\\');
                        literal.push(other);
                    }
                    None => literal.push('\\'),
                },
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into_bytes()));
        }
        match pieces.last_mut() {
            Some(Piece::Literal(l)) if l.ends_with(b"\n") => {}
            Some(Piece::Literal(l)) => l.push(b'\n'),
            _ => pieces.push(Piece::Literal(b"\n".to_vec())),
        }
        Template { pieces }
    }

    /// The record's bytes as the template lays them out (keys, values and headers raw).
    pub fn render(&self, topic: &str, partition: i32, r: &Record) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + r.value.as_ref().map_or(0, |v| v.len()));
        for piece in &self.pieces {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::Key => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Piece::Value => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                Piece::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v.as_deref().unwrap_or_default());
                    }
                }
                Piece::Partition => out.extend_from_slice(partition.to_string().as_bytes()),
                Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Piece::Timestamp => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                Piece::Topic => out.extend_from_slice(topic.as_bytes()),
            }
        }
        out
    }
}

/// The JSON of a record: `{topic, partition, offset, timestamp, key, value, headers:
/// [{key, value}]}`, with bytes as [`json_bytes`] gives them.
pub fn record_json(topic: &str, partition: i32, r: &Record) -> Value {
    let headers: Vec<_> = r
        .headers
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": json_bytes(v.as_deref()) }))
        .collect();
    json!({
        "topic": topic,
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": json_bytes(r.key.as_deref()),
        "value": json_bytes(r.value.as_deref()),
        "headers": headers,
    })
}

/// `null` for no bytes, a string for UTF-8, else `{"base64": "..."}` (standard alphabet,
/// padded): a script that expects text fails loudly instead of reading altered bytes.
pub fn json_bytes(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => json!({ "base64": base64(b) }),
        },
    }
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let symbol = |sextet: u32| {
        char::from(
            ALPHABET
                .get((sextet & 63) as usize)
                .copied()
                .unwrap_or(b'='),
        )
    };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group
            .iter_mut()
            .zip(chunk)
            .for_each(|(slot, byte)| *slot = *byte);
        let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        out.push(symbol(n >> 18));
        out.push(symbol(n >> 12));
        out.push(if chunk.len() > 1 { symbol(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { symbol(n) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(key: &'static [u8], value: &'static [u8], header: &'static [u8]) -> Record {
        Record {
            offset: 7,
            timestamp: 1234,
            key: Some(Bytes::from_static(key)),
            value: Some(Bytes::from_static(value)),
            headers: vec![("a".to_string(), Some(Bytes::from_static(header)))],
        }
    }

    fn render(template: &str, r: &Record) -> Vec<u8> {
        Template::parse(template).render("t", 2, r)
    }

    #[test]
    fn templates_render_every_field() {
        let r = record(b"k", b"v", b"1");
        assert_eq!(
            render("%T/%p@%o %t %k=%v [%h] 100%%\\t%x", &r),
            b"t/2@7 1234 k=v [a=1] 100%\t%x\n"
        );
    }

    #[test]
    fn a_template_ending_in_a_newline_gets_no_second_one() {
        let r = record(b"k", b"v", b"1");
        assert_eq!(render("%p/%o %k=%v\\n", &r), b"2/7 k=v\n");
        assert_eq!(render("%v\n", &r), b"v\n");
        assert_eq!(render("%v", &r), b"v\n");
        assert_eq!(render("%v\\n\\n", &r), b"v\n\n");
        assert_eq!(render("", &r), b"\n");
    }

    #[test]
    fn bytes_are_written_as_they_are() {
        let r = record(b"\xff\x00", b"\x80v\xfe", b"\xc3");
        assert_eq!(render("%k|%v|%h", &r), b"\xff\x00|\x80v\xfe|a=\xc3\n");
    }

    #[test]
    fn json_gives_text_as_strings_and_other_bytes_in_base64() {
        let r = record(b"key", b"\x80v\xfe", b"\xc3");
        let j = record_json("t", 2, &r);
        assert_eq!(j["key"], json!("key"));
        assert_eq!(j["value"], json!({ "base64": "gHb+" }));
        assert_eq!(
            j["headers"][0],
            json!({ "key": "a", "value": { "base64": "ww==" } })
        );
        assert_eq!(json_bytes(None), Value::Null);
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
