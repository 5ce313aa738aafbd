#![doc = include_str!("../README.md")]
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

mod config;
mod key_attributes;
mod key_change;
mod lockout;
mod management;
mod meter;
mod outcome;
mod registers;
mod rejection;
mod secrets;
mod state;
mod tid_memory;
#[cfg(feature = "serde")]
mod wire;

pub use config::{ConfigError, ManufacturerCode, ManufacturerCodeError, MeterConfig};
pub use key_attributes::KeyAttributes;
pub use key_change::{FirstSection, FourthSection, SecondSection, StagedKeyChange, ThirdSection};
pub use lockout::{LockoutPolicy, LockoutState};
pub use management::ManagementRegisters;
pub use meter::Meter;
pub use outcome::Applied;
pub use registers::{CreditRegisters, PerService};
pub use rejection::{FormatProblem, MismatchProblem, RangeProblem, Rejection, Status};
pub use secrets::{MeterSecrets, SecretsError};
pub use state::{MeterState, RestoreError};
pub use tid_memory::{TidMemory, TidMemoryError};
