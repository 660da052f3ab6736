//! `ssl.principal.mapping.rules`: how the subject of a client certificate becomes the
//! principal's name (Kafka's `SslPrincipalMapper`). A comma- or newline-separated list of
//! `RULE:pattern/replacement/[LU]` and `DEFAULT`; the first rule whose pattern matches the
//! whole subject wins, its replacement may refer to groups as `$1`, `/L` and `/U` change
//! the case; `DEFAULT` keeps the subject as it is. When no rule applies, authentication
//! fails. Patterns are Rust regular expressions (no look-around or back-references).

use regex::Regex;

/// One rule.
#[derive(Debug, Clone)]
enum Rule {
    /// Keep the subject.
    Default,
    /// Rewrite a subject the pattern matches whole.
    Rewrite {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Parsed mapping rules.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
    text: String,
}

/// Why the rules cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A rule is neither `DEFAULT` nor `RULE:pattern/replacement/[LU]`.
    #[error(
        "invalid ssl.principal.mapping.rules entry '{0}': expected DEFAULT or RULE:pattern/replacement/[LU]"
    )]
    Syntax(String),
    /// The pattern is not a valid regular expression.
    #[error("invalid pattern in ssl.principal.mapping.rules rule '{rule}': {reason}")]
    Pattern {
        /// The rule.
        rule: String,
        /// What the regex compiler said.
        reason: String,
    },
}

/// Why a subject has no principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no ssl.principal.mapping.rules rule applies to {subject} (rules: {rules})")]
pub struct NoRuleApplies {
    /// The certificate subject.
    pub subject: String,
    /// The rules.
    pub rules: String,
}

impl PrincipalMapper {
    /// Parses the rules; an empty text means `DEFAULT`.
    pub fn parse(text: &str) -> Result<Self, MappingError> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        while !rest.is_empty() {
            let (rule, after) = parse_rule(rest)?;
            rules.push(rule);
            rest = after.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(PrincipalMapper {
            rules,
            text: text.trim().to_string(),
        })
    }

    /// The principal name for a certificate `subject`.
    pub fn map(&self, subject: &str) -> Result<String, NoRuleApplies> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(subject.to_string()),
                Rule::Rewrite {
                    pattern,
                    replacement,
                    case,
                } => {
                    let Some(captures) = pattern.captures(subject) else {
                        continue;
                    };
                    let out = expand(&captures, replacement);
                    return Ok(match case {
                        Case::Keep => out,
                        Case::Lower => out.to_lowercase(),
                        Case::Upper => out.to_uppercase(),
                    });
                }
            }
        }
        Err(NoRuleApplies {
            subject: subject.to_string(),
            rules: self.text.clone(),
        })
    }
}

/// Parses one rule at the start of `text`; returns it and what follows its separator.
fn parse_rule(text: &str) -> Result<(Rule, &str), MappingError> {
    if let Some(after) = text.strip_prefix("DEFAULT") {
        let after = after.trim_start_matches([' ', '\t']);
        if after.is_empty() || after.starts_with([',', '\n']) {
            return Ok((Rule::Default, after));
        }
    }
    let entry_end = text.find([',', '\n']).unwrap_or(text.len());
    let syntax = || MappingError::Syntax(text.get(..entry_end).unwrap_or(text).trim().to_string());
    let body = text.strip_prefix("RULE:").ok_or_else(syntax)?;
    let (pattern, after_pattern) = until_slash(body).ok_or_else(syntax)?;
    let (replacement, after_replacement) = until_slash(after_pattern).ok_or_else(syntax)?;
    let (case, rest) = match after_replacement.chars().next() {
        Some('L') => (Case::Lower, after_replacement.get(1..).unwrap_or("")),
        Some('U') => (Case::Upper, after_replacement.get(1..).unwrap_or("")),
        _ => (Case::Keep, after_replacement),
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    if !(rest.is_empty() || rest.starts_with([',', '\n'])) {
        return Err(syntax());
    }
    let rule_text = text
        .get(..text.len() - rest.len())
        .unwrap_or(text)
        .to_string();
    let pattern = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| MappingError::Pattern {
        rule: rule_text,
        reason: e.to_string(),
    })?;
    Ok((
        Rule::Rewrite {
            pattern,
            replacement: replacement.to_string(),
            case,
        },
        rest,
    ))
}

/// The text up to the first `/` not escaped by a backslash, and what follows that `/`.
fn until_slash(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '/' if !escaped => return Some((text.get(..i)?, text.get(i + 1..)?)),
            _ => escaped = false,
        }
    }
    None
}

/// The replacement with `$n` replaced by group n and `\x` by `x` (Java's `replaceAll`).
fn expand(captures: &regex::Captures<'_>, replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let group = digits.parse::<usize>().ok().and_then(|n| captures.get(n));
                out.push_str(group.map_or("", |m| m.as_str()));
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Cases after Kafka's `SslPrincipalMapperTest`.
    #[test]
    fn rules_map_subjects_as_kafka_does() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT",
        )
        .unwrap();
        let cases = [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "Duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=test,dc=kafka,dc=com", "DUKE@TEST"),
            ("cn=duke2,ou=other", "DUKE2"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ];
        for (subject, want) in cases {
            assert_eq!(mapper.map(subject).unwrap(), want, "{subject}");
        }
    }

    #[test]
    fn no_applicable_rule_fails_and_default_keeps_the_subject() {
        let mapper = PrincipalMapper::parse("RULE:^CN=([^,]+),.*$/$1/L").unwrap();
        assert_eq!(mapper.map("CN=Alice,OU=eng,O=sluice").unwrap(), "alice");
        assert_eq!(
            mapper.map("OU=eng").unwrap_err().to_string(),
            "no ssl.principal.mapping.rules rule applies to OU=eng (rules: RULE:^CN=([^,]+),.*$/$1/L)"
        );
        assert_eq!(
            PrincipalMapper::parse("").unwrap().map("CN=x").unwrap(),
            "CN=x"
        );
        assert_eq!(
            PrincipalMapper::parse(" DEFAULT ")
                .unwrap()
                .map("CN=x")
                .unwrap(),
            "CN=x"
        );
    }

    #[test]
    fn escaped_slashes_and_newlines_separate_as_kafka_parses_them() {
        let mapper = PrincipalMapper::parse("RULE:^CN=(a\\/b)$/x\\/$1/\nDEFAULT").unwrap();
        assert_eq!(mapper.map("CN=a/b").unwrap(), "x/a/b");
        for bad in ["RULE:abc", "RULE:a/b", "NOPE", "RULE:(/x/", "RULE:a/b/Q"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }
}
