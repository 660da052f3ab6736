//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SCRAM users live in
//! the metadata as salted credentials. The client sends the SaltedPassword (PBKDF2 of the
//! password), never the password; the broker derives StoredKey and ServerKey from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use sluice_security::sasl::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
use sluice_security::sasl::{ScramCredential, ScramMechanism};

use crate::broker::Broker;
use crate::metadata::{CommitError, MetadataImage, MetadataRecord};
use crate::request::{Reply, RequestContext};
use crate::security::scram_record;

/// Handles DescribeUserScramCredentials.
pub async fn describe_user_scram_credentials(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> Reply {
    let image = broker.metadata.image();
    Reply::Now(ResponseKind::DescribeUserScramCredentials(describe(
        &image, req,
    )))
}

fn user_result(user: &str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.into()))
}

fn describe(
    image: &MetadataImage,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let credentials = |user: &str| -> Vec<CredentialInfo> {
        image
            .security
            .scram_user(user)
            .into_iter()
            .flatten()
            .filter_map(|(mechanism, c)| {
                let m = ScramMechanism::for_name(mechanism)?;
                Some(
                    CredentialInfo::default()
                        .with_mechanism(m.kafka_type())
                        .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX)),
                )
            })
            .collect()
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        None => image
            .security
            .scram_users()
            .map(|(user, _)| user_result(user).with_credential_infos(credentials(user)))
            .collect(),
        Some(users) => {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for u in &users {
                *seen.entry(u.name.to_string()).or_default() += 1;
            }
            let mut reported = Vec::new();
            let mut results = Vec::new();
            for u in users {
                let name = u.name.to_string();
                if reported.contains(&name) {
                    continue;
                }
                reported.push(name.clone());
                let result = user_result(&name);
                results.push(if seen.get(&name).copied().unwrap_or(0) > 1 {
                    with_error(
                        result,
                        ResponseError::DuplicateResource,
                        "Cannot describe SCRAM credentials for the same user twice in a single request",
                    )
                } else if image.security.scram_user(&name).is_none() {
                    with_error(
                        result,
                        ResponseError::ResourceNotFound,
                        "Attempt to describe a user credential that does not exist",
                    )
                } else {
                    result.with_credential_infos(credentials(&name))
                });
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn with_error(
    r: DescribeUserScramCredentialsResult,
    error: ResponseError,
    message: &str,
) -> DescribeUserScramCredentialsResult {
    r.with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.into())))
}

/// One requested change, checked.
enum Change {
    Upsert(ScramMechanism, ScramCredential),
    Delete(ScramMechanism),
}

/// Handles AlterUserScramCredentials.
pub async fn alter_user_scram_credentials(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> Reply {
    let outcome = broker
        .metadata
        .propose(|image| Ok::<_, CommitError>(alter(image, &req)))
        .await;
    let results = match outcome {
        Ok(results) => results,
        Err(e) => {
            let message = e.to_string();
            users_in_order(&req)
                .into_iter()
                .map(|user| error_result(&user, ResponseError::UnknownServerError, &message))
                .collect()
        }
    };
    Reply::Now(ResponseKind::AlterUserScramCredentials(
        AlterUserScramCredentialsResponse::default().with_results(results),
    ))
}

fn users_in_order(req: &AlterUserScramCredentialsRequest) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    let names = req
        .deletions
        .iter()
        .map(|d| &d.name)
        .chain(req.upsertions.iter().map(|u| &u.name));
    for name in names {
        if !users.iter().any(|u| u == name.as_str()) {
            users.push(name.to_string());
        }
    }
    users
}

fn error_result(
    user: &str,
    error: ResponseError,
    message: &str,
) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user.into()))
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.into())))
}

/// Checks every change against `image` (Kafka's `ScramControlManager` rules); a user with
/// any invalid change gets that error and none of its changes.
fn alter(
    image: &MetadataImage,
    req: &AlterUserScramCredentialsRequest,
) -> (Vec<MetadataRecord>, Vec<AlterUserScramCredentialsResult>) {
    let mut changes: BTreeMap<String, Result<Vec<Change>, (ResponseError, String)>> =
        BTreeMap::new();
    let mut pairs: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for (name, mechanism) in req
        .deletions
        .iter()
        .map(|d| (&d.name, d.mechanism))
        .chain(req.upsertions.iter().map(|u| (&u.name, u.mechanism)))
    {
        *pairs.entry((name.to_string(), mechanism)).or_default() += 1;
    }
    let mut note = |user: &str, change: Result<Change, (ResponseError, &str)>| {
        let entry = changes.entry(user.to_string()).or_insert(Ok(Vec::new()));
        match (entry, change) {
            (Ok(list), Ok(c)) => list.push(c),
            (e @ Ok(_), Err((code, message))) => *e = Err((code, message.to_string())),
            (Err(_), _) => {}
        }
    };
    for d in &req.deletions {
        let user = d.name.as_str();
        note(
            user,
            check(user, d.mechanism, &pairs).and_then(|m| {
                match image.security.scram(user, m.name()) {
                    Some(_) => Ok(Change::Delete(m)),
                    None => Err((
                        ResponseError::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    )),
                }
            }),
        );
    }
    for u in &req.upsertions {
        let user = u.name.as_str();
        let checked = check(user, u.mechanism, &pairs).and_then(|m| {
            let iterations = u32::try_from(u.iterations).unwrap_or(0);
            if iterations < MIN_ITERATIONS {
                Err((ResponseError::UnacceptableCredential, "Too few iterations"))
            } else if iterations > MAX_ITERATIONS {
                Err((ResponseError::UnacceptableCredential, "Too many iterations"))
            } else if u.salt.is_empty() || u.salted_password.is_empty() {
                Err((
                    ResponseError::UnacceptableCredential,
                    "Salt and salted password must not be empty",
                ))
            } else {
                Ok(Change::Upsert(
                    m,
                    ScramCredential::from_salted_password(
                        m,
                        &u.salted_password,
                        &u.salt,
                        iterations,
                    ),
                ))
            }
        });
        note(user, checked);
    }
    let mut records = Vec::new();
    let results = users_in_order(req)
        .into_iter()
        .map(|user| match changes.remove(&user) {
            Some(Ok(list)) => {
                for change in list {
                    records.push(match change {
                        Change::Upsert(m, c) => scram_record(&user, m, &c),
                        Change::Delete(m) => MetadataRecord::ScramCredentialDeleted {
                            user: user.clone(),
                            mechanism: m.name().to_string(),
                        },
                    });
                }
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user))
            }
            Some(Err((code, message))) => error_result(&user, code, &message),
            None => {
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user))
            }
        })
        .collect();
    (records, results)
}

/// The checks every change of `user` for `mechanism` passes first.
fn check<'a>(
    user: &str,
    mechanism: i8,
    pairs: &BTreeMap<(String, i8), usize>,
) -> Result<ScramMechanism, (ResponseError, &'a str)> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    if pairs
        .get(&(user.to_string(), mechanism))
        .copied()
        .unwrap_or(0)
        > 1
    {
        return Err((
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request",
        ));
    }
    ScramMechanism::from_kafka_type(mechanism).ok_or((
        ResponseError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism",
    ))
}
