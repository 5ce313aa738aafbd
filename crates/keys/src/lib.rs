#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod attributes;
pub mod audit;
pub mod clock;
mod hex;
pub mod ids;
pub mod keyload;
pub mod kmc;
mod random;
pub mod secret;
pub mod sm;
mod store;
pub mod vending;
pub mod wrap;

pub use attributes::{CreditLimit, KeyAttributes, VendingKeyType, VendingKeyTypeError};
pub use audit::{AuditEntry, AuditError, AuditHead, read_audit, verify_audit};
pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{IdError, KeyId, OwnerId, SecurityModuleId};
pub use keyload::{
    KeyloadError, KeyloadFile, KeyloadHeader, KeyloadKey, KmcPublicKey, PublicKeyError,
    RecipientSecret, SecurityModulePublicKey,
};
pub use kmc::{KeyRecord, Kmc, KmcError, Owner};
pub use random::RandomError;
pub use secret::{Passphrase, PassphraseError, SecretBytes};
pub use sm::{
    HeldKey, ImportReport, IssuedKeyChange, IssuedToken, KeyChangeRequest, SecurityModule, SmError,
    TokenRequest, Verified,
};
pub use store::StoreError;
pub use vending::{DesKeyError, GenerateError, KeyCheckValue, generate_vending_key};
pub use wrap::{KdfCost, KdfParams, KeyWrapper, PASSPHRASE_SCHEME, PassphraseWrapper, WrapError};
#[cfg(feature = "pkcs11")]
pub use wrap::{PKCS11_SCHEME, Pkcs11Wrapper};
