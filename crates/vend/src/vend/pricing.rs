//! A credit vend resolved against the tariffs at the time of its sale: the token it asks for
//! (money turned into units), the tariff version in force, and the monthly free allowance it
//! may bring.

use std::collections::HashSet;

use sqlx::{Any, Row, Transaction};
use sts_core::{TariffIndex, TransferAmount};
use sts_keys::TokenRequest;

use super::Spec;
use crate::{
    VendError,
    calendar::rfc3339,
    db::ROWS_PER_STATEMENT,
    meters::service_name,
    tariff::{Sale, Tariff, TariffSet},
};

/// A vend's token request once priced.
#[derive(Debug, Clone, Copy)]
pub(super) struct Priced<'t> {
    /// What the security module issues.
    pub(super) request: TokenRequest,
    /// The tariff version in force for the token's utility and the key's TI, for credit
    /// (units or money); `None` for other tokens or when none is in force.
    pub(super) tariff: Option<&'t Tariff>,
    /// Money sold for units (money vends only).
    pub(super) sale: Option<Sale>,
}

impl Priced<'_> {
    /// The free allowance token this vend brings when it is the meter's first purchase of
    /// the month: units credit and money vends under a tariff with an allowance.
    pub(super) fn allowance(&self) -> Option<(TokenRequest, TransferAmount)> {
        let TokenRequest::TransferCredit { service, .. } = self.request else {
            return None;
        };
        let amount = self.tariff?.allowance()?;
        Some((TokenRequest::TransferCredit { service, amount }, amount))
    }

    /// The units the purchase token carries, in tenths.
    pub(super) fn units(&self) -> Option<u32> {
        match self.request {
            TokenRequest::TransferCredit { amount, .. } => Some(amount.value()),
            _ => None,
        }
    }
}

/// Prices `spec` for a meter whose key has tariff index `ti`, at Unix time `at`. `None` for a
/// key change set (no token request).
///
/// # Errors
/// [`VendError::NoTariff`] for money when no version is in force; the sale's refusals
/// ([`Tariff::sell`]).
pub(super) fn price(
    spec: Spec,
    tariffs: &TariffSet,
    ti: TariffIndex,
    at: i64,
) -> Result<Option<Priced<'_>>, VendError> {
    Ok(Some(match spec {
        Spec::KeyChange { .. } => return Ok(None),
        Spec::Token(_, request @ TokenRequest::TransferCredit { service, .. }) => Priced {
            request,
            tariff: tariffs.in_force(service, ti, at),
            sale: None,
        },
        Spec::Token(_, request) => Priced {
            request,
            tariff: None,
            sale: None,
        },
        Spec::Money { service, money } => {
            let tariff = tariffs
                .in_force(service, ti, at)
                .ok_or_else(|| VendError::NoTariff {
                    utility: service_name(service).to_owned(),
                    ti: ti.to_string(),
                    at: rfc3339(at),
                })?;
            let sale = tariff.sell(money)?;
            Priced {
                request: TokenRequest::TransferCredit {
                    service,
                    amount: sale.amount,
                },
                tariff: Some(tariff),
                sale: Some(sale),
            }
        }
    }))
}

/// Those of `pans` that have had their allowance of `month` (`YYYY-MM`): one statement per
/// hundred meters, read under the meters' locks.
pub(super) async fn allowances_issued(
    tx: &mut Transaction<'_, Any>,
    month: &str,
    pans: &[&str],
) -> Result<HashSet<String>, VendError> {
    let mut issued = HashSet::new();
    for chunk in pans.chunks(ROWS_PER_STATEMENT) {
        // `$1` is the month; the PANs follow.
        let list: Vec<String> = (2..chunk.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT pan FROM allowances WHERE month = $1 AND pan IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(month);
        for pan in chunk {
            query = query.bind(*pan);
        }
        for row in query.fetch_all(&mut **tx).await? {
            issued.insert(row.try_get(0)?);
        }
    }
    Ok(issued)
}
