//! The authorizer against a table of cases after Kafka's `StandardAuthorizerTest` and
//! `AclAuthorizerTest`, and against a naive reference model on random ACL sets.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use AclOperation::*;
use AclPermissionType::{Allow, Deny};
use PatternType::{Literal, Prefixed};
use ResourceType::{Cluster, Group, Topic, TransactionalId};

fn acl(
    principal: &str,
    permission: AclPermissionType,
    operation: AclOperation,
    host: &str,
    kind: ResourceType,
    pattern: PatternType,
    name: &str,
) -> AclBinding {
    AclBinding {
        resource_type: kind,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: host.into(),
        operation,
        permission,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn user(name: &str) -> KafkaPrincipal {
    KafkaPrincipal::user(name)
}

struct Case {
    name: &'static str,
    acls: Vec<AclBinding>,
    allow_if_no_acl: bool,
    principal: &'static str,
    host: &'static str,
    op: AclOperation,
    kind: ResourceType,
    resource: &'static str,
    allowed: bool,
}

fn case(
    name: &'static str,
    acls: Vec<AclBinding>,
    (principal, host): (&'static str, &'static str),
    (op, kind, resource): (AclOperation, ResourceType, &'static str),
    allowed: bool,
) -> Case {
    Case {
        name,
        acls,
        allow_if_no_acl: false,
        principal,
        host,
        op,
        kind,
        resource,
        allowed,
    }
}

const H1: &str = "192.168.1.1";
const H2: &str = "192.168.1.2";

fn cases() -> Vec<Case> {
    let alice = "User:alice";
    let allow_read = |name: &str, pattern| acl(alice, Allow, Read, "*", Topic, pattern, name);
    let mut v = vec![
        case(
            "no acls, default deny",
            vec![],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "literal allow",
            vec![allow_read("t", Literal)],
            ("alice", H1),
            (Read, Topic, "t"),
            true,
        ),
        case(
            "literal allow other topic",
            vec![allow_read("u", Literal)],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "literal allow other principal",
            vec![allow_read("t", Literal)],
            ("bob", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "literal allow other op",
            vec![allow_read("t", Literal)],
            ("alice", H1),
            (Write, Topic, "t"),
            false,
        ),
        case(
            "wildcard resource",
            vec![allow_read("*", Literal)],
            ("alice", H1),
            (Read, Topic, "anything"),
            true,
        ),
        case(
            "wildcard principal",
            vec![acl("User:*", Allow, Read, "*", Topic, Literal, "t")],
            ("bob", H1),
            (Read, Topic, "t"),
            true,
        ),
        case(
            "prefix allow",
            vec![allow_read("fo", Prefixed)],
            ("alice", H1),
            (Read, Topic, "foo"),
            true,
        ),
        case(
            "prefix equal to name",
            vec![allow_read("foo", Prefixed)],
            ("alice", H1),
            (Read, Topic, "foo"),
            true,
        ),
        case(
            "prefix longer than name",
            vec![allow_read("foobar", Prefixed)],
            ("alice", H1),
            (Read, Topic, "foo"),
            false,
        ),
        case(
            "prefix not a prefix",
            vec![allow_read("bar", Prefixed)],
            ("alice", H1),
            (Read, Topic, "foo"),
            false,
        ),
        case(
            "prefix star is literal",
            vec![allow_read("*", Prefixed)],
            ("alice", H1),
            (Read, Topic, "foo"),
            false,
        ),
        case(
            "deny wins over allow",
            vec![
                allow_read("t", Literal),
                acl(alice, Deny, Read, "*", Topic, Literal, "t"),
            ],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "wildcard deny wins over literal allow",
            vec![
                allow_read("t", Literal),
                acl("User:*", Deny, Read, "*", Topic, Literal, "*"),
            ],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "prefix deny wins over literal allow",
            vec![
                allow_read("topic", Literal),
                acl(alice, Deny, Read, "*", Topic, Prefixed, "top"),
            ],
            ("alice", H1),
            (Read, Topic, "topic"),
            false,
        ),
        case(
            "deny other op does not deny",
            vec![
                allow_read("t", Literal),
                acl(alice, Deny, Write, "*", Topic, Literal, "t"),
            ],
            ("alice", H1),
            (Read, Topic, "t"),
            true,
        ),
        case(
            "deny all denies read",
            vec![
                allow_read("t", Literal),
                acl(alice, Deny, All, "*", Topic, Literal, "t"),
            ],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "allow all allows write",
            vec![acl(alice, Allow, All, "*", Topic, Literal, "t")],
            ("alice", H1),
            (Write, Topic, "t"),
            true,
        ),
        case(
            "allow read implies describe",
            vec![allow_read("t", Literal)],
            ("alice", H1),
            (Describe, Topic, "t"),
            true,
        ),
        case(
            "allow write implies describe",
            vec![acl(alice, Allow, Write, "*", Topic, Literal, "t")],
            ("alice", H1),
            (Describe, Topic, "t"),
            true,
        ),
        case(
            "allow delete implies describe",
            vec![acl(alice, Allow, Delete, "*", Topic, Literal, "t")],
            ("alice", H1),
            (Describe, Topic, "t"),
            true,
        ),
        case(
            "allow alter implies describe",
            vec![acl(alice, Allow, Alter, "*", Topic, Literal, "t")],
            ("alice", H1),
            (Describe, Topic, "t"),
            true,
        ),
        case(
            "allow create does not imply describe",
            vec![acl(alice, Allow, Create, "*", Topic, Literal, "t")],
            ("alice", H1),
            (Describe, Topic, "t"),
            false,
        ),
        case(
            "allow alter configs implies describe configs",
            vec![acl(alice, Allow, AlterConfigs, "*", Topic, Literal, "t")],
            ("alice", H1),
            (DescribeConfigs, Topic, "t"),
            true,
        ),
        case(
            "allow describe does not imply read",
            vec![acl(alice, Allow, Describe, "*", Topic, Literal, "t")],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "deny read does not deny describe",
            vec![
                allow_read("t", Literal),
                acl(alice, Deny, Read, "*", Topic, Literal, "t"),
                acl(alice, Allow, Describe, "*", Topic, Literal, "t"),
            ],
            ("alice", H1),
            (Describe, Topic, "t"),
            true,
        ),
        case(
            "deny read keeps the describe allow read implies",
            vec![
                allow_read("t", Literal),
                acl(alice, Deny, Read, "*", Topic, Literal, "t"),
            ],
            ("alice", H1),
            (Describe, Topic, "t"),
            true,
        ),
        case(
            "host match",
            vec![acl(alice, Allow, Read, H1, Topic, Literal, "t")],
            ("alice", H1),
            (Read, Topic, "t"),
            true,
        ),
        case(
            "host mismatch",
            vec![acl(alice, Allow, Read, H1, Topic, Literal, "t")],
            ("alice", H2),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "deny from one host only",
            vec![
                allow_read("t", Literal),
                acl(alice, Deny, Read, H2, Topic, Literal, "t"),
            ],
            ("alice", H1),
            (Read, Topic, "t"),
            true,
        ),
        case(
            "deny from that host",
            vec![
                allow_read("t", Literal),
                acl(alice, Deny, Read, H2, Topic, Literal, "t"),
            ],
            ("alice", H2),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "hostname never matches",
            vec![acl(alice, Allow, Read, "localhost", Topic, Literal, "t")],
            ("alice", "127.0.0.1"),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "group acl does not apply to topic",
            vec![acl(alice, Allow, Read, "*", Group, Literal, "t")],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "group read",
            vec![acl(alice, Allow, Read, "*", Group, Literal, "g")],
            ("alice", H1),
            (Read, Group, "g"),
            true,
        ),
        case(
            "cluster create",
            vec![acl(
                alice,
                Allow,
                Create,
                "*",
                Cluster,
                Literal,
                "kafka-cluster",
            )],
            ("alice", H1),
            (Create, Cluster, "kafka-cluster"),
            true,
        ),
        case(
            "cluster idempotent write",
            vec![acl(
                alice,
                Allow,
                IdempotentWrite,
                "*",
                Cluster,
                Literal,
                "kafka-cluster",
            )],
            ("alice", H1),
            (IdempotentWrite, Cluster, "kafka-cluster"),
            true,
        ),
        case(
            "transactional id write",
            vec![acl(
                alice,
                Allow,
                Write,
                "*",
                TransactionalId,
                Prefixed,
                "tx-",
            )],
            ("alice", H1),
            (Write, TransactionalId, "tx-1"),
            true,
        ),
        case(
            "transactional id describe implied",
            vec![acl(
                alice,
                Allow,
                Write,
                "*",
                TransactionalId,
                Literal,
                "tx",
            )],
            ("alice", H1),
            (Describe, TransactionalId, "tx"),
            true,
        ),
        case(
            "other principal type",
            vec![acl("Group:alice", Allow, Read, "*", Topic, Literal, "t")],
            ("alice", H1),
            (Read, Topic, "t"),
            false,
        ),
        case(
            "non-ascii prefix",
            vec![allow_read("tö", Prefixed)],
            ("alice", H1),
            (Read, Topic, "töpic"),
            true,
        ),
        case(
            "prefix cut inside a character",
            vec![allow_read("t", Prefixed)],
            ("alice", H1),
            (Read, Topic, "ö"),
            false,
        ),
    ];
    // allow.everyone.if.no.acl.found: only when no ACL applies to the resource.
    let mut everyone =
        |name: &'static str, acls: Vec<AclBinding>, resource: &'static str, allowed: bool| {
            let mut c = case(name, acls, ("alice", H1), (Read, Topic, resource), allowed);
            c.allow_if_no_acl = true;
            v.push(c);
        };
    everyone("allow everyone, no acls", vec![], "t", true);
    everyone(
        "allow everyone, acl for another resource",
        vec![acl("User:bob", Allow, Read, "*", Topic, Literal, "u")],
        "t",
        true,
    );
    everyone(
        "allow everyone, acl for another principal on it",
        vec![acl("User:bob", Allow, Read, "*", Topic, Literal, "t")],
        "t",
        false,
    );
    everyone(
        "allow everyone, wildcard acl applies",
        vec![acl("User:bob", Allow, Read, "*", Topic, Literal, "*")],
        "t",
        false,
    );
    everyone(
        "allow everyone, prefixed acl applies",
        vec![acl("User:bob", Allow, Write, "*", Topic, Prefixed, "t")],
        "t",
        false,
    );
    everyone(
        "allow everyone, deny for alice",
        vec![acl(alice, Deny, Read, "*", Topic, Literal, "t")],
        "t",
        false,
    );
    v
}

#[test]
fn the_authorizer_decides_as_kafka_does() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for c in cases {
        let data = AuthorizerData::new(c.acls.clone(), vec![user("admin")], c.allow_if_no_acl);
        assert_eq!(
            data.authorize(&user(c.principal), ip(c.host), c.op, c.kind, c.resource),
            c.allowed,
            "{}",
            c.name
        );
        // A super user is allowed whatever the ACLs say.
        assert!(
            data.authorize(&user("admin"), ip(c.host), c.op, c.kind, c.resource),
            "{}",
            c.name
        );
    }
}

#[test]
fn authorize_by_resource_type_follows_kip_679() {
    let alice = "User:alice";
    let write =
        |permission, pattern, name: &str| acl(alice, permission, Write, "*", Topic, pattern, name);
    let cases: Vec<(&str, Vec<AclBinding>, bool)> = vec![
        ("nothing", vec![], false),
        ("one literal allow", vec![write(Allow, Literal, "t")], true),
        (
            "allow denied by the same literal",
            vec![write(Allow, Literal, "t"), write(Deny, Literal, "t")],
            false,
        ),
        (
            "allow denied by a prefix",
            vec![write(Allow, Literal, "topic"), write(Deny, Prefixed, "top")],
            false,
        ),
        (
            "prefixed allow dominated by a shorter prefix deny",
            vec![
                write(Allow, Prefixed, "topic"),
                write(Deny, Prefixed, "top"),
            ],
            false,
        ),
        (
            "prefixed allow not dominated by a literal deny",
            vec![write(Allow, Prefixed, "top"), write(Deny, Literal, "top")],
            true,
        ),
        (
            "wildcard deny wins",
            vec![write(Allow, Literal, "t"), write(Deny, Literal, "*")],
            false,
        ),
        (
            "one of two allows survives",
            vec![
                write(Allow, Literal, "a"),
                write(Allow, Literal, "b"),
                write(Deny, Literal, "a"),
            ],
            true,
        ),
        (
            "allow all counts",
            vec![acl(alice, Allow, All, "*", Topic, Literal, "t")],
            true,
        ),
        (
            "read does not count for write",
            vec![acl(alice, Allow, Read, "*", Topic, Literal, "t")],
            false,
        ),
    ];
    for (name, acls, want) in cases {
        let data = AuthorizerData::new(acls, vec![user("admin")], false);
        assert_eq!(
            data.authorize_by_resource_type(&user("alice"), ip(H1), Write, Topic),
            want,
            "{name}"
        );
        assert!(
            data.authorize_by_resource_type(&user("admin"), ip(H1), Write, Topic),
            "{name}"
        );
    }
}

#[test]
fn authorized_operations_list_the_allowed_supported_operations() {
    let data = AuthorizerData::new(
        vec![acl("User:alice", Allow, Read, "*", Topic, Literal, "t")],
        vec![],
        false,
    );
    let bits = data.authorized_operations(&user("alice"), ip(H1), Topic, "t");
    assert_eq!(bits, (1 << Read.code()) | (1 << Describe.code()));
    assert_eq!(
        data.authorized_operations(&user("bob"), ip(H1), Topic, "t"),
        0
    );
}

/// The reference model: every rule applied by a linear scan over the bindings.
fn naive(
    acls: &[AclBinding],
    allow_if_no_acl: bool,
    principal: &str,
    host: &str,
    op: AclOperation,
    kind: ResourceType,
    name: &str,
) -> bool {
    let applies_to_resource = |b: &&AclBinding| {
        b.resource_type == kind
            && match b.pattern_type {
                Literal => b.resource_name == name || b.resource_name == "*",
                Prefixed => name.starts_with(b.resource_name.as_str()),
                _ => false,
            }
    };
    let on_resource: Vec<&AclBinding> = acls.iter().filter(applies_to_resource).collect();
    let matching: Vec<&&AclBinding> = on_resource
        .iter()
        .filter(|b| {
            (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*")
        })
        .collect();
    let denied = matching
        .iter()
        .any(|b| b.permission == Deny && (b.operation == op || b.operation == All));
    let implied = |granted: AclOperation| match op {
        Describe => [Describe, Read, Write, Delete, Alter].contains(&granted),
        DescribeConfigs => [DescribeConfigs, AlterConfigs].contains(&granted),
        _ => granted == op,
    };
    let allowed = matching
        .iter()
        .any(|b| b.permission == Allow && (b.operation == All || implied(b.operation)));
    if denied {
        false
    } else if allowed {
        true
    } else {
        on_resource.is_empty() && allow_if_no_acl
    }
}

fn arb_binding() -> impl Strategy<Value = AclBinding> {
    (
        prop::sample::select(vec!["User:a", "User:b", "User:*"]),
        prop::sample::select(vec![Allow, Deny]),
        prop::sample::select(vec![Read, Write, Describe, All, Alter, Create]),
        prop::sample::select(vec!["*", H1, H2]),
        prop::sample::select(vec![Topic, Group]),
        prop::sample::select(vec![Literal, Prefixed]),
        prop::sample::select(vec!["*", "t", "to", "top", "topic", "x", "tx"]),
    )
        .prop_map(|(p, perm, op, host, kind, pattern, name)| {
            acl(p, perm, op, host, kind, pattern, name)
        })
}

proptest! {
    #[test]
    fn the_index_agrees_with_the_reference_model(
        acls in prop::collection::vec(arb_binding(), 0..12),
        allow_if_no_acl in any::<bool>(),
        principal in prop::sample::select(vec!["a", "b", "c"]),
        host in prop::sample::select(vec![H1, H2]),
        op in prop::sample::select(vec![Read, Write, Describe, Create, Delete, Alter]),
        kind in prop::sample::select(vec![Topic, Group]),
        name in prop::sample::select(vec!["t", "to", "top", "topic", "topics", "x", "tx", "*"]),
    ) {
        let data = AuthorizerData::new(acls.clone(), vec![], allow_if_no_acl);
        let full = format!("User:{principal}");
        prop_assert_eq!(
            data.authorize(&user(principal), ip(host), op, kind, name),
            naive(&acls, allow_if_no_acl, &full, host, op, kind, name)
        );
    }
}
