//! What an accepted token did.

use core::fmt;

use sts_core::{
    BaseDate, KeyExpiryNumber, KeyRevisionNumber, KeyType, Register, Service, SupplyGroupCode,
    TariffIndex, TokenIdentifier, TokenSubclass, token::MeterTestFormat,
};

use crate::Status;

/// What an accepted token changed in the meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// 0/0-0/3: units added to a service's unit register.
    Credit {
        /// The service.
        service: Service,
        /// The token's TID.
        tid: TokenIdentifier,
        /// Tenths of a unit added.
        added: u64,
        /// The register afterwards, in tenths.
        new_balance: u64,
    },
    /// 0/4-0/7: currency added to (or, when negative, taken from) a service's currency
    /// register.
    CurrencyCredit {
        /// The service.
        service: Service,
        /// The token's TID.
        tid: TokenIdentifier,
        /// 10^-5 currency units added; negative for a debit.
        added: i128,
        /// The register afterwards.
        new_balance: i128,
    },
    /// 1/0, 1/1: a test or display the meter should run. The meter changes nothing; the host
    /// performs the functions.
    MeterTest {
        /// Which layout carried the request.
        format: MeterTestFormat,
        /// Control bits (bit 0 load switch test, 1 display test, 2 total energy, 3 KRN, 4 TI, 5
        /// token reader, 6 maximum power limit, 7 tamper status, 8 power consumption, 9
        /// software version, 10-17 see STS.md 5); all ones tests everything.
        control: u64,
    },
    /// 2/0: the maximum power limit was set.
    MaximumPowerLimit {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The limit in watts.
        watts: u32,
    },
    /// 2/1: a credit register, or all of them, was cleared.
    CreditCleared {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The register: 0-7, or 65535 for all.
        register: Register,
    },
    /// 2/2: the tariff rate field was stored (its meaning is reserved by the STS Association).
    TariffRate {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The raw 16-bit field.
        raw: u16,
    },
    /// 2/5: the tamper condition was cleared.
    TamperCleared {
        /// The token's TID.
        tid: TokenIdentifier,
        /// True when the meter was in the tamper condition.
        was_tampered: bool,
    },
    /// 2/6: the maximum phase power unbalance limit was set.
    PhaseUnbalanceLimit {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The limit in watts.
        watts: u32,
    },
    /// 2/10: an extended token set field was stored (STS202-5; only with extended tokens on).
    ExtendedSet {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The 16-bit field.
        raw: u16,
    },
    /// 2/7: the water meter factor field was stored (reserved by the STS Association).
    WaterMeterFactor {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The raw 16-bit field.
        raw: u16,
    },
    /// 2/3, 2/4, 2/8, 2/9: a key change section was staged; the set is not complete.
    KeyChangeStaged {
        /// The section's subclass.
        section: TokenSubclass,
        /// Sections staged.
        have: u8,
        /// Sections the set needs, as far as the staged ones tell.
        need: u8,
    },
    /// The last section of a key change set arrived: the new key is in use.
    KeyChanged {
        /// The new key type.
        key_type: KeyType,
        /// The new key revision number.
        key_revision: KeyRevisionNumber,
        /// The new tariff index.
        tariff_index: TariffIndex,
        /// The new key expiry number.
        expiry: KeyExpiryNumber,
        /// The new supply group code, when the set carried one (3 and 4 sections).
        supply_group: Option<SupplyGroupCode>,
        /// The new base date, when the set was a rollover (RO = 1); the TID memory was cleared.
        rollover: Option<BaseDate>,
        /// Sections in the set.
        sections: u8,
    },
}

impl Applied {
    /// The status the meter shows: Accept, or 1stKCT / 2ndKCT for a staged key change section
    /// (1stKCT after the first section, 2ndKCT after any later one that does not complete the
    /// set; vendors name no third partial status).
    #[must_use]
    pub const fn status(&self) -> Status {
        match self {
            Self::KeyChangeStaged { have: 0 | 1, .. } => Status::FirstKct,
            Self::KeyChangeStaged { .. } => Status::SecondKct,
            _ => Status::Accept,
        }
    }

    /// The TID the token carried; `None` for class 1 and key change tokens.
    #[must_use]
    pub const fn tid(&self) -> Option<TokenIdentifier> {
        match *self {
            Self::Credit { tid, .. }
            | Self::CurrencyCredit { tid, .. }
            | Self::MaximumPowerLimit { tid, .. }
            | Self::CreditCleared { tid, .. }
            | Self::TariffRate { tid, .. }
            | Self::TamperCleared { tid, .. }
            | Self::PhaseUnbalanceLimit { tid, .. }
            | Self::WaterMeterFactor { tid, .. }
            | Self::ExtendedSet { tid, .. } => Some(tid),
            Self::MeterTest { .. } | Self::KeyChangeStaged { .. } | Self::KeyChanged { .. } => None,
        }
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.status(), self.status().code())?;
        match self {
            Self::Credit {
                service,
                added,
                new_balance,
                ..
            } => write!(
                f,
                "{}.{} {} of {} added, balance {}.{}",
                added / 10,
                added % 10,
                service.unit(),
                service.name(),
                new_balance / 10,
                new_balance % 10
            ),
            Self::CurrencyCredit {
                service,
                added,
                new_balance,
                ..
            } => {
                f.write_str(if *added < 0 { "debit " } else { "credit " })?;
                write_currency(f, *added)?;
                write!(f, " on the {} currency register, balance ", service.name())?;
                write_currency(f, *new_balance)
            }
            Self::MeterTest { control, .. } => write!(f, "run tests and displays {control:#x}"),
            Self::MaximumPowerLimit { watts, .. } => {
                write!(f, "maximum power limit set to {watts} W")
            }
            Self::CreditCleared { register, .. } if register.0 == 0xFFFF => {
                f.write_str("all credit registers cleared")
            }
            Self::CreditCleared { register, .. } => {
                write!(f, "credit register {} cleared", register.0)
            }
            Self::TariffRate { raw, .. } => write!(f, "tariff rate field {raw:#06x} stored"),
            Self::TamperCleared { was_tampered, .. } => f.write_str(if *was_tampered {
                "tamper condition cleared"
            } else {
                "tamper condition cleared (none was set)"
            }),
            Self::PhaseUnbalanceLimit { watts, .. } => {
                write!(f, "maximum phase power unbalance limit set to {watts} W")
            }
            Self::WaterMeterFactor { raw, .. } => {
                write!(f, "water meter factor field {raw:#06x} stored")
            }
            Self::ExtendedSet { raw, .. } => write!(
                f,
                "extended token set index {} field {raw:#06x} stored",
                raw >> 10
            ),
            Self::KeyChangeStaged {
                section,
                have,
                need,
            } => write!(
                f,
                "key change section 2/{section} accepted, {have} of {need} sections in"
            ),
            Self::KeyChanged {
                key_type,
                key_revision,
                tariff_index,
                expiry,
                supply_group,
                rollover,
                ..
            } => {
                write!(
                    f,
                    "new decoder key in use: KT {key_type}, KRN {key_revision}, TI {tariff_index}, KEN {expiry}"
                )?;
                if let Some(sgc) = supply_group {
                    write!(f, ", SGC {sgc}")?;
                }
                if let Some(base) = rollover {
                    write!(f, ", base date {base}, TID memory cleared")?;
                }
                Ok(())
            }
        }
    }
}

/// Writes 10^-5 units as a decimal with five places.
fn write_currency(f: &mut fmt::Formatter<'_>, units: i128) -> fmt::Result {
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    write!(
        f,
        "{sign}{}.{:05}",
        magnitude / 100_000,
        magnitude % 100_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        let staged = |have| Applied::KeyChangeStaged {
            section: TokenSubclass::from_bits(3),
            have,
            need: 4,
        };
        assert_eq!(staged(1).status(), Status::FirstKct);
        assert_eq!(staged(3).status(), Status::SecondKct);
        let credit = Applied::Credit {
            service: Service::Electricity,
            tid: TokenIdentifier::from_raw(1).unwrap(),
            added: 1,
            new_balance: 25,
        };
        assert_eq!(
            credit.to_string(),
            "Accept (1): 0.1 kWh of electricity added, balance 2.5"
        );
        let debit = Applied::CurrencyCredit {
            service: Service::Water,
            tid: TokenIdentifier::from_raw(1).unwrap(),
            added: -99_994,
            new_balance: 6,
        };
        assert_eq!(
            debit.to_string(),
            "Accept (1): debit -0.99994 on the water currency register, balance 0.00006"
        );
    }
}
