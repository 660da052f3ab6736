//! How record bytes are shown: JSON pretty-printed (keys in their order), UTF-8 text,
//! or hex for anything else — always escaped by the templates, never interpreted.
//! Values framed by a Confluent schema registry serializer (magic byte 0 and a 4-byte
//! schema id) show their schema id.

use maud::{Markup, html};

/// What a key, value or header value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// Absent (null).
    Null,
    /// A JSON document (object or array), pretty-printed.
    Json(String),
    /// UTF-8 text.
    Text(String),
    /// Anything else.
    Binary,
}

/// Classifies `bytes`.
pub fn classify(bytes: Option<&[u8]>) -> Shown {
    let Some(bytes) = bytes else {
        return Shown::Null;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Shown::Binary;
    };
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    {
        return Shown::Json(pretty_json(text));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Shown::Binary;
    }
    Shown::Text(text.to_string())
}

/// Re-indents valid JSON two spaces a level, keeping its tokens as they are.
pub fn pretty_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let closes = matches!(chars.clone().find(|c| !c.is_whitespace()), Some('}' | ']'));
                if closes {
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                if !matches!(out.chars().last(), Some('{' | '[')) {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// The schema id of a value framed by a Confluent schema-registry serializer.
pub fn confluent_schema_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [0, a, b, c, d, _, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hex dump: offset, sixteen bytes in hex, and their printable ASCII.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 + 16);
    for (row, chunk) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}  ", row * 16));
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or(text)),
        None => text.to_string(),
    }
}

/// A one-line preview for a table cell.
pub fn preview(bytes: Option<&[u8]>, max_chars: usize) -> Markup {
    match classify(bytes) {
        Shown::Null => html! { span.null { "null" } },
        Shown::Json(_) | Shown::Text(_) => {
            let text = bytes
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("");
            html! { span.text { (cut(&text.replace(['\n', '\r', '\t'], " "), max_chars)) } }
        }
        Shown::Binary => {
            let bytes = bytes.unwrap_or(&[]);
            let shown = bytes.get(..max_chars / 2).unwrap_or(bytes);
            html! {
                span.binary title="binary, shown as hex" {
                    "0x" (hex(shown)) @if shown.len() < bytes.len() { "…" }
                }
            }
        }
    }
}

/// Everything about one value: its size, framing, and the JSON, text and hex views
/// that apply (at most `limit` bytes of it).
pub fn full(bytes: Option<&[u8]>, limit: usize) -> Markup {
    let Some(all) = bytes else {
        return html! { p.null { "null" } };
    };
    let shown = all.get(..limit).unwrap_or(all);
    let cut_note = (shown.len() < all.len())
        .then(|| format!("Showing the first {} of {} bytes.", shown.len(), all.len()));
    let schema = confluent_schema_id(all);
    html! {
        p.meta {
            (crate::format::count(i64::try_from(all.len()).unwrap_or(i64::MAX))) " bytes"
            @if let Some(id) = schema { " · Confluent wire format, schema id " (id) }
            @if let Some(note) = &cut_note { " · " (note) }
        }
        @match classify(Some(shown)) {
            Shown::Json(pretty) => {
                details open { summary { "JSON" } pre.json { (pretty) } }
                details { summary { "Hex" } pre.hex { (hex_dump(shown)) } }
            }
            Shown::Text(text) => {
                details open { summary { "Text" } pre.text { (text) } }
                details { summary { "Hex" } pre.hex { (hex_dump(shown)) } }
            }
            Shown::Null | Shown::Binary => {
                details open { summary { "Hex" } pre.hex { (hex_dump(shown)) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_classified_json_text_or_binary() {
        assert_eq!(classify(None), Shown::Null);
        assert_eq!(
            classify(Some(br#"{"b":1,"a":[1, {"x":"y,}"}],"e":{}}"#)),
            Shown::Json(
                "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {\n      \"x\": \"y,}\"\n    }\n  ],\n  \"e\": {}\n}"
                    .to_string()
            )
        );
        assert_eq!(classify(Some(b"hello\n")), Shown::Text("hello\n".into()));
        assert_eq!(
            classify(Some(b"{not json")),
            Shown::Text("{not json".into())
        );
        assert_eq!(classify(Some(&[0xff, 0xfe, 0x00])), Shown::Binary);
        assert_eq!(classify(Some(b"a\x00b")), Shown::Binary);
    }

    #[test]
    fn previews_escape_and_cut() {
        let markup = preview(Some(b"</script><script>alert(1)</script>"), 100).into_string();
        assert_eq!(
            markup,
            "<span class=\"text\">&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;</span>"
        );
        assert_eq!(
            preview(Some(&[0xc3, 0x28, 0xff]), 100).into_string(),
            "<span class=\"binary\" title=\"binary, shown as hex\">0xc328ff</span>"
        );
        assert_eq!(cut("héllo wörld", 5), "héllo…");
        assert_eq!(confluent_schema_id(&[0, 0, 0, 1, 44, 7]), Some(300));
        assert_eq!(confluent_schema_id(b"{}"), None);
        assert_eq!(
            hex_dump(b"AB\x00"),
            "00000000  41 42 00                                         AB.\n"
        );
    }
}
