//! The page layout, the console's errors as pages, and small display helpers.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{DOCTYPE, Markup, html};
use sts_core::UtcMinute;

use super::session::Operator;
use crate::{
    Role, VendError,
    auth::{AUDIT_READERS, REPORT_READERS},
};

/// A finished page: status and HTML.
pub(super) struct Page {
    pub(super) status: StatusCode,
    pub(super) html: Markup,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.html.into_string(),
        )
            .into_response()
    }
}

/// A message at the top of a page.
pub(super) enum Notice {
    /// Something went right.
    Done(String),
    /// Something was refused; announced to screen readers at once.
    Error(String),
}

/// A page inside the signed-in layout: navigation by role, sign-out, then `body`.
pub(super) fn page(
    operator: &Operator,
    title: &str,
    notice: Option<&Notice>,
    body: &Markup,
) -> Markup {
    let role = operator.caller.role;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.bar {
                    nav aria-label="Console" {
                        ul {
                            li { a href="/console/" { "Find meter" } }
                            li { a href="/console/meters" { "Meters" } }
                            li { a href="/console/decode" { "Decode token" } }
                            li { a href="/console/campaigns" { "Campaigns" } }
                            @if REPORT_READERS.contains(&role) {
                                li { a href="/console/reports/daily" { "Daily sales" } }
                            }
                            @if AUDIT_READERS.contains(&role) {
                                li { a href="/console/audit" { "Audit trail" } }
                            }
                        }
                    }
                    div.who {
                        span { "Signed in: key " code { (operator.caller.key_id) } " (" (role) ")" }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(operator.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (notice_html(notice))
                    (body)
                }
            }
        }
    }
}

/// A page without the signed-in navigation (sign-in, errors).
pub(super) fn bare(title: &str, notice: Option<&Notice>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main #main {
                    h1 { (title) }
                    (notice_html(notice))
                    (body)
                }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " - STS console" }
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

fn notice_html(notice: Option<&Notice>) -> Markup {
    html! {
        @match notice {
            Some(Notice::Done(text)) => p.notice.done role="status" { (text) },
            Some(Notice::Error(text)) => p.notice.error role="alert" { (text) },
            None => {},
        }
    }
}

/// Why a console request failed, shown as a page.
#[derive(Debug)]
pub(super) enum Problem {
    /// Not signed in, or the session ended: go to the sign-in page.
    SignIn,
    /// The form's CSRF token is missing or not this session's.
    Csrf,
    /// The form body does not parse.
    Form(String),
    /// What the JSON API would answer.
    Vend(VendError),
}

impl From<VendError> for Problem {
    fn from(e: VendError) -> Self {
        Self::Vend(e)
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        Self::Vend(e.into())
    }
}

/// The message and status of a [`VendError`] as the console shows it: internal errors are
/// logged here and shown as a generic message, like the JSON API's 500.
pub(super) fn vend_error_text(e: &VendError) -> (StatusCode, String) {
    let (status, _) = e.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "internal error (console)");
        (status, "Internal error (logged on the server).".to_owned())
    } else {
        let text = match e {
            VendError::Invalid { fields, .. } if !fields.is_empty() => fields
                .iter()
                .map(|(field, problem)| format!("{}: {problem}", field_label(field)))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        (status, text)
    }
}

/// The name an operator sees for a field of the JSON API.
fn field_label(field: &str) -> &str {
    match field {
        "token.amount" => "amount",
        "token.watts" => "watts",
        "token.register" => "register",
        "token.rate" => "rate",
        "token.factor" => "factor",
        "token.type" => "type",
        other => other,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            Self::SignIn => return Redirect::to("/console/sign-in").into_response(),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form does not belong to your session (it may be from before you signed in \
                 again). Go back, reload the page and try again."
                    .to_owned(),
            ),
            Self::Form(why) => (StatusCode::BAD_REQUEST, "Bad form", why),
            Self::Vend(e) => {
                let (status, text) = vend_error_text(&e);
                let title = match status {
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    s if s.is_server_error() => "Server error",
                    _ => "Refused",
                };
                (status, title, text)
            }
        };
        Page {
            status,
            html: bare(
                title,
                Some(&Notice::Error(text)),
                &html! { p { a href="/console/" { "Back to the console" } } },
            ),
        }
        .into_response()
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM` (UTC).
pub(super) fn time(seconds: i64) -> String {
    format!("{} UTC", UtcMinute::from_unix_seconds(seconds))
}

/// A 20-digit token number in groups of four, as read over the phone.
pub(super) fn groups(digits: &str) -> String {
    digits
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A token as screen readers should read it: digit by digit, a pause between groups.
pub(super) fn spoken(digits: &str) -> String {
    digits
        .as_bytes()
        .chunks(4)
        .map(|c| {
            c.iter()
                .map(|b| char::from(*b).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A path segment with everything but unreserved characters percent-encoded (request IDs
/// from API clients may hold `/`, `?`, `#` ...).
pub(super) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// True when the role may issue credit tokens (shown forms only; the vend checks again).
pub(super) fn may_credit(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Vendor)
}

/// True when the role may issue management tokens and key change sets.
pub(super) fn may_manage(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Engineer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_shown_in_groups_of_four() {
        assert_eq!(groups("12345678901234567890"), "1234 5678 9012 3456 7890");
        assert_eq!(spoken("12345678"), "1 2 3 4, 5 6 7 8");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("console-ab12"), "console-ab12");
        assert_eq!(segment("pos-1/00001?x#y"), "pos-1%2F00001%3Fx%23y");
        assert_eq!(segment("a b%"), "a%20b%25");
    }

    #[test]
    fn times_are_utc_minutes() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_780_315_200), "2026-06-01 12:00 UTC");
    }
}
