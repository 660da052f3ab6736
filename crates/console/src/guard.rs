//! What every request passes before a page sees it, and what every response carries:
//! the `Host` allowlist (DNS rebinding), the loopback-peer rule (no login exists yet),
//! the cross-site check of changes (CSRF), read-only mode, and the security headers.
//! The form token, the other CSRF defence, is checked where forms are read
//! ([`crate::forms`]).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN,
    VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_broker::http::PeerAddr;

use crate::AppState;
use crate::config::ConsoleConfig;

/// The Content-Security-Policy of every console response: nothing but this origin's
/// own files, no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Checks the request, runs it, and adds the security headers to the answer (pages
/// gzipped for clients that accept it).
pub async fn guard(State(console): State<AppState>, req: Request, next: Next) -> Response {
    let gzip_ok = accepts_gzip(req.headers());
    let mut response = match refusal(&console.config, &req) {
        Some(refused) => refused,
        None => next.run(req).await,
    };
    if gzip_ok {
        response = gzip_page(response).await;
    }
    add_security_headers(response.headers_mut());
    response
}

/// Whether the client takes gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")))
}

/// The largest page compressed; bigger ones (never expected) go out as they are.
const MAX_GZIPPED_PAGE: usize = 16 << 20;

/// An HTML page gzipped (streams, downloads and static files are left alone).
async fn gzip_page(response: Response) -> Response {
    let is_page = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !is_page || response.headers().contains_key(CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_GZIPPED_PAGE).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "page too large\n").into_response();
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let compressed =
        std::io::Write::write_all(&mut encoder, &bytes).and_then(|()| encoder.finish());
    match compressed {
        Ok(gz) => {
            parts
                .headers
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            parts
                .headers
                .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
            parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(gz))
        }
        Err(_) => Response::from_parts(parts, axum::body::Body::from(bytes)),
    }
}

/// Why the request is refused, as the response, or `None` when it may go on.
fn refusal(config: &ConsoleConfig, req: &Request) -> Option<Response> {
    if !host_allowed(req.headers(), &config.extra_hosts) {
        return Some(plain(
            StatusCode::MISDIRECTED_REQUEST,
            "this console answers to localhost and loopback addresses only (add the host name to \
             console-hosts to allow another)\n",
        ));
    }
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    if !peer.is_some_and(is_loopback) {
        return Some(plain(
            StatusCode::FORBIDDEN,
            "the console answers loopback clients only\n",
        ));
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return None;
    }
    if let Err(reason) = same_origin(req.headers()) {
        return Some(plain(StatusCode::FORBIDDEN, reason));
    }
    if config.read_only {
        return Some(plain(
            StatusCode::FORBIDDEN,
            "the console is read-only (console = read-only)\n",
        ));
    }
    None
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The host name of a `Host` header (`name`, `name:port`, `[v6]:port`), lower-cased,
/// without a trailing dot.
fn host_name(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split_once(']').map(|(h, _)| h)?
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Whether the `Host` header names this machine's loopback or an allowed name. A page
/// of an attacker's domain that resolves to 127.0.0.1 (DNS rebinding) names that domain.
fn host_allowed(headers: &HeaderMap, extra_hosts: &[String]) -> bool {
    let Some(host) = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(host_name)
    else {
        return false;
    };
    host == "localhost"
        || host.parse::<IpAddr>().is_ok_and(is_loopback)
        || extra_hosts.contains(&host)
}

/// Fetch metadata first: a browser says where a request comes from in
/// `Sec-Fetch-Site`; only `same-origin` and `none` (typed by the user) are accepted.
/// Without it, an `Origin` must name the same host. With neither (not a browser), the
/// form token decides.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let site = HeaderName::from_static("sec-fetch-site");
    if let Some(site) = headers.get(&site) {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err("cross-site request refused (Sec-Fetch-Site)\n"),
        };
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err("cross-origin request refused (Origin)\n"),
    }
}

fn add_security_headers(headers: &mut HeaderMap) {
    let fixed: [(&str, &str); 5] = [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hosts_are_loopback_names_or_allowed_ones() {
        let extra = vec!["console.internal".to_string()];
        for ok in [
            "localhost",
            "localhost:9644",
            "LOCALHOST.",
            "127.0.0.1:9644",
            "127.1.2.3",
            "[::1]:9644",
            "console.internal:80",
        ] {
            assert!(host_allowed(&headers(&[("host", ok)]), &extra), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9644",
            "localhost.evil.example",
            "10.0.0.1:9644",
            "[::2]:1",
            "127.0.0.1:x",
            "",
        ] {
            assert!(!host_allowed(&headers(&[("host", bad)]), &extra), "{bad}");
        }
        assert!(!host_allowed(&HeaderMap::new(), &extra));
    }

    fn request(peer: &str, method: &str) -> Request {
        let mut req = Request::builder()
            .method(method)
            .uri("/ui/topics")
            .header("host", "127.0.0.1:9644")
            .header("sec-fetch-site", "same-origin")
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
        req
    }

    /// No login exists yet: only clients on this machine may use the console.
    #[test]
    fn peers_other_than_loopback_are_refused() {
        let config = crate::config::ConsoleConfig {
            read_only: false,
            extra_hosts: Vec::new(),
            limits: crate::Limits::default(),
        };
        for peer in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
            assert!(refusal(&config, &request(peer, "GET")).is_none(), "{peer}");
            assert!(refusal(&config, &request(peer, "POST")).is_none(), "{peer}");
        }
        for peer in ["10.0.0.7:5000", "[2001:db8::1]:5000", "192.168.1.2:1"] {
            let refused = refusal(&config, &request(peer, "GET")).map(|r| r.status());
            assert_eq!(refused, Some(StatusCode::FORBIDDEN), "{peer}");
        }
        let read_only = crate::config::ConsoleConfig {
            read_only: true,
            ..config
        };
        assert!(refusal(&read_only, &request("127.0.0.1:1", "GET")).is_none());
        let refused = refusal(&read_only, &request("127.0.0.1:1", "POST")).map(|r| r.status());
        assert_eq!(refused, Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn changes_must_come_from_the_same_origin() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "none")])).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        let host = ("host", "127.0.0.1:9644");
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:9644")])).is_ok());
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:9645")])).is_err());
        assert!(same_origin(&headers(&[host, ("origin", "null")])).is_err());
        assert!(same_origin(&headers(&[host])).is_ok());
    }
}
