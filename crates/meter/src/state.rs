//! The meter's public state, as saved and restored.

use core::fmt;

use sts_core::{EncryptionAlgorithm, KeyDerivationAlgorithm, Register, Service};

use crate::{
    ConfigError, CreditRegisters, KeyAttributes, LockoutState, ManagementRegisters, MeterConfig,
    MeterSecrets, StagedKeyChange, TidMemory, key_change::StagedProblem,
};

/// Everything a meter remembers except its secrets: settings, key attributes, credit,
/// management registers, TID memory, staged key change sections (without their key words) and
/// the lockout count.
///
/// With the `serde` feature it is `Serialize`/`Deserialize` and round-trips without loss;
/// [`crate::Meter::from_parts`] checks it together with the [`MeterSecrets`]. Identifiers are
/// written as the numbers the standard uses (`"key_type": 2`, `"base_date": 1993`,
/// `"algorithm": 7`) and the PAN as an 18-digit string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MeterState {
    /// Settings no token changes.
    pub config: MeterConfig,
    /// The decoder key's attributes.
    pub key: KeyAttributes,
    /// Credit.
    pub registers: CreditRegisters,
    /// Power limits, reserved fields and the tamper flag.
    pub management: ManagementRegisters,
    /// TIDs of accepted tokens.
    pub tids: TidMemory,
    /// Key change sections waiting for the rest of their set.
    pub key_change: StagedKeyChange,
    /// Consecutive invalid entries and the keypad lock.
    pub lockout: LockoutState,
}

impl MeterState {
    /// A new meter's state: no credit, nothing set, nothing remembered.
    #[must_use]
    pub const fn new(config: MeterConfig, key: KeyAttributes) -> Self {
        Self {
            config,
            key,
            registers: CreditRegisters::ZERO,
            management: ManagementRegisters::NONE,
            tids: TidMemory::new(),
            key_change: StagedKeyChange::NONE,
            lockout: LockoutState::UNLOCKED,
        }
    }

    /// Checks the state on its own and against `secrets`.
    pub(crate) fn check(&self, secrets: &MeterSecrets) -> Result<(), RestoreError> {
        self.config.check().map_err(RestoreError::Config)?;
        let algorithm = self.key.algorithm;
        let found = secrets.key.expose_secret().len();
        if found != algorithm.key_len() {
            return Err(RestoreError::KeyLength { algorithm, found });
        }
        if algorithm == EncryptionAlgorithm::Misty1
            && self.key.derivation != KeyDerivationAlgorithm::Dkga04
        {
            return Err(RestoreError::Derivation {
                algorithm,
                derivation: self.key.derivation,
            });
        }
        let depth = usize::from(self.config.tid_memory_depth);
        if self.tids.len() > depth {
            return Err(RestoreError::TidMemory {
                stored: self.tids.len(),
                depth,
            });
        }
        for service in Service::ALL {
            if self.registers.units(service) > self.config.unit_maximum {
                return Err(RestoreError::Balance(Register::units(service)));
            }
            let currency = self.registers.currency(service);
            if currency > self.config.currency_maximum || currency < self.config.currency_minimum {
                return Err(RestoreError::Balance(Register::currency(service)));
            }
        }
        self.key_change
            .check(&secrets.words, self.key.is_wide())
            .map_err(|problem| match problem {
                StagedProblem::Section => RestoreError::StagedSection,
                StagedProblem::Words => RestoreError::StagedWords,
            })
    }
}

/// A state and secrets that do not make a meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// A setting is out of range.
    Config(ConfigError),
    /// The decoder key's length does not fit the algorithm (8 bytes for EA07/EA09, 16 for EA11).
    KeyLength {
        /// The meter's algorithm.
        algorithm: EncryptionAlgorithm,
        /// Bytes in the key.
        found: usize,
    },
    /// The key derivation algorithm cannot make keys for the encryption algorithm (EA11 keys
    /// come from DKGA04 only, STS-detail.md 6.7).
    Derivation {
        /// The encryption algorithm.
        algorithm: EncryptionAlgorithm,
        /// The key derivation algorithm.
        derivation: KeyDerivationAlgorithm,
    },
    /// The TID memory holds more TIDs than its depth.
    TidMemory {
        /// TIDs stored.
        stored: usize,
        /// The depth setting.
        depth: usize,
    },
    /// A credit register is outside its limits.
    Balance(Register),
    /// A staged key change section does not fit the key width, or a field is out of range.
    StagedSection,
    /// The staged key change sections and the secret key words disagree.
    StagedWords,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "meter settings: {e}"),
            Self::KeyLength { algorithm, found } => write!(
                f,
                "EA{algorithm} takes a {}-byte decoder key, the saved one has {found} bytes",
                algorithm.key_len()
            ),
            Self::Derivation {
                algorithm,
                derivation,
            } => write!(f, "DKGA{derivation} does not make keys for EA{algorithm}"),
            Self::TidMemory { stored, depth } => write!(
                f,
                "the TID memory holds {stored} TIDs but its depth is {depth}"
            ),
            Self::Balance(r) => write!(f, "credit register {} is outside its limits", r.0),
            Self::StagedSection => {
                f.write_str("a staged key change section does not fit this meter")
            }
            Self::StagedWords => f.write_str(
                "the staged key change sections and the saved secrets do not match: were they saved together?",
            ),
        }
    }
}

impl core::error::Error for RestoreError {}
