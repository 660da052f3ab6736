//! Message filters: predicates on a record's key, value, a header or a JSON field —
//! substring, equality and numeric comparisons, nothing that runs user code.

use memchr::memmem;
use sluice_broker::admin::RecordView;

/// What part of a record a filter looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The key's bytes.
    Key,
    /// The value's bytes.
    Value,
    /// The value of the first header with this name.
    Header(String),
    /// The field at this JSON pointer (RFC 6901) of a JSON value, e.g. `/user/id`.
    Json(String),
}

/// How the field is compared with the filter's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The field contains the text.
    Contains,
    /// The field is the text (a JSON number compares as a number).
    Equals,
    /// The field is not the text.
    NotEquals,
    /// The field is below the number (JSON fields).
    Less,
    /// The field is above the number (JSON fields).
    Greater,
}

/// A predicate on records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// What it looks at.
    pub field: Field,
    /// How it compares.
    pub op: Op,
    /// The text compared with.
    pub needle: String,
}

impl Filter {
    /// The filter a query asks for: `field` (key, value, header, json), `name` (the
    /// header name or JSON pointer), `op` and the text `q`. `Ok(None)` when there is no
    /// text to look for.
    pub fn parse(
        field: &str,
        name: &str,
        op: &str,
        needle: &str,
    ) -> Result<Option<Filter>, String> {
        if needle.is_empty() {
            return Ok(None);
        }
        let field = match field {
            "" | "value" => Field::Value,
            "key" => Field::Key,
            "header" if !name.is_empty() => Field::Header(name.to_string()),
            "header" => return Err("a header filter needs the header's name".into()),
            "json" if name.starts_with('/') => Field::Json(name.to_string()),
            "json" => return Err("a JSON filter needs a pointer such as /user/id".into()),
            other => return Err(format!("unknown filter field '{other}'")),
        };
        let op = match op {
            "" | "contains" => Op::Contains,
            "eq" => Op::Equals,
            "ne" => Op::NotEquals,
            "lt" => Op::Less,
            "gt" => Op::Greater,
            other => return Err(format!("unknown comparison '{other}'")),
        };
        if matches!(op, Op::Less | Op::Greater) && needle.trim().parse::<f64>().is_err() {
            return Err(format!("'{needle}' is not a number to compare with"));
        }
        Ok(Some(Filter {
            field,
            op,
            needle: needle.to_string(),
        }))
    }

    /// Whether `record` passes.
    pub fn matches(&self, record: &RecordView) -> bool {
        match &self.field {
            Field::Key => self.compare_bytes(record.key.as_deref()),
            Field::Value => self.compare_bytes(record.value.as_deref()),
            Field::Header(name) => {
                let value = record
                    .headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_deref());
                match value {
                    Some(v) => self.compare_bytes(v),
                    None => self.op == Op::NotEquals,
                }
            }
            Field::Json(pointer) => self.compare_json(record.value.as_deref(), pointer),
        }
    }

    fn compare_bytes(&self, bytes: Option<&[u8]>) -> bool {
        let bytes = bytes.unwrap_or(&[]);
        let needle = self.needle.as_bytes();
        match self.op {
            Op::Contains => memmem::find(bytes, needle).is_some(),
            Op::Equals => bytes == needle,
            Op::NotEquals => bytes != needle,
            Op::Less | Op::Greater => std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .is_some_and(|n| self.compare_number(n)),
        }
    }

    fn compare_json(&self, value: Option<&[u8]>, pointer: &str) -> bool {
        // Records that cannot hold the text are skipped before parsing.
        let Some(value) = value else { return false };
        if self.op == Op::Contains && memmem::find(value, self.needle.as_bytes()).is_none() {
            return false;
        }
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(value) else {
            return false;
        };
        let Some(field) = json.pointer(pointer) else {
            return self.op == Op::NotEquals;
        };
        let text = match field {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match self.op {
            Op::Contains => text.contains(&self.needle),
            Op::Equals | Op::NotEquals => {
                let equal = match (field.as_f64(), self.needle.trim().parse::<f64>()) {
                    (Some(a), Ok(b)) => a == b,
                    _ => text == self.needle,
                };
                equal == (self.op == Op::Equals)
            }
            Op::Less | Op::Greater => field.as_f64().is_some_and(|n| self.compare_number(n)),
        }
    }

    fn compare_number(&self, n: f64) -> bool {
        let Ok(bound) = self.needle.trim().parse::<f64>() else {
            return false;
        };
        match self.op {
            Op::Less => n < bound,
            Op::Greater => n > bound,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bytes::Bytes;

    use super::*;

    fn record(key: &str, value: &str, headers: &[(&str, &str)]) -> RecordView {
        RecordView {
            partition: 0,
            offset: 0,
            timestamp: 0,
            log_append_time: false,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))))
                .collect(),
        }
    }

    fn passes(field: &str, name: &str, op: &str, q: &str, r: &RecordView) -> bool {
        Filter::parse(field, name, op, q)
            .unwrap()
            .unwrap()
            .matches(r)
    }

    #[test]
    fn filters_compare_keys_values_headers_and_json_fields() {
        let r = record(
            "user-42",
            r#"{"user":{"id":42,"name":"Ada"},"total":17.5}"#,
            &[("source", "web")],
        );
        assert!(passes("key", "", "contains", "42", &r));
        assert!(!passes("key", "", "eq", "user-4", &r));
        assert!(passes("value", "", "contains", "Ada", &r));
        assert!(passes("header", "source", "eq", "web", &r));
        assert!(!passes("header", "source", "eq", "app", &r));
        assert!(passes("header", "missing", "ne", "x", &r));
        assert!(passes("json", "/user/id", "eq", "42", &r));
        assert!(passes("json", "/user/id", "eq", "42.0", &r));
        assert!(passes("json", "/user/name", "eq", "Ada", &r));
        assert!(passes("json", "/total", "gt", "17", &r));
        assert!(!passes("json", "/total", "lt", "17", &r));
        assert!(passes("json", "/user/name", "ne", "Bob", &r));
        assert!(!passes("json", "/user/name", "contains", "Bob", &r));
        assert_eq!(Filter::parse("value", "", "", ""), Ok(None));
        assert!(Filter::parse("json", "user", "eq", "1").is_err());
        assert!(Filter::parse("json", "/a", "gt", "x").is_err());
        assert!(Filter::parse("header", "", "eq", "x").is_err());
        assert!(Filter::parse("code", "", "eq", "x").is_err());
    }
}
