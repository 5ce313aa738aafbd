//! The service's one error type, its HTTP status and its JSON body.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;
use sts_keys::SmError;

/// Why a request failed.
///
/// Every variant maps to an HTTP status and a JSON body
/// `{"error": "...", "code": "...", "fields": {...}}`. Internal errors (database, security
/// module store) are logged with their detail and answered with a generic 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VendError {
    /// The request is malformed; `fields` names each bad field and what is wrong with it.
    #[error("{message}")]
    Invalid {
        /// What is wrong, in one line.
        message: String,
        /// Field name to problem.
        fields: BTreeMap<String, String>,
    },
    /// No API key, or one that is unknown or revoked.
    #[error("missing, unknown or revoked API key (send `Authorization: Bearer <key>`)")]
    Unauthorized,
    /// The API key's role does not allow the action.
    #[error("the {role} role may not {action}")]
    Forbidden {
        /// The caller's role.
        role: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// No such meter, vend or route.
    #[error("{0} not found")]
    NotFound(String),
    /// Registering a meter that exists.
    #[error("meter {0} is already registered")]
    MeterExists(String),
    /// A request ID reused with different content: the first request's result stands.
    #[error(
        "request ID {0} was already used for a different request; use a new request ID, or repeat the original request to reprint its tokens"
    )]
    RequestIdReused(String),
    /// The meter's key record changed and the policy refuses to vend until a key change set
    /// has been issued.
    #[error(
        "meter {0} has a pending key change: an engineer must issue its key change set (token type `key_change`) before it can be vended to"
    )]
    KeyChangePending(String),
    /// The meter is not active.
    #[error("meter {pan} is {status}: tokens are issued only to active meters")]
    MeterNotActive {
        /// The meter.
        pan: String,
        /// Its status.
        status: String,
    },
    /// A money vend when no tariff of the meter's utility and tariff index is in force at the
    /// time of the sale.
    #[error(
        "no {utility} tariff for TI {ti} is in force at {at}: an admin creates one (POST /v1/tariffs or `sts tariff set`)"
    )]
    NoTariff {
        /// The utility (service) sold.
        utility: String,
        /// The tariff index of the meter's key.
        ti: String,
        /// The time of the sale (RFC 3339).
        at: String,
    },
    /// The security module refused the token (no key, key expired, credit limit ...).
    #[error("the security module refused: {0}")]
    Refused(SmError),
    /// The security module's TID for the meter is not after the last one this service
    /// recorded: another security module issued to the meter.
    #[error(
        "TID conflict for meter {0}: the security module's TID is not after the last recorded one"
    )]
    TidConflict(String),
    /// The request body is larger than the configured limit.
    #[error("request body too large")]
    TooLarge,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed at start.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Binding or serving the listener failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else that is this service's fault.
    #[error("internal: {0}")]
    Internal(String),
}

impl VendError {
    /// A bad request with one bad field.
    pub(crate) fn field(name: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::Invalid {
            message: format!("invalid {name}: {problem}"),
            fields: BTreeMap::from([(name.to_owned(), problem)]),
        }
    }

    /// A bad request with several bad fields.
    pub(crate) fn fields(fields: BTreeMap<String, String>) -> Self {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        Self::Invalid {
            message: format!("invalid fields: {}", names.join(", ")),
            fields,
        }
    }

    /// The HTTP status and the machine-readable code.
    #[must_use]
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MeterExists(_) => (StatusCode::CONFLICT, "meter_exists"),
            Self::RequestIdReused(_) => (StatusCode::CONFLICT, "request_id_reused"),
            Self::KeyChangePending(_) => (StatusCode::CONFLICT, "key_change_pending"),
            Self::MeterNotActive { .. } => (StatusCode::CONFLICT, "meter_not_active"),
            Self::NoTariff { .. } => (StatusCode::CONFLICT, "no_tariff"),
            Self::Refused(e) if sm_internal(e) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "refused"),
            Self::TidConflict(_) => (StatusCode::SERVICE_UNAVAILABLE, "tid_conflict"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Database(_) | Self::Migrate(_) | Self::Io(_) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

/// Security module failures that are not refusals of the request: its store, its key
/// wrapping (a tampered store), the OS CSPRNG, or a shared commit that failed or was cut
/// short.
fn sm_internal(e: &SmError) -> bool {
    matches!(
        e,
        SmError::Store(_)
            | SmError::Wrap(_)
            | SmError::Random(_)
            | SmError::WrongPassphrase
            | SmError::BatchCutShort
            | SmError::SharedCommitFailed(_)
    )
}

impl From<SmError> for VendError {
    fn from(e: SmError) -> Self {
        Self::Refused(e)
    }
}

impl IntoResponse for VendError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let body = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "internal error");
            json!({"error": "internal error (logged on the server)", "code": code})
        } else {
            match &self {
                Self::Invalid { message, fields } => {
                    json!({"error": message, "code": code, "fields": fields})
                }
                other => json!({"error": other.to_string(), "code": code}),
            }
        };
        (status, Json(body)).into_response()
    }
}
