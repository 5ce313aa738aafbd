//! Credit registers: units per service and currency per service (STS.md 4 and 5).

use sts_core::{Register, Service};

/// One value per service: electricity, water, gas and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PerService<T> {
    /// Electricity.
    pub electricity: T,
    /// Water.
    pub water: T,
    /// Gas.
    pub gas: T,
    /// Connection time.
    pub time: T,
}

impl<T> PerService<T> {
    /// The value for a service.
    #[must_use]
    pub const fn get(&self, service: Service) -> &T {
        match service {
            Service::Electricity => &self.electricity,
            Service::Water => &self.water,
            Service::Gas => &self.gas,
            Service::Time => &self.time,
        }
    }

    /// The value for a service, to change.
    pub const fn get_mut(&mut self, service: Service) -> &mut T {
        match service {
            Service::Electricity => &mut self.electricity,
            Service::Water => &mut self.water,
            Service::Gas => &mut self.gas,
            Service::Time => &mut self.time,
        }
    }
}

/// The meter's credit.
///
/// Unit registers count tenths of the service's unit (0.1 kWh, 0.1 m3 / kL, 0.1 m3, 0.1 min:
/// the unit of a transfer amount, STS-detail.md 4.1). Currency registers count 10^-5 of the
/// currency unit (STS-detail.md 4.3) and are signed so a meter may be set up to allow debt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CreditRegisters {
    /// Units per service, in tenths (registers 0-3 of a clear credit token).
    pub units: PerService<u64>,
    /// Currency per service, in 10^-5 units (registers 4-7).
    pub currency: PerService<i128>,
}

impl CreditRegisters {
    /// All registers zero.
    pub const ZERO: Self = Self {
        units: PerService {
            electricity: 0,
            water: 0,
            gas: 0,
            time: 0,
        },
        currency: PerService {
            electricity: 0,
            water: 0,
            gas: 0,
            time: 0,
        },
    };

    /// The unit register of a service, in tenths of its unit.
    #[must_use]
    pub const fn units(&self, service: Service) -> u64 {
        *self.units.get(service)
    }

    /// The currency register of a service, in 10^-5 currency units.
    #[must_use]
    pub const fn currency(&self, service: Service) -> i128 {
        *self.currency.get(service)
    }

    /// Clears the register a clear credit token names: 0-3 units, 4-7 currency, 65535 all
    /// (STS.md 5). Returns false, changing nothing, for any other code.
    pub(crate) fn clear(&mut self, register: Register) -> bool {
        match register.0 {
            0xFFFF => *self = Self::ZERO,
            code @ 0..=3 => *self.units.get_mut(service(code)) = 0,
            code @ 4..=7 => *self.currency.get_mut(service(code - 4)) = 0,
            _ => return false,
        }
        true
    }
}

fn service(index: u16) -> Service {
    match index {
        0 => Service::Electricity,
        1 => Service::Water,
        2 => Service::Gas,
        _ => Service::Time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_each_register_and_all() {
        let full = CreditRegisters {
            units: PerService {
                electricity: 1,
                water: 2,
                gas: 3,
                time: 4,
            },
            currency: PerService {
                electricity: 5,
                water: -6,
                gas: 7,
                time: 8,
            },
        };
        for service in Service::ALL {
            let mut r = full;
            assert!(r.clear(Register::units(service)));
            assert_eq!(r.units(service), 0);
            assert_eq!(r.currency, full.currency);
            let mut r = full;
            assert!(r.clear(Register::currency(service)));
            assert_eq!(r.currency(service), 0);
            assert_eq!(r.units, full.units);
        }
        let mut r = full;
        assert!(r.clear(Register::ALL));
        assert_eq!(r, CreditRegisters::ZERO);
        let mut r = full;
        assert!(!r.clear(Register(8)));
        assert!(!r.clear(Register(0xFFFE)));
        assert_eq!(r, full);
    }
}
