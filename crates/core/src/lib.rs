#![doc = include_str!("../README.md")]
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

pub mod amount;
pub mod cipher;
pub mod crc;
pub mod dkga;
pub mod identifier;
mod key;
pub mod tid;
pub mod time;
pub mod token;

pub use amount::{AmountError, CurrencyAmount, TransferAmount};
pub use cipher::TokenCipher;
pub use dkga::{DecoderKeyGenerator, DeriveError, MeterDescription, derive_decoder_key};
pub use identifier::{
    BaseDate, EncryptionAlgorithm, IdentifierError, IssuerIdentificationNumber,
    KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber, KeyType, MeterPan, SupplyGroupCode,
    TariffIndex,
};
pub use key::{DecoderKey, KeyError, VendingKey};
pub use tid::{TidError, TokenIdentifier};
pub use time::{TimeError, UtcMinute};
pub use token::{
    DataBlock, DecodeError, Decoded, EncodeError, KeyChange, KeyChangeSection, KeyChangeSet,
    RandomNumber, Register, Service, Token, TokenClass, TokenNumber, TokenSubclass, decode,
};
