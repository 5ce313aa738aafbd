//! The operator web console: server-rendered HTML under `/console/`, served by the same router
//! as the JSON API.
//!
//! Every page is a plain HTML form or table rendered with [`maud`], which escapes every value
//! it interpolates. State changes are `POST` forms answered with a redirect to a `GET` page
//! (post/redirect/get), so reloading a result page never vends again; each vend form carries
//! a request ID made when the form is rendered, so a double submit is a reprint.
//!
//! The console calls the same code as the JSON API: [`Database::authenticate`] to sign in,
//! [`AppState::vend`] to vend (which checks the role), the same role lists ([`READERS`],
//! [`AUDIT_READERS`]) for pages, and the security module's `verify` to decode a token.
//!
//! # Security
//! - Sign-in takes an API key once; the browser then holds only a random session ID in an
//!   `HttpOnly`, `SameSite=Strict` cookie (see [`session`]). The key's role is read again from
//!   the database on every request, so revoking the key ends its sessions.
//! - Every `POST` carries the session's CSRF token (the sign-in form: a pre-session cookie
//!   matched by a form field).
//! - Every answer has a `default-src 'self'` Content-Security-Policy, `X-Frame-Options: DENY`,
//!   `Cache-Control: no-store` and `Referrer-Policy: no-referrer`; CSS and JS are served from
//!   `/console/static/` (no inline script or style, nothing from another host).
//! - Token numbers, API keys and session IDs are never logged.
//!
//! [`Database::authenticate`]: crate::Database::authenticate
//! [`READERS`]: crate::auth::READERS
//! [`AUDIT_READERS`]: crate::auth::AUDIT_READERS

mod audit;
mod campaigns;
mod decode;
mod form;
mod meters;
mod page;
mod report;
mod session;
mod sign_in;
mod vends;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};

use crate::AppState;
use session::Sessions;

/// What every console handler shares: the service's state and the signed-in sessions.
#[derive(Clone)]
pub(crate) struct Console {
    app: AppState,
    sessions: Arc<Sessions>,
}

/// The console's routes over `state`, with its security headers; merged into the API's router.
pub(crate) fn router(state: AppState) -> Router {
    let console = Console {
        app: state,
        sessions: Arc::new(Sessions::default()),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(meters::home))
        .route(
            "/console/sign-in",
            get(sign_in::form).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/meters", get(meters::list))
        .route("/console/meters/{pan}", get(meters::show))
        .route("/console/meters/{pan}/credit", post(vends::credit))
        .route("/console/meters/{pan}/management", post(vends::management))
        .route("/console/meters/{pan}/key-change", post(vends::key_change))
        .route("/console/vends/{request_id}", get(vends::result))
        .route("/console/vends/{request_id}/receipt", get(vends::receipt))
        .route("/console/decode", get(decode::form).post(decode::decode))
        .route("/console/audit", get(audit::trail))
        .route("/console/campaigns", get(campaigns::list))
        .route("/console/campaigns/{id}", get(campaigns::show))
        .route("/console/reports/daily", get(report::daily))
        .route("/console/reports/daily.csv", get(report::daily_csv))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .layer(middleware::map_response(security_headers))
        .with_state(console)
}

/// The same headers on every console answer, errors and redirects included.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Pages show tokens and session-bound CSRF tokens: never keep them in a cache.
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/console.js"),
    )
        .into_response()
}
