//! Console sessions: a random session ID in a cookie, mapped in this process's memory to the
//! API key that signed in, with a CSRF token and an expiry.
//!
//! # Security
//! - The session ID is 32 bytes from the OS CSPRNG (hex in the cookie). The cookie is
//!   `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it) and
//!   scoped to `/console`. It carries `Secure` when the request came through a TLS proxy
//!   (`X-Forwarded-Proto: https`): `sts serve` itself speaks plain HTTP, meant for loopback
//!   (`http://127.0.0.1`) or behind such a proxy, and a `Secure` cookie would not be sent
//!   back over plain HTTP to a non-loopback address.
//! - The API key itself is not kept: only its public ID. Every request reads the key's role
//!   again ([`Database::api_key_role`]), so a revoked key's sessions end at once and a role
//!   change applies at once.
//! - Sessions end after [`IDLE`] without a request, [`LIFETIME`] after sign-in, at sign-out,
//!   and when the server restarts (they live in memory: several servers behind one address
//!   need sticky sessions, or the operator signs in again).
//! - Session IDs and CSRF tokens are compared in constant time and never logged.
//!
//! [`Database::api_key_role`]: crate::Database::api_key_role

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
};
use subtle::ConstantTimeEq;

use super::{Console, page::Problem};
use crate::{Caller, VendError};

/// The session cookie's name.
pub(super) const COOKIE: &str = "sts_session";
/// The sign-in form's pre-session cookie (login CSRF: a form from another site cannot know it).
pub(super) const SIGN_IN_COOKIE: &str = "sts_sign_in";

/// A session ends after this long without a request.
pub(super) const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub(super) const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The most sessions kept; signing in past it ends the least recently used one.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    key_id: String,
    csrf: String,
    started: Instant,
    seen: Instant,
}

/// The live sessions of this process.
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    lifetime: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_limits(IDLE, LIFETIME)
    }
}

impl Sessions {
    fn with_limits(idle: Duration, lifetime: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle,
            lifetime,
        }
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.seen) > self.idle || now.duration_since(s.started) > self.lifetime
    }

    /// Starts a session for the API key `key_id`; returns its ID (the cookie's value).
    ///
    /// # Errors
    /// The OS CSPRNG failed.
    pub(super) fn start(&self, key_id: &str) -> Result<String, VendError> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !self.expired(s, now));
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                key_id: key_id.to_owned(),
                csrf,
                started: now,
                seen: now,
            },
        );
        Ok(id)
    }

    /// The API key ID and CSRF token of a live session, marking it used; `None` (and the
    /// session forgotten) once it has expired.
    fn touch(&self, id: &str) -> Option<(String, String)> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let session = map.get_mut(id)?;
        if self.expired(session, now) {
            map.remove(id);
            return None;
        }
        session.seen = now;
        Some((session.key_id.clone(), session.csrf.clone()))
    }

    /// Ends a session.
    pub(super) fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// How many sessions are kept (live or not yet swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// 32 random bytes as 64 hex digits.
pub(super) fn random_hex() -> Result<String, VendError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| VendError::Internal(format!("OS CSPRNG: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for a console cookie; `None` as the value deletes the cookie.
pub(super) fn set_cookie(headers: &HeaderMap, name: &str, value: Option<&str>) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let mut text = match value {
        Some(v) => format!("{name}={v}; Path=/console; HttpOnly; SameSite=Strict"),
        None => format!("{name}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    if secure {
        text.push_str("; Secure");
    }
    // Names are constants and values are hex: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Equal in constant time (for secrets of public length).
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The signed-in operator of a request.
pub(super) struct Operator {
    /// The API key's ID and its current role: what the JSON API would see.
    pub(super) caller: Caller,
    /// This session's CSRF token, for the forms of the page.
    pub(super) csrf: String,
    /// The session ID (to end it at sign-out).
    pub(super) session: String,
}

impl Operator {
    /// Refuses a form whose CSRF field is not this session's token.
    ///
    /// # Errors
    /// [`Problem::Csrf`].
    pub(super) fn check_csrf(&self, field: Option<&str>) -> Result<(), Problem> {
        match field {
            Some(token) if same_secret(token, &self.csrf) => Ok(()),
            _ => Err(Problem::Csrf),
        }
    }
}

impl FromRequestParts<Console> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, Problem> {
        let session = cookie(&parts.headers, COOKIE)
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(Problem::SignIn)?
            .to_owned();
        let (key_id, csrf) = state.sessions.touch(&session).ok_or(Problem::SignIn)?;
        let Some(role) = state.app.db().api_key_role(&key_id).await? else {
            // Revoked since sign-in.
            state.sessions.end(&session);
            return Err(Problem::SignIn);
        };
        Ok(Self {
            caller: Caller { key_id, role },
            csrf,
            session,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_session_ends_when_idle_too_long_or_too_old() {
        let sessions = Sessions::with_limits(Duration::from_millis(50), Duration::from_secs(60));
        let s = sessions.start("0123456789abcdef").unwrap();
        assert_eq!(s.len(), 64);
        assert_eq!(sessions.touch(&s).unwrap().0, "0123456789abcdef");
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.touch(&s).is_none(), "idle session still live");
        assert_eq!(sessions.len(), 0, "expired session kept");

        let sessions = Sessions::with_limits(Duration::from_secs(60), Duration::from_millis(50));
        let s = sessions.start("0123456789abcdef").unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(20));
            let _ = sessions.touch(&s);
        }
        assert!(sessions.touch(&s).is_none(), "session past its lifetime");
    }

    #[test]
    fn sessions_differ_and_end_at_sign_out() {
        let sessions = Sessions::default();
        let a = sessions.start("aaaaaaaaaaaaaaaa").unwrap();
        let b = sessions.start("aaaaaaaaaaaaaaaa").unwrap();
        assert_ne!(a, b);
        let (_, csrf_a) = sessions.touch(&a).unwrap();
        let (_, csrf_b) = sessions.touch(&b).unwrap();
        assert_ne!(csrf_a, csrf_b);
        sessions.end(&a);
        assert!(sessions.touch(&a).is_none());
        assert!(sessions.touch(&b).is_some());
    }

    #[test]
    fn cookies_are_found_among_others_and_flagged() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sts_session=ab"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, COOKIE), Some("ab"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        let plain = set_cookie(&headers, COOKIE, Some("ab"));
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(&headers, COOKIE, None)
                .to_str()
                .unwrap()
                .ends_with("Max-Age=0; Secure")
        );
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
