//! The HTTP API: routes, extractors and handlers.

use axum::{
    Json, Router,
    extract::{
        DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use crate::{
    AppState, Caller, Role, VendError, VendRequest,
    auth::{AUDIT_READERS, READERS},
    console,
    meters::parse_pan,
    openapi::document,
};

/// The router of the whole API over `state`, with the operator console under `/console/`.
pub fn router(state: AppState) -> Router {
    let limit = state.body_limit();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/meters", post(register_meter).get(list_meters))
        .route("/v1/meters/{pan}", get(get_meter).patch(update_meter))
        .route("/v1/meters/{pan}/vends", get(meter_vends))
        .route("/v1/vends", post(vend))
        .route("/v1/vends/{request_id}", get(get_vend))
        .route("/v1/api-keys", post(create_api_key))
        .route("/v1/api-keys/{id}", delete(revoke_api_key))
        .route("/v1/campaigns", get(list_campaigns))
        .route("/v1/campaigns/{id}", get(get_campaign))
        .route("/v1/audit", get(audit))
        .with_state(state.clone())
        .merge(console::router(state.clone()))
        .fallback(|| async { VendError::NotFound("route".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state, count))
}

async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.metrics().http(response.status().as_u16());
    response
}

/// A JSON body whose rejections are this API's JSON errors.
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = VendError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(json_rejection(&e)),
        }
    }
}

fn json_rejection(e: &JsonRejection) -> VendError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        VendError::TooLarge
    } else {
        VendError::field("body", e.body_text())
    }
}

/// Query parameters whose rejections are this API's JSON errors.
struct Params<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = VendError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e) => Err(query_rejection(&e)),
        }
    }
}

fn query_rejection(e: &QueryRejection) -> VendError {
    VendError::field("query", e.body_text())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = VendError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(VendError::Unauthorized)?;
        state.db().authenticate(key.trim()).await
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.db().ping().await {
        Ok(()) => Json(json!({
            "status": "ok",
            "security_module": state.security_module().id().as_str(),
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error": "database unreachable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response()
}

async fn openapi() -> Json<Value> {
    Json(document())
}

#[derive(Debug, Deserialize)]
struct Page {
    after: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

impl Page {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

async fn register_meter(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<Map<String, Value>>,
) -> Result<Response, VendError> {
    caller.require(&[Role::Admin], "register meters")?;
    let meter = state.db().register_meter(&caller, &body).await?;
    Ok((StatusCode::CREATED, Json(meter.to_json())).into_response())
}

async fn list_meters(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<Page>,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read meters")?;
    let meters = state
        .db()
        .meters(page.after.as_deref().unwrap_or(""), page.limit())
        .await?;
    Ok(Json(json!({
        "meters": meters.iter().map(crate::Meter::to_json).collect::<Vec<_>>(),
    })))
}

async fn get_meter(
    State(state): State<AppState>,
    caller: Caller,
    Path(pan): Path<String>,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read meters")?;
    let pan = parse_pan(&pan)?;
    Ok(Json(state.db().meter(&pan).await?.to_json()))
}

async fn update_meter(
    State(state): State<AppState>,
    caller: Caller,
    Path(pan): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Value>, VendError> {
    caller.require(&[Role::Admin], "update meters")?;
    let pan = parse_pan(&pan)?;
    Ok(Json(
        state
            .db()
            .update_meter(&caller, &pan, &body)
            .await?
            .to_json(),
    ))
}

async fn meter_vends(
    State(state): State<AppState>,
    caller: Caller,
    Path(pan): Path<String>,
    Params(page): Params<Page>,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read vends")?;
    let pan = parse_pan(&pan)?;
    state.db().meter(&pan).await?;
    let vends = state
        .vends_of(&pan, page.before.unwrap_or(0), page.limit())
        .await?;
    Ok(Json(json!({"meter": pan.as_str(), "vends": vends})))
}

async fn vend(
    State(state): State<AppState>,
    caller: Caller,
    Body(request): Body<VendRequest>,
) -> Result<Response, VendError> {
    let outcome = state.vend(&caller, &request).await?;
    let status = if outcome.reprint {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome.body)).into_response())
}

async fn get_vend(
    State(state): State<AppState>,
    caller: Caller,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read vends")?;
    Ok(Json(state.vend_result(&request_id).await?))
}

#[derive(Debug, Deserialize)]
struct NewKey {
    role: String,
    name: String,
}

async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewKey>,
) -> Result<Response, VendError> {
    caller.require(&[Role::Admin], "create API keys")?;
    let role: Role = body.role.parse()?;
    if body.name.is_empty() || body.name.len() > 200 {
        return Err(VendError::field("name", "1 to 200 characters"));
    }
    let key = state
        .db()
        .create_api_key(role, &body.name, Some(&caller.key_id))
        .await?;
    tracing::info!(id = key.id, role = %role, by = caller.key_id, "API key created");
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, VendError> {
    caller.require(&[Role::Admin], "revoke API keys")?;
    state.db().revoke_api_key(&id, Some(&caller.key_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<Page>,
) -> Result<Json<Value>, VendError> {
    caller.require(AUDIT_READERS, "read the audit table")?;
    let after = page
        .after
        .as_deref()
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| VendError::field("after", "an audit sequence number"))?
        .unwrap_or(0);
    let rows = state.db().audit(after, page.limit()).await?;
    Ok(Json(json!({"audit": rows})))
}

async fn list_campaigns(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read campaigns")?;
    let campaigns = state.db().campaigns().await?;
    Ok(Json(json!({
        "campaigns": campaigns.iter().map(crate::Campaign::to_json).collect::<Vec<_>>(),
    })))
}

/// Items without a set shown with a campaign.
pub(crate) const CAMPAIGN_PROBLEMS: i64 = 20;

async fn get_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read campaigns")?;
    let id: i64 = id
        .parse()
        .map_err(|_| VendError::field("id", "a campaign ID (an integer)"))?;
    let campaign = state.db().campaign(id).await?;
    let problems = state
        .db()
        .campaign_problems(id, "", CAMPAIGN_PROBLEMS)
        .await?;
    let mut body = campaign.to_json();
    body["problems"] = problems
        .iter()
        .map(|p| json!({"pan": p.pan, "state": p.state, "reason": p.reason}))
        .collect();
    Ok(Json(body))
}
