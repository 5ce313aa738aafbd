//! Key change token sets, one meter at a time or a whole campaign in one transaction.

use sts_core::{KeyChange, KeyChangeSet, MeterDescription, UtcMinute};

use super::{
    SecurityModule, SmError,
    batch::{BatchAudit, BatchKeys},
    issue::{check_active, check_fit, check_issuing, cipher},
    writer::Turn,
};
use crate::{KeyCheckValue, SecurityModuleId, audit::KeyChangeRecord, store::Script};

/// A key change to issue: the meter on its current key, the meter on its new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChangeRequest {
    /// The meter as it is: its current SGC, KT, KRN, TI, base date, EA and DKGA.
    pub current: MeterDescription,
    /// The meter as it will be (same PAN).
    pub new: MeterDescription,
    /// Send the 3-token set that carries the SGC for a 64-bit key even when the SGC stays.
    pub include_supply_group: bool,
}

/// A key change token set the module issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKeyChange {
    /// The 2, 3 or 4 tokens.
    pub set: KeyChangeSet,
    /// The module that issued it.
    pub security_module: SecurityModuleId,
    /// The check value of the vending key of the meter's current key.
    pub current_check_value: KeyCheckValue,
    /// The check value of the vending key of the new key.
    pub new_check_value: KeyCheckValue,
    /// The audit entry that records it (with the other sets of its batch).
    pub audit_sequence: u64,
    /// Its record's index among that entry's records.
    pub audit_record: u32,
}

impl SecurityModule {
    /// Issues the key change set that moves a meter from `current` to `new`: encrypted with
    /// the current decoder key, carrying the new one (derived with the new SGC, KT, KRN, TI
    /// and base date) and the new key's KEN. RO is set when the base date changes; the set
    /// carries the SGC (3 tokens for a 64-bit key) when `include_supply_group` is set or the
    /// SGC changes; a 128-bit key always takes 4 tokens.
    ///
    /// The new key must be active and not past issued-until. The current key must be held and
    /// active, but its issued-until is **not** enforced: moving meters off a key is what a
    /// key past its issuing period is still good for (a project decision). Both descriptions
    /// must have the same PAN: a key change does not move a key to another meter.
    ///
    /// # Errors
    /// As [`SecurityModule::issue`], for either key; [`SmError::KeyMismatch`] for two PANs.
    pub async fn issue_key_change(
        &self,
        current: &MeterDescription,
        new: &MeterDescription,
        include_supply_group: bool,
    ) -> Result<IssuedKeyChange, SmError> {
        let mut issued = self
            .issue_key_change_many(&[KeyChangeRequest {
                current: *current,
                new: *new,
                include_supply_group,
            }])
            .await?;
        issued
            .pop()
            .ok_or(SmError::Store(crate::StoreError::Corrupt(
                "a batch of one issued no key change".into(),
            )))
    }

    /// Issues many key change sets in one transaction (a key change campaign): all of them,
    /// or none if one is refused.
    ///
    /// Each set is checked and made as by [`SecurityModule::issue_key_change`]; the batch is
    /// recorded as one audit entry (per 65,536 sets) with a compact record of every set.
    /// Key change tokens carry no TID, so the meters' TIDs are neither read nor written.
    ///
    /// # Errors
    /// The first refusal, as [`SecurityModule::issue_key_change`]; nothing is issued then.
    pub async fn issue_key_change_many(
        &self,
        requests: &[KeyChangeRequest],
    ) -> Result<Vec<IssuedKeyChange>, SmError> {
        let mut turn = self.turn().await;
        let issued = self.key_changes_in_turn(&mut turn, requests).await;
        if issued.is_err() {
            turn.rollback().await;
        }
        issued
    }

    async fn key_changes_in_turn(
        &self,
        turn: &mut Turn<'_>,
        requests: &[KeyChangeRequest],
    ) -> Result<Vec<IssuedKeyChange>, SmError> {
        let now_seconds = self.clock.unix_seconds();
        let now = UtcMinute::from_unix_seconds(now_seconds);
        let before = turn.begin(self).await?;
        let mut audit = BatchAudit::key_changes(self, before, now_seconds, requests.len());
        let tx = turn.conn()?;
        let mut keys = BatchKeys::default();
        let mut issued = Vec::with_capacity(requests.len());
        for r in requests {
            let (current, new) = (&r.current, &r.new);
            if current.pan != new.pan {
                return Err(SmError::KeyMismatch(
                    "the new meter description has another PAN than the current one",
                ));
            }
            let old_key = keys.get(self, tx, current).await?;
            check_fit(&old_key.attributes, current)?;
            check_active(&old_key.attributes, now)?;
            let new_key = keys.get(self, tx, new).await?;
            check_fit(&new_key.attributes, new)?;
            check_issuing(&new_key.attributes, now)?;
            let change = KeyChange {
                key: new_key.generator.derive(new)?,
                key_type: new.key_type,
                key_revision: new.key_revision,
                tariff_index: new.tariff_index,
                expiry: new_key.attributes.key_expiry,
                supply_group: new.supply_group,
                rollover: new.base_date != current.base_date,
                include_supply_group: r.include_supply_group
                    || new.supply_group != current.supply_group,
            };
            let set = change.encode(&cipher(&old_key, current)?)?;
            drop(change);
            let (audit_sequence, audit_record) = audit.key_change(&KeyChangeRecord {
                current: *current,
                new: *new,
                current_check_value: old_key.check_value,
                new_check_value: new_key.check_value,
                tokens: set.len() as u8,
            });
            issued.push(IssuedKeyChange {
                set,
                security_module: self.id.clone(),
                current_check_value: old_key.check_value,
                new_check_value: new_key.check_value,
                audit_sequence,
                audit_record,
            });
        }
        let mut script = Script::default();
        let after = audit.finish(&mut script);
        turn.commit(script, after).await?;
        // Key change tokens carry no TID and no credit: what is known stays valid.
        let (_, ledger, credits) = turn.parts()?;
        if let Some(ledger) = ledger {
            ledger.carry(before, after);
        }
        credits.carry(before, after);
        Ok(issued)
    }
}
