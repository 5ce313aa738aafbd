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
    auth::{AUDIT_READERS, READERS, REPORT_READERS},
    console,
    meters::{parse_pan, parse_service},
    openapi::document,
    tariff::TariffSet,
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
        .route("/v1/tariffs", post(create_tariff).get(list_tariffs))
        .route("/v1/tariffs/{id}", get(get_tariff))
        .route("/v1/reports/daily", get(daily_report))
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

/// A tariff version as answered: its JSON with `in_force` (the version of its utility and TI
/// in force now).
fn tariff_json(tariff: &crate::Tariff, set: &TariffSet, now: i64) -> Value {
    let mut v = tariff.to_json();
    v["in_force"] = Value::Bool(set.is_in_force(tariff, now));
    v
}

async fn create_tariff(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<Map<String, Value>>,
) -> Result<Response, VendError> {
    caller.require(&[Role::Admin], "create tariffs")?;
    let tariff = state
        .db()
        .create_tariff(Some(&caller.key_id), &body)
        .await?;
    let db = state.db();
    let set = TariffSet::new(db.tariffs().await?);
    Ok((
        StatusCode::CREATED,
        Json(tariff_json(&tariff, &set, db.now())),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct TariffFilter {
    utility: Option<String>,
    ti: Option<String>,
}

async fn list_tariffs(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<TariffFilter>,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read tariffs")?;
    let mut problems = std::collections::BTreeMap::new();
    let utility = filter
        .utility
        .as_deref()
        .map(parse_service)
        .transpose()
        .map_err(|e| problems.insert("utility".to_owned(), e))
        .ok()
        .flatten();
    let ti = filter
        .ti
        .as_deref()
        .map(str::parse::<sts_core::TariffIndex>)
        .transpose()
        .map_err(|_| problems.insert("ti".to_owned(), "a tariff index, 00 to 99".to_owned()))
        .ok()
        .flatten();
    if !problems.is_empty() {
        return Err(VendError::fields(problems));
    }
    let tariffs: Vec<Value> = state
        .db()
        .tariffs_in_force()
        .await?
        .iter()
        .filter(|(t, _)| utility.is_none_or(|u| t.utility() == u))
        .filter(|(t, _)| ti.is_none_or(|i| t.tariff_index() == i))
        .map(|(t, in_force)| {
            let mut v = t.to_json();
            v["in_force"] = Value::Bool(*in_force);
            v
        })
        .collect();
    Ok(Json(json!({"tariffs": tariffs})))
}

async fn get_tariff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, VendError> {
    caller.require(READERS, "read tariffs")?;
    let id: i64 = id
        .parse()
        .map_err(|_| VendError::field("id", "a tariff version ID (an integer)"))?;
    let db = state.db();
    let tariff = db.tariff(id).await?;
    let set = TariffSet::new(db.tariffs().await?);
    Ok(Json(tariff_json(&tariff, &set, db.now())))
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

async fn daily_report(
    State(state): State<AppState>,
    caller: Caller,
    headers: header::HeaderMap,
    Params(query): Params<ReportQuery>,
) -> Result<Response, VendError> {
    caller.require(REPORT_READERS, "read sales reports")?;
    let csv = match query.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(VendError::field("format", "json or csv")),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/csv"))),
    };
    let report = state
        .db()
        .daily_report(query.from.as_deref(), query.to.as_deref())
        .await?;
    if csv {
        let disposition = format!("attachment; filename=\"{}\"", report.file_name());
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            report.to_csv(),
        )
            .into_response())
    } else {
        Ok(Json(report.to_json()).into_response())
    }
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
