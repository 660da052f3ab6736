//! Posted forms: read as name/value pairs, refused without the console's form token,
//! and the audit line every change writes.

use std::net::SocketAddr;

use axum::extract::{Form, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sluice_broker::http::PeerAddr;

use crate::AppState;

/// The hidden field every form carries the token in.
pub const TOKEN_FIELD: &str = "_csrf";

/// A posted form whose token matched, with the peer that posted it.
pub struct Posted {
    fields: Vec<(String, String)>,
    /// Who posted it (for the audit log).
    pub peer: Option<SocketAddr>,
}

impl Posted {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` exactly as posted (not trimmed), `""` when absent.
    pub fn raw(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The value of `name` as a number, or why it is not one.
    pub fn number<T: std::str::FromStr>(&self, name: &str, label: &str) -> Result<T, String> {
        let text = self
            .get(name)
            .ok_or_else(|| format!("{label} is required"))?;
        text.parse()
            .map_err(|_| format!("{label} must be a whole number, not '{text}'"))
    }
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        let Form(fields): Form<Vec<(String, String)>> = Form::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token = fields
            .iter()
            .find(|(k, _)| k == TOKEN_FIELD)
            .map(|(_, v)| v.as_str());
        if !token.is_some_and(|t| constant_time_eq(t.as_bytes(), state.csrf_token.as_bytes())) {
            return Err((
                StatusCode::FORBIDDEN,
                "the form's token is missing or stale; reload the page and try again\n",
            )
                .into_response());
        }
        Ok(Posted { fields, peer })
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes the audit line of a change made through the console: who (the peer; users
/// once the console has logins), what, on what, and how it ended.
pub fn audit(peer: Option<SocketAddr>, action: &str, target: &str, outcome: &Result<(), String>) {
    let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    match outcome {
        Ok(()) => tracing::info!(
            target: "sluice::console::audit",
            peer = %peer,
            action,
            target = %target.escape_debug(),
            "console change: {action} {}",
            target.escape_debug()
        ),
        Err(reason) => tracing::info!(
            target: "sluice::console::audit",
            peer = %peer,
            action,
            target = %target.escape_debug(),
            error = %reason,
            "console change refused: {action} {}",
            target.escape_debug()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
