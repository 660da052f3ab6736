//! A small regular-expression matcher for ListTransactions v2's
//! `transactional_id_pattern` (KIP-1152), which Kafka matches against the
//! whole transactional id.
//!
//! It supports the constructs operators write in practice: literals, `.`,
//! classes (`[a-z]`, `[^...]`, `\d`, `\w`, `\s` and their negations),
//! groups, alternation, the quantifiers `*`, `+`, `?` and `{m}`, `{m,}`,
//! `{m,n}`, and leading `^`/trailing `$` (implied anyway). Anything else is
//! rejected as INVALID_REGULAR_EXPRESSION rather than matched wrongly.
//! Matching backtracks under a step budget, so a pathological pattern fails
//! to match instead of stalling the coordinator.

use std::cell::Cell;

/// Steps a single match may take before it gives up (no match).
const STEP_BUDGET: usize = 100_000;
/// Longest pattern accepted.
const MAX_PATTERN_CHARS: usize = 1000;

#[derive(Debug, Clone)]
enum Node {
    /// One character from a set (`negated` inverts it).
    Set {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Group(Vec<Vec<Node>>),
    Repeat {
        node: Box<Node>,
        min: usize,
        max: Option<usize>,
    },
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    alternatives: Vec<Vec<Node>>,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
const SPACE: &[(char, char)] = &[(' ', ' '), ('\t', '\r')];

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn alternation(&mut self, depth: usize) -> Result<Vec<Vec<Node>>, ()> {
        if depth > 32 {
            return Err(());
        }
        let mut alts = vec![self.sequence(depth)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.sequence(depth)?);
        }
        Ok(alts)
    }

    fn sequence(&mut self, depth: usize) -> Result<Vec<Node>, ()> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.pos += 1;
            let atom = match c {
                '(' => {
                    if self.peek() == Some('?') {
                        return Err(());
                    }
                    let alts = self.alternation(depth + 1)?;
                    if self.next() != Some(')') {
                        return Err(());
                    }
                    Node::Group(alts)
                }
                '.' => Node::Set {
                    ranges: vec![],
                    negated: true,
                },
                '[' => self.class()?,
                '\\' => self.escape()?,
                '^' if self.pos == 1 => continue,
                '$' if self.pos == self.chars.len() => continue,
                '*' | '+' | '?' | '{' | '}' | ']' | '^' | '$' => return Err(()),
                c => Node::Set {
                    ranges: vec![(c, c)],
                    negated: false,
                },
            };
            seq.push(self.quantified(atom)?);
        }
        Ok(seq)
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, ()> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self.number().ok_or(())?;
                let max = match self.next() {
                    Some('}') => {
                        self.pos -= 1;
                        Some(min)
                    }
                    Some(',') if self.peek() == Some('}') => None,
                    Some(',') => Some(self.number().ok_or(())?),
                    _ => return Err(()),
                };
                if self.peek() != Some('}') || max.is_some_and(|m| m < min) {
                    return Err(());
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            // Lazy/possessive quantifiers are not supported.
            return Err(());
        }
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
        })
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars.get(start..self.pos)?.iter().collect();
        digits.parse().ok().filter(|n| *n <= 1000)
    }

    fn escape(&mut self) -> Result<Node, ()> {
        let c = self.next().ok_or(())?;
        let (ranges, negated): (&[(char, char)], bool) = match c {
            'd' => (DIGIT, false),
            'D' => (DIGIT, true),
            'w' => (WORD, false),
            'W' => (WORD, true),
            's' => (SPACE, false),
            'S' => (SPACE, true),
            c if c.is_ascii_alphanumeric() => return Err(()),
            c => {
                return Ok(Node::Set {
                    ranges: vec![(c, c)],
                    negated: false,
                });
            }
        };
        Ok(Node::Set {
            ranges: ranges.to_vec(),
            negated,
        })
    }

    fn class(&mut self) -> Result<Node, ()> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.next().ok_or(())?;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = match c {
                '\\' => match self.next().ok_or(())? {
                    'd' => {
                        ranges.extend_from_slice(DIGIT);
                        continue;
                    }
                    'w' => {
                        ranges.extend_from_slice(WORD);
                        continue;
                    }
                    's' => {
                        ranges.extend_from_slice(SPACE);
                        continue;
                    }
                    e if e.is_ascii_alphanumeric() => return Err(()),
                    e => e,
                },
                '[' => return Err(()),
                c => c,
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']') {
                self.pos += 1;
                let hi = self.next().ok_or(())?;
                if hi == '\\' || hi < lo {
                    return Err(());
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Node::Set { ranges, negated })
    }
}

impl Pattern {
    /// Compiles `pattern`; `Err` for syntax this matcher does not support.
    pub fn parse(pattern: &str) -> Result<Self, ()> {
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        if parser.chars.len() > MAX_PATTERN_CHARS {
            return Err(());
        }
        let alternatives = parser.alternation(0)?;
        if parser.pos != parser.chars.len() {
            return Err(());
        }
        Ok(Self { alternatives })
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let m = Matcher {
            text: &chars,
            steps: Cell::new(0),
        };
        m.alts(&self.alternatives, 0, &mut |end| end == chars.len())
    }
}

struct Matcher<'a> {
    text: &'a [char],
    steps: Cell<usize>,
}

impl Matcher<'_> {
    fn tick(&self) -> bool {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        n <= STEP_BUDGET
    }

    fn alts(&self, alts: &[Vec<Node>], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        alts.iter().any(|seq| self.seq(seq, i, k))
    }

    fn seq(&self, nodes: &[Node], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match nodes.split_first() {
            None => k(i),
            Some((first, rest)) => self.node(first, i, &mut |j| self.seq(rest, j, k)),
        }
    }

    fn node(&self, node: &Node, i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        if !self.tick() {
            return false;
        }
        match node {
            Node::Set { ranges, negated } => match self.text.get(i) {
                Some(c) if ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated => k(i + 1),
                _ => false,
            },
            Node::Group(alts) => self.alts(alts, i, k),
            Node::Repeat { node, min, max } => self.repeat(node, *min, *max, 0, i, k),
        }
    }

    fn repeat(
        &self,
        node: &Node,
        min: usize,
        max: Option<usize>,
        count: usize,
        i: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        if max.is_none_or(|m| count < m)
            && self.node(node, i, &mut |j| {
                (j != i || count < min) && self.repeat(node, min, max, count + 1, j, k)
            })
        {
            return true;
        }
        count >= min && k(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::parse(p).map(|p| p.matches(t)).unwrap_or(false)
    }

    #[test]
    fn matches_whole_ids() {
        assert!(m("tx-.*", "tx-1"));
        assert!(!m("tx", "tx-1"));
        assert!(m("^app-[0-9]+$", "app-42"));
        assert!(!m("app-[0-9]+", "app-4x"));
        assert!(m("(a|b)c?\\d{2}", "b07"));
        assert!(m("[^x]+", "abc"));
        assert!(!m("[^x]+", "axc"));
        assert!(m("a{2,}", "aaaa"));
        assert!(!m("a{2,3}", "aaaa"));
        assert!(m("\\w+\\.v\\d", "orders.v2"));
        assert!(!m("(a*)*b", &"a".repeat(40)));
    }

    #[test]
    fn rejects_unsupported_syntax() {
        for p in [
            "(", "a)", "*a", "[a", "a{3,1}", "(?i)a", "a*?", "\\p{L}", "[z-a]",
        ] {
            assert!(Pattern::parse(p).is_err(), "{p}");
        }
    }
}
