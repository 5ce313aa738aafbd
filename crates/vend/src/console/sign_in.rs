//! Sign-in with an API key, and sign-out.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{AppendHeaders, IntoResponse, Redirect, Response},
};
use maud::html;

use super::{
    Console,
    form::{Fields, Params},
    page::{Notice, Page, Problem, bare},
    session::{self, COOKIE, Operator, SIGN_IN_COOKIE, same_secret},
};
use crate::VendError;

/// The sign-in form, with a fresh pre-session token in a cookie and in the form.
fn sign_in_page(
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<&Notice>,
) -> Result<Response, Problem> {
    let token = session::random_hex()?;
    let body = html! {
        p { "Paste your API key (" code { "sts_..." } "). It is checked once; the browser then keeps only a session cookie." }
        form method="post" action="/console/sign-in" {
            input type="hidden" name="sign_in_token" value=(token);
            p {
                label for="api_key" { "API key" }
                input #api_key type="password" name="api_key" autocomplete="off" required
                    spellcheck="false" autofocus;
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    let page = Page {
        status,
        html: bare("Sign in", notice, &body),
    };
    let cookie = session::set_cookie(headers, SIGN_IN_COOKIE, Some(&token));
    Ok(([(header::SET_COOKIE, cookie)], page).into_response())
}

pub(super) async fn form(headers: HeaderMap, Params(query): Params) -> Result<Response, Problem> {
    let notice = query
        .get("signed_out")
        .map(|_| Notice::Done("Signed out.".to_owned()));
    sign_in_page(&headers, StatusCode::OK, notice.as_ref())
}

pub(super) async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, Problem> {
    // Login CSRF: the form's token must match the cookie set with the form.
    let matches = match (
        session::cookie(&headers, SIGN_IN_COOKIE),
        fields.get("sign_in_token"),
    ) {
        (Some(cookie), Some(field)) => same_secret(cookie, field),
        _ => false,
    };
    if !matches {
        return sign_in_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some(&Notice::Error(
                "The sign-in form expired (or cookies are off). Please try again.".to_owned(),
            )),
        );
    }
    let key = fields.get("api_key").unwrap_or("");
    let caller = match console.app.db().authenticate(key).await {
        Ok(caller) => caller,
        Err(VendError::Unauthorized) => {
            tracing::info!("console sign-in refused: unknown or revoked API key");
            return sign_in_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                Some(&Notice::Error(
                    "Unknown or revoked API key. Check the key and try again.".to_owned(),
                )),
            );
        }
        Err(e) => return Err(e.into()),
    };
    // A sign-in over a live session replaces it (no session outlives its replacement).
    if let Some(old) = session::cookie(&headers, COOKIE) {
        console.sessions.end(old);
    }
    let id = console.sessions.start(&caller.key_id)?;
    tracing::info!(key = caller.key_id, role = %caller.role, "console sign-in");
    // Two cookies: `AppendHeaders`, as an array of pairs would keep only the last.
    Ok((
        AppendHeaders([
            (
                header::SET_COOKIE,
                session::set_cookie(&headers, COOKIE, Some(&id)),
            ),
            (
                header::SET_COOKIE,
                session::set_cookie(&headers, SIGN_IN_COOKIE, None),
            ),
        ]),
        Redirect::to("/console/"),
    )
        .into_response())
}

pub(super) async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    operator: Operator,
    fields: Fields,
) -> Result<Response, Problem> {
    operator.check_csrf(fields.get("csrf"))?;
    console.sessions.end(&operator.session);
    tracing::info!(key = operator.caller.key_id, "console sign-out");
    Ok((
        [(
            header::SET_COOKIE,
            session::set_cookie(&headers, COOKIE, None),
        )],
        Redirect::to("/console/sign-in?signed_out=1"),
    )
        .into_response())
}
