//! The SASL exchange of one connection (KIP-43, KIP-152, KIP-368), as Kafka's
//! `SaslServerAuthenticator`: SaslHandshake picks an enabled mechanism (or fails with
//! UNSUPPORTED_SASL_MECHANISM and the list), then the tokens ride in SaslAuthenticate
//! (v1 handshake) or as raw frames (v0). A failure is answered with
//! SASL_AUTHENTICATION_FAILED after `connection.failed.authentication.delay.ms` and the
//! connection closes. A session gets a lifetime from `connections.max.reauth.ms` and the
//! credential's expiry; re-authenticating must keep the mechanism and the principal.
//!
//! On listeners without SASL these APIs reach the handler table instead, which answers
//! ILLEGAL_SASL_STATE and keeps the connection, as Kafka does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use sluice_security::sasl::{AuthFailure, Mechanism, ServerMechanism, Step};

use crate::broker::Broker;
use crate::request::{KafkaPrincipal, Reply, RequestContext};
use crate::session::{Authenticated, SaslState, Session};

/// What the connection does after a SASL request.
pub(crate) enum SaslOutcome {
    /// Answer and go on.
    Reply(ResponseKind),
    /// Answer (a raw token after SaslHandshake v0) and go on.
    RawReply(Bytes),
    /// Answer, then close.
    ReplyThenClose(ResponseKind),
    /// Close without answering.
    Close,
}

/// Handles SaslHandshake on a SASL listener.
pub(crate) fn handshake(
    session: &mut Session,
    broker: &Broker,
    request: &SaslHandshakeRequest,
    version: i16,
) -> SaslOutcome {
    let security = &broker.security;
    let offered: Vec<StrBytes> = security
        .mechanisms
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    let respond = |error: Option<ResponseError>| {
        ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_mechanisms(offered.clone()),
        )
    };
    let chosen =
        Mechanism::for_name(&request.mechanism).filter(|m| security.mechanisms.contains(m));
    let Some(mechanism) = chosen else {
        tracing::info!(
            peer = %session.identity().peer,
            mechanism = %request.mechanism.as_str(),
            "SASL mechanism not enabled; closing"
        );
        security
            .auth_metrics
            .record(&session.identity().listener, "unsupported", false);
        return SaslOutcome::ReplyThenClose(respond(Some(ResponseError::UnsupportedSaslMechanism)));
    };
    let renewing = match &session.sasl {
        SaslState::AwaitingHandshake => None,
        SaslState::Authenticated(done) if version >= 1 && done.mechanism == mechanism => {
            Some(done.clone())
        }
        _ => {
            tracing::info!(peer = %session.identity().peer, "unexpected SaslHandshake; closing");
            return SaslOutcome::ReplyThenClose(respond(Some(ResponseError::IllegalSaslState)));
        }
    };
    session.sasl = SaslState::Authenticating {
        mechanism: security.server_mechanism(mechanism, broker.clock.now_ms()),
        raw_tokens: version == 0,
        renewing,
    };
    SaslOutcome::Reply(respond(None))
}

/// Handles SaslAuthenticate on a SASL listener.
pub(crate) async fn authenticate(
    session: &mut Session,
    broker: &Broker,
    request: SaslAuthenticateRequest,
    version: i16,
) -> SaslOutcome {
    match exchange(session, broker, request.auth_bytes).await {
        Exchange::Continue(challenge) => SaslOutcome::Reply(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default().with_auth_bytes(challenge),
        )),
        Exchange::Done { reply, lifetime_ms } => {
            let response = SaslAuthenticateResponse::default().with_auth_bytes(reply);
            let response = if version >= 1 {
                response.with_session_lifetime_ms(lifetime_ms)
            } else {
                response
            };
            SaslOutcome::Reply(ResponseKind::SaslAuthenticate(response))
        }
        Exchange::Failed(failure) => SaslOutcome::ReplyThenClose(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(failure.message))),
        )),
        Exchange::OutOfOrder => SaslOutcome::ReplyThenClose(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate without a SaslHandshake",
                ))),
        )),
    }
}

/// Handles a raw token frame (after SaslHandshake v0); failures close without an answer.
pub(crate) async fn raw_token(session: &mut Session, broker: &Broker, token: Bytes) -> SaslOutcome {
    match exchange(session, broker, token).await {
        Exchange::Continue(challenge)
        | Exchange::Done {
            reply: challenge, ..
        } => SaslOutcome::RawReply(challenge),
        Exchange::Failed(_) | Exchange::OutOfOrder => SaslOutcome::Close,
    }
}

enum Exchange {
    Continue(Bytes),
    Done { reply: Bytes, lifetime_ms: i64 },
    Failed(AuthFailure),
    OutOfOrder,
}

/// Feeds `token` to the session's mechanism (off the async threads: PLAIN runs PBKDF2) and
/// records the outcome in the session.
async fn exchange(session: &mut Session, broker: &Broker, token: Bytes) -> Exchange {
    let SaslState::Authenticating {
        mechanism,
        raw_tokens,
        renewing,
    } = std::mem::replace(&mut session.sasl, SaslState::AwaitingHandshake)
    else {
        return Exchange::OutOfOrder;
    };
    let (mechanism, step) = match run_step(mechanism, token).await {
        Some(done) => done,
        None => {
            return fail(
                session,
                broker,
                None,
                AuthFailure::new("authentication task failed"),
            )
            .await;
        }
    };
    match step {
        Step::Continue(challenge) => {
            session.sasl = SaslState::Authenticating {
                mechanism,
                raw_tokens,
                renewing,
            };
            Exchange::Continue(Bytes::from(challenge))
        }
        Step::Failed(failure) => fail(session, broker, Some(mechanism.mechanism()), failure).await,
        Step::Done {
            user,
            reply,
            expires_at_ms,
        } => {
            let principal = KafkaPrincipal::user(&user);
            if let Some(previous) = &renewing
                && previous.principal != principal
            {
                let failure = AuthFailure::new(format!(
                    "Cannot change principals during re-authentication from {}: {principal}",
                    previous.principal
                ));
                return fail(session, broker, Some(mechanism.mechanism()), failure).await;
            }
            let lifetime_ms = session_lifetime_ms(
                broker.security.reauth_max_ms,
                expires_at_ms,
                broker.clock.now_ms(),
            );
            let security = &broker.security;
            security.auth_metrics.record(
                &session.identity().listener,
                mechanism.mechanism().name(),
                true,
            );
            tracing::debug!(peer = %session.identity().peer, %principal, "SASL authenticated");
            session.authenticated(Authenticated {
                mechanism: mechanism.mechanism(),
                principal,
                expires_at: (lifetime_ms > 0).then(|| {
                    Instant::now() + Duration::from_millis(u64::try_from(lifetime_ms).unwrap_or(0))
                }),
            });
            Exchange::Done {
                reply: Bytes::from(reply),
                lifetime_ms,
            }
        }
    }
}

async fn run_step(
    mut mechanism: Box<dyn ServerMechanism>,
    token: Bytes,
) -> Option<(Box<dyn ServerMechanism>, Step)> {
    tokio::task::spawn_blocking(move || {
        let step = mechanism.step(&token);
        (mechanism, step)
    })
    .await
    .ok()
}

/// Records a failed authentication and waits the failed-authentication delay.
async fn fail(
    session: &mut Session,
    broker: &Broker,
    mechanism: Option<Mechanism>,
    failure: AuthFailure,
) -> Exchange {
    let security = &broker.security;
    security.auth_metrics.record(
        &session.identity().listener,
        mechanism.map_or("unknown", Mechanism::name),
        false,
    );
    tracing::info!(
        peer = %session.identity().peer,
        listener = %session.identity().listener,
        reason = %failure.reason.as_deref().unwrap_or(&failure.message),
        "SASL authentication failed; closing"
    );
    tokio::time::sleep(security.failed_auth_delay).await;
    Exchange::Failed(failure)
}

/// A session's lifetime (KIP-368): the shorter of `connections.max.reauth.ms` (when set) and
/// the time left on the credential; 0 when neither limits it. An already expired credential
/// gets 1 ms, never "no limit".
pub(crate) fn session_lifetime_ms(
    reauth_max_ms: i64,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> i64 {
    let credential_left = expires_at_ms.map(|at| (at - now_ms).max(1));
    match (reauth_max_ms > 0, credential_left) {
        (true, Some(left)) => reauth_max_ms.min(left),
        (true, None) => reauth_max_ms,
        (false, Some(left)) => left,
        (false, None) => 0,
    }
}

/// SaslHandshake on a listener without SASL (and from peer nodes): ILLEGAL_SASL_STATE, the
/// connection stays open.
pub async fn handshake_without_sasl(
    broker: &Arc<Broker>,
    _: &RequestContext,
    _: SaslHandshakeRequest,
) -> Reply {
    Reply::Now(ResponseKind::SaslHandshake(
        SaslHandshakeResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_mechanisms(
                broker
                    .security
                    .mechanisms
                    .iter()
                    .map(|m| StrBytes::from_static_str(m.name()))
                    .collect(),
            ),
    ))
}

/// SaslAuthenticate on a listener without SASL: ILLEGAL_SASL_STATE.
pub async fn authenticate_without_sasl(
    _: &Arc<Broker>,
    _: &RequestContext,
    _: SaslAuthenticateRequest,
) -> Reply {
    Reply::Now(ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Unexpected SaslAuthenticate request: this listener does not use SASL",
            ))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_lifetimes_follow_kip_368() {
        assert_eq!(session_lifetime_ms(0, None, 1000), 0);
        assert_eq!(session_lifetime_ms(10_000, None, 1000), 10_000);
        assert_eq!(session_lifetime_ms(0, Some(6000), 1000), 5000);
        assert_eq!(session_lifetime_ms(10_000, Some(6000), 1000), 5000);
        assert_eq!(session_lifetime_ms(3000, Some(6000), 1000), 3000);
        assert_eq!(session_lifetime_ms(0, Some(500), 1000), 1);
    }
}
