//! Form bodies (`application/x-www-form-urlencoded`), read as plain text fields: nothing in
//! them is trusted until the code that needs a field parses it.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{StatusCode, request::Parts},
};

use super::page::Problem;
use crate::VendError;

/// The longest field value the console accepts; every real field is far shorter.
const MAX_FIELD: usize = 512;

/// A form's fields by name (the last of repeated names).
pub(super) struct Fields(HashMap<String, String>);

/// The query string's parameters, read the same way as a form's fields.
pub(super) struct Params(pub(super) Fields);

impl Fields {
    /// A field's value, trimmed; `None` when absent or blank.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// True when a checkbox was ticked.
    pub(super) fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Form::<HashMap<String, String>>::from_request(req, state).await {
            Ok(Form(map)) => {
                if let Some((name, _)) = map.iter().find(|(_, v)| v.len() > MAX_FIELD) {
                    return Err(Problem::Form(format!(
                        "field {name:?} is longer than {MAX_FIELD} bytes"
                    )));
                }
                Ok(Self(map))
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Problem::Vend(VendError::TooLarge))
            }
            Err(e) => Err(Problem::Form(e.body_text())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Query::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(map)) if map.values().all(|v| v.len() <= MAX_FIELD) => Ok(Self(Fields(map))),
            Ok(_) => Err(Problem::Form(format!(
                "a query parameter is longer than {MAX_FIELD} bytes"
            ))),
            Err(e) => Err(Problem::Form(e.body_text())),
        }
    }
}
