//! `authz`: how long one authorization check takes with many ACLs — the check every
//! request of an authorizing broker makes, once per resource it names.
//!
//! It builds the broker's authorizer over `--acls` ACLs (literal names, prefixes and the
//! `*` wildcard; topics, groups and transactional ids; allows and denies; several
//! principals, `User:*` and a few host-bound ones), then times `--checks` checks per round
//! over a fixed mix of requests (names with literal ACLs, names under a prefix, names no
//! ACL names; allowed and denied), and reports nanoseconds per check over the rounds. No
//! broker and no network: the figure is the authorizer's alone. The ACLs and requests come
//! from a fixed seed, so every run measures the same work.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use serde::Serialize;
use sluice_security::KafkaPrincipal;
use sluice_security::acl::{
    AclBinding, AclOperation, AclPermissionType, AuthorizerData, PatternType, ResourceType,
};

use crate::cli::AuthzArgs;

/// Principals the ACLs are for (besides `User:*`).
const PRINCIPALS: u64 = 20;

/// Distinct requests cycled through while timing (enough to defeat branch prediction of a
/// single request, few enough to stay in cache like a broker's hot topics).
const REQUESTS: usize = 4096;

/// A small deterministic generator (xorshift64*), so runs measure the same ACLs.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One of `items` (READ when there are none).
    fn pick(&mut self, items: &[AclOperation]) -> AclOperation {
        let at = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(at).copied().unwrap_or(AclOperation::Read)
    }
}

/// What was built and measured.
#[derive(Debug, Serialize)]
pub struct AuthzReport {
    pub acls: usize,
    pub literal: usize,
    pub prefixed: usize,
    pub wildcard: usize,
    pub principals: u64,
    pub checks_per_round: u64,
    pub rounds: u32,
    /// Nanoseconds per check of each round.
    pub ns_per_check: Vec<f64>,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
    /// Share of the checks that were allowed (so both outcomes are measured).
    pub allowed_percent: f64,
}

impl AuthzReport {
    pub fn to_table(&self) -> String {
        format!(
            "authz: {} ACLs ({} literal, {} prefixed, {} wildcard; {} principals and User:*)\n\
             checks: {} per round, {} rounds, {:.1} % allowed\n\
             ns/check: median {:.1}, min {:.1}, max {:.1}\n",
            self.acls,
            self.literal,
            self.prefixed,
            self.wildcard,
            self.principals,
            self.checks_per_round,
            self.rounds,
            self.allowed_percent,
            self.median_ns,
            self.min_ns,
            self.max_ns,
        )
    }
}

fn principal(i: u64) -> String {
    format!("User:app-{i}")
}

/// The `i`th ACL: mostly topics, a third of them prefixed, one in fifty on `*`.
fn acl(i: usize, rng: &mut Seeded) -> AclBinding {
    use AclOperation::*;
    let resource_type = match rng.below(10) {
        0 => ResourceType::Group,
        1 => ResourceType::TransactionalId,
        _ => ResourceType::Topic,
    };
    let (pattern_type, resource_name) = match (i % 50, i % 3) {
        (0, _) => (PatternType::Literal, "*".to_string()),
        (_, 0) => (PatternType::Prefixed, format!("team-{}-", rng.below(200))),
        _ => (PatternType::Literal, format!("orders-{}", rng.below(2000))),
    };
    let principal = match rng.below(20) {
        0 => "User:*".to_string(),
        _ => principal(rng.below(PRINCIPALS)),
    };
    let host = match rng.below(25) {
        0 => format!("10.0.0.{}", rng.below(8)),
        _ => "*".to_string(),
    };
    let operation = rng.pick(&[Read, Write, Describe, All, Create, Alter]);
    let permission = match rng.below(10) {
        0 => AclPermissionType::Deny,
        _ => AclPermissionType::Allow,
    };
    AclBinding {
        resource_type,
        resource_name,
        pattern_type,
        principal,
        host,
        operation,
        permission,
    }
}

/// One request to check.
struct Request {
    principal: KafkaPrincipal,
    host: IpAddr,
    op: AclOperation,
    kind: ResourceType,
    name: String,
}

fn request(rng: &mut Seeded) -> Request {
    use AclOperation::*;
    let name = match rng.below(3) {
        0 => format!("orders-{}", rng.below(2000)),
        1 => format!("team-{}-events-{}", rng.below(200), rng.below(100)),
        _ => format!("unlisted-{}", rng.below(1000)),
    };
    let kind = match rng.below(10) {
        0 => ResourceType::Group,
        1 => ResourceType::TransactionalId,
        _ => ResourceType::Topic,
    };
    Request {
        principal: KafkaPrincipal::user(&format!("app-{}", rng.below(PRINCIPALS + 2))),
        host: IpAddr::V4(Ipv4Addr::new(10, 0, 0, rng.below(16) as u8)),
        op: rng.pick(&[Read, Write, Describe]),
        kind,
        name,
    }
}

pub fn run(args: &AuthzArgs) -> anyhow::Result<AuthzReport> {
    let mut rng = Seeded(0x5eed_a11c_e5ee_d5ed);
    let acls = usize::try_from(args.acls)?;
    let bindings: Vec<AclBinding> = (0..acls).map(|i| acl(i, &mut rng)).collect();
    let count = |p: PatternType, wildcard: bool| {
        bindings
            .iter()
            .filter(|b| b.pattern_type == p && (b.resource_name == "*") == wildcard)
            .count()
    };
    let (literal, prefixed, wildcard) = (
        count(PatternType::Literal, false),
        count(PatternType::Prefixed, false),
        count(PatternType::Literal, true),
    );
    let authorizer = AuthorizerData::new(bindings, Vec::new(), false);
    let requests: Vec<Request> = (0..REQUESTS).map(|_| request(&mut rng)).collect();
    let check = |r: &Request| authorizer.authorize(&r.principal, r.host, r.op, r.kind, &r.name);
    let allowed = requests.iter().filter(|r| check(r)).count();
    let checks = usize::try_from(args.checks)?;
    // One untimed round warms the caches and the CPU's frequency.
    for r in requests.iter().cycle().take(checks) {
        black_box(check(black_box(r)));
    }
    let mut per_round = Vec::with_capacity(args.rounds as usize);
    for round in 0..args.rounds {
        let started = Instant::now();
        for r in requests.iter().cycle().take(checks) {
            black_box(check(black_box(r)));
        }
        let ns = started.elapsed().as_nanos() as f64 / checks as f64;
        if !args.quiet {
            eprintln!("round {}: {ns:.1} ns/check", round + 1);
        }
        per_round.push(ns);
    }
    let mut sorted = per_round.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    Ok(AuthzReport {
        acls,
        literal,
        prefixed,
        wildcard,
        principals: PRINCIPALS,
        checks_per_round: args.checks,
        rounds: args.rounds,
        min_ns: sorted.first().copied().unwrap_or(f64::NAN),
        max_ns: sorted.last().copied().unwrap_or(f64::NAN),
        median_ns: median,
        ns_per_check: per_round,
        allowed_percent: allowed as f64 * 100.0 / REQUESTS as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed builds the same mix every run, so figures of different runs compare.
    #[test]
    fn the_acls_and_requests_are_the_same_every_run() {
        let args = AuthzArgs {
            acls: 1000,
            checks: 5000,
            rounds: 2,
            json: false,
            quiet: true,
        };
        let (a, b) = (run(&args).unwrap(), run(&args).unwrap());
        assert_eq!(
            (a.acls, a.literal, a.prefixed, a.wildcard),
            (1000, 653, 327, 20)
        );
        assert_eq!(
            (b.literal, b.prefixed, b.wildcard, b.allowed_percent),
            (a.literal, a.prefixed, a.wildcard, a.allowed_percent)
        );
        assert!(a.allowed_percent > 10.0 && a.allowed_percent < 90.0);
        assert_eq!(a.ns_per_check.len(), 2);
    }
}
