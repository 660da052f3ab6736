//! The pages: each a GET that renders from the admin facade, and (for pages with
//! actions) a POST to the same URL that changes something and redirects back.

pub mod brokers;
pub mod groups;
pub mod messages;
pub mod overview;
pub mod topic;
pub mod topics;
pub mod transactions;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use maud::html;
use sluice_broker::admin::{AdminError, KafkaError as ResponseError};

use crate::AppState;
use crate::layout::{Nav, Page, html_response};

/// `GET /ui` → `/ui/`.
pub async fn redirect_to_root() -> Response {
    see_other("/ui/")
}

/// A 303 to `location` (after a change: the browser GETs the page that shows it).
pub fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location.to_string())]).into_response()
}

/// Any other path under `/ui`.
pub async fn not_found(State(console): State<AppState>) -> Response {
    not_found_page(&console, "There is no page here.")
}

/// A 404 page saying what is missing.
pub fn not_found_page(console: &crate::Console, what: &str) -> Response {
    let page = Page {
        title: "Not found",
        nav: Nav::Overview,
        charts: false,
    };
    html_response(
        StatusCode::NOT_FOUND,
        page.render(
            console,
            html! { p { (what) } p { a href="/ui/" { "Back to the overview" } } },
        ),
    )
}

/// The HTTP status that fits an admin error.
pub fn status_of(error: &AdminError) -> StatusCode {
    match error.code {
        ResponseError::TopicAlreadyExists => StatusCode::CONFLICT,
        ResponseError::UnknownTopicOrPartition
        | ResponseError::UnknownTopicId
        | ResponseError::GroupIdNotFound => StatusCode::NOT_FOUND,
        ResponseError::NonEmptyGroup | ResponseError::GroupSubscribedToTopic => {
            StatusCode::CONFLICT
        }
        ResponseError::KafkaStorageError
        | ResponseError::UnknownServerError
        | ResponseError::NotController
        | ResponseError::RequestTimedOut => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// An admin error as one line: Kafka's error name and the broker's message.
pub fn describe(error: &AdminError) -> String {
    format!(
        "{}: {}",
        sluice_broker::admin::error_name(error),
        error.message
    )
}

/// The fixed message of a `?notice=` key (never text from the URL).
pub fn notice_text(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "created" => "Topic created.",
        "deleted" => "Topic deleted.",
        "purged" => "Every record up to the high watermark was deleted.",
        "partitions" => "Partitions added.",
        "config" => "Config changed.",
        "produced" => "Record produced.",
        "reset" => "Offsets reset.",
        "group-deleted" => "Group deleted.",
        "offsets-deleted" => "The group's offsets of the topic were deleted.",
        _ => return None,
    })
}
