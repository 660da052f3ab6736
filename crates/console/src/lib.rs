//! Sluice's web console: server-rendered pages under `/ui` on the broker's HTTP listener.
//!
//! Pages are HTML built with maud (escaped by construction) from the broker's admin
//! facade ([`sluice_broker::admin`]); every view is a GET whose state is in its URL, every
//! change a `<form method=post>` to the page's own URL that works without JavaScript.
//! htmx (partial refreshes) and uPlot (charts) are vendored and compiled into the binary;
//! live parts (the tail, search progress, charts) are server-sent events.
//!
//! The broker does not depend on this crate: the binary mounts [`extension`] on the HTTP
//! listener through [`sluice_broker::http::HttpExtension`].

mod assets;
mod config;
mod decode;
mod filter;
mod format;
mod forms;
mod guard;
mod layout;
mod pages;
mod series;
mod stream;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http_body_util::BodyExt;
use sluice_broker::admin::Admin;
use sluice_broker::http::{BoxError, HttpExtension, HttpResponseFuture};
use tokio::sync::{Semaphore, watch};

pub use config::{ConsoleConfig, Limits};

/// What every handler shares.
pub(crate) struct Console {
    pub admin: Admin,
    pub config: ConsoleConfig,
    /// The token every form carries (a second CSRF defence besides fetch metadata).
    pub csrf_token: String,
    /// The cluster's history, for the charts.
    pub series: Arc<series::History>,
    /// Message scans (filters, exports) running at once.
    pub scans: Arc<Semaphore>,
    /// Server-sent event streams open at once.
    pub streams: Arc<Semaphore>,
    /// Fires when the HTTP listener stops: streams end.
    pub stop: watch::Receiver<bool>,
}

pub(crate) type AppState = Arc<Console>;

/// The console as the HTTP listener mounts it: serves `/ui` and everything under it.
/// Starts the sampler that keeps the charts' history until `stop` fires.
pub fn extension(
    admin: Admin,
    config: ConsoleConfig,
    stop: watch::Receiver<bool>,
) -> Arc<dyn HttpExtension> {
    let history = Arc::new(series::History::default());
    series::start_sampler(admin.clone(), history.clone(), stop.clone());
    let console = Arc::new(Console {
        admin,
        scans: Arc::new(Semaphore::new(config.limits.concurrent_scans)),
        streams: Arc::new(Semaphore::new(config.limits.streams)),
        config,
        csrf_token: random_token(),
        series: history,
        stop,
    });
    Arc::new(ConsoleExtension {
        router: router(console),
    })
}

/// 256 random bits as hex.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Every route under `/ui`, behind the guard (Host, peer, CSRF, read-only, headers).
fn router(console: AppState) -> Router {
    let topic = "/ui/topics/{name}";
    Router::new()
        .route("/ui", get(pages::redirect_to_root))
        .route("/ui/", get(pages::overview::page))
        .route("/ui/series", get(stream::cluster_series))
        .route(
            "/ui/topics",
            get(pages::topics::page).post(pages::topics::create),
        )
        .route(topic, get(pages::topic::page).post(pages::topic::act))
        .route(&format!("{topic}/series"), get(stream::topic_series))
        .route(
            &format!("{topic}/messages"),
            get(pages::messages::page).post(pages::messages::produce),
        )
        .route(
            &format!("{topic}/messages/record"),
            get(pages::messages::record),
        )
        .route(&format!("{topic}/messages/tail"), get(stream::tail))
        .route(&format!("{topic}/messages/search"), get(stream::search))
        .route(
            &format!("{topic}/messages/export"),
            get(pages::messages::export),
        )
        .route("/ui/groups", get(pages::groups::list))
        .route(
            "/ui/groups/{*id}",
            get(pages::groups::page).post(pages::groups::act),
        )
        .route("/ui/transactions", get(pages::transactions::page))
        .route("/ui/brokers", get(pages::brokers::page))
        .route("/ui/static/{hash}/{file}", get(assets::serve))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            guard::guard,
        ))
        .with_state(console)
}

/// The router behind the HTTP listener's extension interface.
struct ConsoleExtension {
    router: Router,
}

impl HttpExtension for ConsoleExtension {
    fn serves(&self, path: &str) -> bool {
        path == "/ui" || path.starts_with("/ui/")
    }

    fn handle(&self, req: hyper::Request<hyper::body::Incoming>) -> HttpResponseFuture {
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = match tower_service::Service::call(&mut router, req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            response.map(|body| body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync())
        })
    }
}
