//! The voters of the metadata quorum, as `--voters` lists them (Kafka's
//! `controller.quorum.voters`): `id@host:port` of each node's cluster listener.

use std::fmt;
use std::str::FromStr;

use crate::transport::NodeId;

/// One voter: a node id and where its cluster listener is reached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Voter {
    /// The node's id.
    pub id: NodeId,
    /// `host:port` of its cluster listener.
    pub addr: String,
}

/// Every voter, by node id; ids and addresses are unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voters(Vec<Voter>);

impl Voters {
    /// The voter with node id `id`.
    pub fn get(&self, id: NodeId) -> Option<&Voter> {
        self.0.iter().find(|v| v.id == id)
    }

    /// Every voter, by node id.
    pub fn iter(&self) -> impl Iterator<Item = &Voter> {
        self.0.iter()
    }

    /// The node ids, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        self.0.iter().map(|v| v.id).collect()
    }

    /// The lowest node id: the node that forms a new quorum.
    pub fn lowest(&self) -> Option<NodeId> {
        self.0.first().map(|v| v.id)
    }

    /// How many voters there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a parsed list.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Voters {
    type Err = String;

    /// Parses `1@host:port,2@host:port,…`, refusing duplicate ids or addresses.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut voters = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let voter = parse_voter(entry)?;
            if voters.iter().any(|v: &Voter| v.id == voter.id) {
                return Err(format!("node id {} is listed twice", voter.id));
            }
            if voters.iter().any(|v: &Voter| v.addr == voter.addr) {
                return Err(format!("address {} is listed twice", voter.addr));
            }
            voters.push(voter);
        }
        if voters.is_empty() {
            return Err("no voter listed; expected id@host:port,…".into());
        }
        voters.sort();
        Ok(Self(voters))
    }
}

/// One `id@host:port`.
fn parse_voter(entry: &str) -> Result<Voter, String> {
    let bad = || format!("'{entry}' is not id@host:port");
    let (id, addr) = entry.split_once('@').ok_or_else(bad)?;
    let id: NodeId = id.trim().parse().map_err(|_| bad())?;
    if id < 0 {
        return Err(format!("'{entry}' has a negative node id"));
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(Voter {
        id,
        addr: addr.to_string(),
    })
}

impl fmt::Display for Voters {
    /// The canonical form: by node id, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}@{}", v.id, v.addr)?;
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for Voters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_sorted_and_print_canonically() {
        let voters: Voters = " 3@h3:9193, 1@127.0.0.1:9191,2@[::1]:9192 "
            .parse()
            .unwrap();
        assert_eq!(voters.ids(), vec![1, 2, 3]);
        assert_eq!(voters.lowest(), Some(1));
        assert_eq!(voters.get(2).unwrap().addr, "[::1]:9192");
        assert_eq!(
            voters.to_string(),
            "1@127.0.0.1:9191,2@[::1]:9192,3@h3:9193"
        );
        assert_eq!(voters.to_string().parse::<Voters>().unwrap(), voters);
    }

    #[test]
    fn bad_voter_lists_say_what_is_wrong() {
        for (text, error) in [
            ("", "no voter listed; expected id@host:port,…"),
            ("1@h:1,1@g:2", "node id 1 is listed twice"),
            ("1@h:1,2@h:1", "address h:1 is listed twice"),
            ("1h:1", "'1h:1' is not id@host:port"),
            ("x@h:1", "'x@h:1' is not id@host:port"),
            ("1@h", "'1@h' is not id@host:port"),
            ("1@h:0", "'1@h:0' is not id@host:port"),
            ("1@:5", "'1@:5' is not id@host:port"),
            ("-1@h:5", "'-1@h:5' has a negative node id"),
        ] {
            assert_eq!(text.parse::<Voters>().unwrap_err(), error, "{text}");
        }
    }
}
