#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod api;
mod audit;
mod auth;
mod calendar;
mod campaign;
mod console;
mod db;
mod error;
mod meters;
mod metrics;
mod money;
mod openapi;
mod report;
mod server;
mod state;
mod tariff;
mod vend;

pub use api::router;
pub use audit::AuditRecord;
pub use auth::{Caller, NewApiKey, Role};
pub use campaign::{
    Campaign, CampaignSelection, CampaignState, CampaignTarget, ChunkDone, ExportedItem,
    ItemCounts, ItemProblem, NewCampaign, RunEnd,
};
pub use db::{Backend, Database};
pub use error::VendError;
pub use meters::{KeyRecord, Meter, MeterStatus, parse_pan};
pub use metrics::Metrics;
pub use openapi::document as openapi_document;
pub use report::{COLUMNS as REPORT_COLUMNS, DailyReport, MAX_REPORT_DAYS};
pub use server::{serve, serve_on, shutdown_signal};
pub use state::{AppState, Config, KeyChangePolicy};
pub use tariff::{Currency, Tariff};
pub use vend::{VendKind, VendOutcome, VendRequest};

pub(crate) use db::retry;
