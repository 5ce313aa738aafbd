//! Settings that class 2 management tokens change (STS.md 5, STS-detail.md 5.4 and 9.4).

/// The values management tokens set, and the tamper flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ManagementRegisters {
    /// Maximum power limit in watts (2/0); `None` until a token sets one.
    pub maximum_power_limit: Option<u32>,
    /// Maximum phase power unbalance limit in watts (2/6); `None` until a token sets one.
    pub phase_unbalance_limit: Option<u32>,
    /// The raw 16-bit field of the last set tariff rate token (2/2). Its meaning is reserved
    /// for future definition by the STS Association (STS-detail.md 5.4), so the meter stores
    /// the field and does not interpret it.
    pub tariff_rate: Option<u16>,
    /// The raw 16-bit field of the last set water meter factor token (2/7); reserved by the STS
    /// Association for water applications, stored uninterpreted as for the tariff rate.
    pub water_meter_factor: Option<u16>,
    /// The 16-bit field of the last extended token set (2/10, STS202-5): `index(6)` then
    /// index-specific bits; stored uninterpreted. Only with [`crate::MeterConfig::extended_tokens`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub extended_set: Option<u16>,
    /// True when the meter has detected tampering ([`crate::Meter::report_tamper`]) and no
    /// clear tamper token (2/5) has cleared it since.
    pub tamper: bool,
}

impl ManagementRegisters {
    /// Nothing set, no tamper.
    pub const NONE: Self = Self {
        maximum_power_limit: None,
        phase_unbalance_limit: None,
        tariff_rate: None,
        water_meter_factor: None,
        extended_set: None,
        tamper: false,
    };
}
