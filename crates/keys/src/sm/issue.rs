//! Issuing tokens: every token type of the engine, under the vending key's attributes.

use sts_core::{
    CurrencyAmount, MeterDescription, RandomNumber, Register, Service, Token, TokenCipher,
    TokenIdentifier, TokenNumber, TransferAmount, UtcMinute, token::MeterTestFormat,
};

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sts_core::token::{DataBlock, seal};

use super::{
    CachedKey, SecurityModule, SmError,
    batch::{BatchAudit, BatchKeys, Credits},
    group::Owned,
    tids::{MeterKey, TidLedger},
    writer::{CreditTotals, Turn},
};
use crate::{
    KeyAttributes, KeyCheckValue, SecurityModuleId, StoreError, VendingKeyType, audit::TokenRecord,
    random, store::Script,
};

/// A token to issue; the module adds the TID (from its clock) and the random nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRequest {
    /// 0/0-0/3: credit in tenths of the service unit.
    TransferCredit {
        /// The service.
        service: Service,
        /// The amount.
        amount: TransferAmount,
    },
    /// 0/4-0/7: currency credit.
    CurrencyCredit {
        /// The service.
        service: Service,
        /// The amount.
        amount: CurrencyAmount,
    },
    /// 1/0-1/2: initiate a meter test or display. Not encrypted: no key is used.
    InitiateMeterTest {
        /// Layout.
        format: MeterTestFormat,
        /// Control bits.
        control: u64,
        /// Manufacturer code.
        manufacturer: u16,
    },
    /// 2/0: maximum power limit in watts.
    SetMaximumPowerLimit {
        /// The limit.
        limit: TransferAmount,
    },
    /// 2/1: clear a credit register.
    ClearCredit {
        /// The register.
        register: Register,
    },
    /// 2/2: tariff rate (content reserved by the STS Association).
    SetTariffRate {
        /// The rate field.
        rate: u16,
    },
    /// 2/5: clear the tamper condition.
    ClearTamperCondition,
    /// 2/6: maximum phase power unbalance limit in watts.
    SetMaximumPhasePowerUnbalanceLimit {
        /// The limit.
        limit: TransferAmount,
    },
    /// 2/7: water meter factor (content reserved by the STS Association).
    SetWaterMeterFactor {
        /// The factor field.
        factor: u16,
    },
    /// 2/10: extended token set (STS202-5).
    ExtendedTokenSet {
        /// The 16-bit field.
        field: u16,
    },
}

impl TokenRequest {
    /// The credit the token carries, in credit units (see [`crate::CreditLimit`]).
    #[must_use]
    pub fn credit_units(&self) -> Option<u64> {
        match self {
            Self::TransferCredit { amount, .. } => Some(u64::from(amount.value())),
            Self::CurrencyCredit { amount, .. } => {
                Some(u64::try_from(amount.units().max(0)).unwrap_or(u64::MAX))
            }
            _ => None,
        }
    }

    /// False for class 1 (initiate meter test), which is neither encrypted nor meter specific.
    fn uses_key(self) -> bool {
        !matches!(self, Self::InitiateMeterTest { .. })
    }

    fn token(self, rnd: RandomNumber, tid: TokenIdentifier) -> Token {
        match self {
            Self::TransferCredit { service, amount } => Token::TransferCredit {
                service,
                rnd,
                tid,
                amount,
            },
            Self::CurrencyCredit { service, amount } => Token::CurrencyCredit {
                service,
                tid,
                amount,
            },
            Self::InitiateMeterTest {
                format,
                control,
                manufacturer,
            } => Token::InitiateMeterTest {
                format,
                control,
                manufacturer,
            },
            Self::SetMaximumPowerLimit { limit } => Token::SetMaximumPowerLimit { rnd, tid, limit },
            Self::ClearCredit { register } => Token::ClearCredit { rnd, tid, register },
            Self::SetTariffRate { rate } => Token::SetTariffRate { rnd, tid, rate },
            Self::ClearTamperCondition => Token::ClearTamperCondition { rnd, tid, pad: 0 },
            Self::SetMaximumPhasePowerUnbalanceLimit { limit } => {
                Token::SetMaximumPhasePowerUnbalanceLimit { rnd, tid, limit }
            }
            Self::SetWaterMeterFactor { factor } => Token::SetWaterMeterFactor { rnd, tid, factor },
            Self::ExtendedTokenSet { field } => Token::ExtendedTokenSet { rnd, tid, field },
        }
    }
}

/// A token the module issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The 20-digit token.
    pub number: TokenNumber,
    /// What it means.
    pub token: Token,
    /// The module that issued it.
    pub security_module: SecurityModuleId,
    /// The check value of the vending key used (none for class 1, which uses no key).
    pub check_value: Option<KeyCheckValue>,
    /// The audit entry that records it (with the other tokens of its batch).
    pub audit_sequence: u64,
    /// Its record's index among that entry's records.
    pub audit_record: u32,
}

/// The meter must fit the key: same DKGA and base date.
pub(super) fn check_fit(a: &KeyAttributes, meter: &MeterDescription) -> Result<(), SmError> {
    if a.derivation != meter.derivation {
        return Err(SmError::KeyMismatch(
            "the meter's DKGA differs from the key's",
        ));
    }
    if a.base_date != meter.base_date {
        return Err(SmError::KeyMismatch(
            "the meter's base date differs from the key's",
        ));
    }
    Ok(())
}

pub(super) fn check_active(a: &KeyAttributes, now: UtcMinute) -> Result<(), SmError> {
    if now < a.activation {
        return Err(SmError::KeyNotYetActive {
            activation: a.activation,
        });
    }
    Ok(())
}

pub(super) fn check_issuing(a: &KeyAttributes, now: UtcMinute) -> Result<(), SmError> {
    check_active(a, now)?;
    if now >= a.issued_until {
        return Err(SmError::KeyExpiredForIssuing {
            issued_until: a.issued_until,
        });
    }
    Ok(())
}

pub(super) fn cipher(key: &CachedKey, meter: &MeterDescription) -> Result<TokenCipher, SmError> {
    let dk = key.generator.derive(meter)?;
    TokenCipher::new(meter.algorithm, &dk)
        .map_err(|_| SmError::KeyMismatch("the decoder key does not fit the encryption algorithm"))
}

/// A request of a batch: the meter, the token, and a floor for its TID.
pub(super) trait Request {
    fn parts(&self) -> (&MeterDescription, TokenRequest, Option<TokenIdentifier>);

    /// The request as the group commit queue keeps it.
    fn owned(&self) -> Owned {
        let (meter, request, floor) = self.parts();
        (*meter, request, floor)
    }
}

impl Request for (MeterDescription, TokenRequest) {
    fn parts(&self) -> (&MeterDescription, TokenRequest, Option<TokenIdentifier>) {
        (&self.0, self.1, None)
    }
}

impl Request for (MeterDescription, TokenRequest, Option<TokenIdentifier>) {
    fn parts(&self) -> (&MeterDescription, TokenRequest, Option<TokenIdentifier>) {
        (&self.0, self.1, self.2)
    }
}

/// Each batch's outcome, for a group of batches that share a transaction.
type Outcomes = Vec<Result<Vec<IssuedToken>, SmError>>;

impl SecurityModule {
    /// Issues a token for `meter` with the vending key this module holds for the meter's SGC,
    /// key type and KRN, at the module clock's current minute.
    ///
    /// Enforced: the meter fits the key (DKGA, base date); the key is active (ACT) and not past
    /// issued-until (IUT); a VDDK issues no credit; credit stays within the key's cumulative
    /// credit limit; the TID is not past the key expiry number. Tokens for one meter in one
    /// minute get successive TIDs. The token is recorded in the audit log with this module's ID
    /// and the vending key's check value (not the token number).
    ///
    /// Concurrent calls share commits: the tokens asked for while one commits are issued
    /// together, in one transaction, by the next (group commit; each call is still refused or
    /// issued on its own).
    ///
    /// # Errors
    /// [`SmError::NoKey`], [`SmError::KeyMismatch`], [`SmError::KeyNotYetActive`],
    /// [`SmError::KeyExpiredForIssuing`], [`SmError::DefaultKeyCredit`],
    /// [`SmError::CreditLimitExceeded`], [`SmError::KeyExpiryNumberPassed`],
    /// [`SmError::BatchCutShort`], and engine errors.
    pub async fn issue(
        &self,
        meter: &MeterDescription,
        request: TokenRequest,
    ) -> Result<IssuedToken, SmError> {
        let mut issued = self.issue_many(&[(*meter, request)]).await?;
        issued
            .pop()
            .ok_or(SmError::Store(crate::StoreError::Corrupt(
                "a batch of one issued no token".into(),
            )))
    }

    /// Issues several tokens in one transaction: all of them, or none if one is refused.
    ///
    /// Each token is checked as by [`SecurityModule::issue`]. The batch is recorded as one
    /// audit entry (per 65,536 tokens) holding a compact record of every token (see
    /// [`crate::audit::records`]); the last TIDs of all its meters are read and written with
    /// one statement each way, so this is the fast path for bulk vending. Batches of
    /// concurrent calls share commits, as for [`SecurityModule::issue`].
    ///
    /// # Errors
    /// The first refusal, as [`SecurityModule::issue`]; nothing is issued then.
    pub async fn issue_many(
        &self,
        requests: &[(MeterDescription, TokenRequest)],
    ) -> Result<Vec<IssuedToken>, SmError> {
        self.issue_grouped(requests).await
    }

    /// As [`SecurityModule::issue_many`], each token's TID strictly after a floor the caller
    /// gives, when it gives one: the TID is the first after both this module's last TID for
    /// the meter and the floor (or the TID of the current minute, when that is later).
    ///
    /// This is for several security modules (each with its own store) vending for one
    /// database: the database knows the meter's last TID, each module only its own. The floor
    /// must be a TID under the meter's base date (the one in its description).
    ///
    /// # Errors
    /// As [`SecurityModule::issue_many`]; a floor at the last TID of the base date is
    /// [`SmError::Tid`].
    pub async fn issue_many_after(
        &self,
        requests: &[(MeterDescription, TokenRequest, Option<TokenIdentifier>)],
    ) -> Result<Vec<IssuedToken>, SmError> {
        self.issue_grouped(requests).await
    }

    /// Issues `batches` in one transaction in `turn`, each on its own: the outcome of each,
    /// or the error that failed the transaction (nothing is issued then). `committing` is
    /// set while the commit may reach the store and its tokens are not yet returned.
    pub(super) async fn issue_group<R: Request>(
        &self,
        turn: &mut Turn<'_>,
        batches: &[&[R]],
        committing: &AtomicBool,
    ) -> Result<Outcomes, SmError> {
        let mut issued = self.issue_in_turn(turn, batches, true, committing).await;
        if issued.is_err() {
            let stale = turn.stale();
            turn.rollback().await;
            if stale {
                // Another writer committed since this module's last batch: plan again on
                // the store's head.
                issued = self.issue_in_turn(turn, batches, false, committing).await;
                if issued.is_err() {
                    turn.rollback().await;
                }
            }
        }
        issued
    }

    /// Issues the batches in `turn`: `optimistic`, planned on the head of the module's last
    /// commit when it has one (see `Turn::begin_optimistic`), else on the head read under
    /// the store's write lock.
    async fn issue_in_turn<R: Request>(
        &self,
        turn: &mut Turn<'_>,
        batches: &[&[R]],
        optimistic: bool,
        committing: &AtomicBool,
    ) -> Result<Outcomes, SmError> {
        let now_seconds = self.clock.unix_seconds();
        let now = UtcMinute::from_unix_seconds(now_seconds);
        let tokens: usize = batches.iter().map(|b| b.len()).sum();
        // The RND nibbles of the whole group in one call to the OS CSPRNG.
        let mut nibbles = vec![0u8; tokens];
        random::fill(&mut nibbles)?;
        let start = match optimistic.then(|| turn.begin_optimistic()).flatten() {
            Some(head) => head,
            None => turn.begin(self).await?,
        };
        let (conn, ledger, known_credits) = turn.parts()?;
        let mut audit = BatchAudit::tokens(self, start, now_seconds, tokens);
        let ready = TidLedger::ready(ledger.take(), conn, start, now).await?;
        let ledger = ledger.insert(ready);
        ledger.reserve(tokens);
        audit.continue_tid_max(ledger.max());
        let mut group = TokenBatch {
            now,
            keys: BatchKeys::default(),
            credits: Credits::at(start),
            known_credits,
            ledger,
        };
        // Everything that can refuse a batch happens here, before the group commits: the
        // checks, the TIDs, the data blocks, and whether each meter's decoder key can be
        // derived. Only the encryption, which cannot fail then, is left for after. A batch
        // refused is undone (its TIDs and credit) and left out; the others go on.
        let mut planned = Vec::with_capacity(tokens);
        let mut outcomes: Vec<Option<SmError>> = Vec::with_capacity(batches.len());
        let mut nibbles = nibbles.iter();
        // A lone batch records each token as it is planned, while it is in cache: should it
        // be refused, nothing commits. In a group, a batch's tokens are recorded once the
        // whole batch is planned.
        let inline = batches.len() == 1;
        for batch in batches {
            let mark = group.mark();
            let first = planned.len();
            let mut refused = None;
            for (r, &nibble) in batch.iter().zip(nibbles.by_ref().take(batch.len())) {
                if refused.is_some() {
                    // Keep the nibbles in step with the requests.
                    continue;
                }
                let (meter, request, _) = r.parts();
                if !group.has_what_it_needs(meter, request)
                    && let Err(e) = group.load(self, conn, meter, request).await
                {
                    refused = Some(e);
                    continue;
                }
                match group.plan(r, nibble) {
                    Ok(mut p) => {
                        if inline {
                            (p.audit_sequence, p.audit_record) = audit.token(&p.record());
                        }
                        planned.push(p);
                    }
                    Err(e) => refused = Some(e),
                }
            }
            if refused.is_some() {
                planned.truncate(first);
                group.undo(mark);
            } else if !inline {
                for p in &mut planned[first..] {
                    (p.audit_sequence, p.audit_record) = audit.token(&p.record());
                }
            }
            outcomes.push(refused);
        }
        if planned.is_empty() {
            // Every batch refused or empty: nothing to commit.
            turn.rollback().await;
            return Ok(outcomes
                .into_iter()
                .map(|refused| refused.map_or(Ok(Vec::new()), Err))
                .collect());
        }
        let TokenBatch { credits, .. } = group;
        let tid_max = audit.tid_max();
        let mut script = Script::default();
        credits.write_into(&mut script);
        let head = audit.finish(&mut script);
        // Encrypt while the group commits: the driver's worker thread writes and syncs the
        // store while this thread encrypts - and, for a large group, a blocking-pool thread
        // encrypts the second half. No token leaves before the commit: a group that does not
        // commit returns only its error.
        committing.store(true, Ordering::Release);
        let (committed, sealed) = {
            let mut commit = std::pin::pin!(turn.commit(script, head));
            let early = poll_once(commit.as_mut()).await;
            let helper = (planned.len() >= PARALLEL_SEAL).then(|| {
                let second = planned.split_off(planned.len() / 2);
                let id = self.id.clone();
                tokio::task::spawn_blocking(move || Planned::seal_all(second, &id))
            });
            let mut sealed = Planned::seal_all(planned, &self.id);
            if let Some(helper) = helper {
                let second = helper.await.unwrap_or_else(|_| {
                    Err(StoreError::Corrupt("the encryption thread failed".into()).into())
                });
                sealed = sealed.and_then(|mut first| {
                    first.extend(second?);
                    Ok(first)
                });
            }
            let committed = match early {
                Some(done) => done,
                None => commit.await,
            };
            (committed, sealed)
        };
        if committed.is_err() {
            committing.store(false, Ordering::Release);
        }
        committed?;
        let (_, ledger, known_credits) = turn.parts()?;
        if let Some(ledger) = ledger {
            ledger.commit(tid_max, head);
        }
        known_credits.commit(start, head, credits.totals());
        // Each batch's tokens, in order. An encryption failure is not expected: every failure
        // was checked for above. Its group is recorded, its tokens are not delivered - never
        // the other way round.
        Ok(split_sealed(sealed, batches, outcomes))
    }
}

/// The tokens of a group's sealed batches, each batch's in its place; the refused keep
/// their refusal.
fn split_sealed<R>(
    sealed: Result<Vec<IssuedToken>, SmError>,
    batches: &[&[R]],
    refusals: Vec<Option<SmError>>,
) -> Outcomes {
    let mut sealed = match sealed {
        Ok(sealed) => sealed,
        Err(e) => {
            let mut e = Some(e);
            return refusals
                .into_iter()
                .map(|refused| {
                    Err(refused.or_else(|| e.take()).unwrap_or_else(|| {
                        StoreError::Corrupt(
                            "a token of this batch's group could not be encrypted after the commit"
                                .into(),
                        )
                        .into()
                    }))
                })
                .collect();
        }
    };
    let mut out: Outcomes = Vec::with_capacity(batches.len());
    // From the last batch back, so that the first (often the only one) keeps the vector.
    for (batch, refused) in batches.iter().zip(refusals).rev() {
        out.push(match refused {
            Some(e) => Err(e),
            None if out.len() + 1 == batches.len() => Ok(std::mem::take(&mut sealed)),
            None => Ok(sealed.split_off(sealed.len().saturating_sub(batch.len()))),
        });
    }
    out.reverse();
    out
}

/// Polls `future` once: its output if it is ready, else none (it has started).
async fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut future = Some(future);
    std::future::poll_fn(|cx| {
        let polled = future.take().map(|f| f.poll(cx));
        std::task::Poll::Ready(match polled {
            Some(std::task::Poll::Ready(out)) => Some(out),
            _ => None,
        })
    })
    .await
}

/// A token of the batch, checked and recorded, to be encrypted.
struct Planned {
    token: Token,
    block: DataBlock,
    meter: MeterDescription,
    /// None for class 1, which is not encrypted.
    key: Option<Arc<CachedKey>>,
    credit_units: Option<u64>,
    audit_sequence: u64,
    audit_record: u32,
}

/// The smallest batch whose encryption is shared with a second thread: below it, the
/// thread hand-off costs more than it saves.
const PARALLEL_SEAL: usize = 2048;

impl Planned {
    /// What the audit log keeps of the token.
    fn record(&self) -> TokenRecord {
        TokenRecord {
            meter: self.meter,
            check_value: self.key.as_ref().map(|k| k.check_value),
            class: self.token.class(),
            subclass: self.token.subclass(),
            tid: self.token.tid(),
            credit_units: self.credit_units,
        }
    }

    fn seal_all(
        planned: Vec<Self>,
        security_module: &SecurityModuleId,
    ) -> Result<Vec<IssuedToken>, SmError> {
        planned
            .into_iter()
            .map(|p| p.seal(security_module))
            .collect()
    }

    fn seal(self, security_module: &SecurityModuleId) -> Result<IssuedToken, SmError> {
        let cipher = self
            .key
            .as_deref()
            .map(|key| cipher(key, &self.meter))
            .transpose()?;
        Ok(IssuedToken {
            number: seal(self.block, cipher.as_ref())?,
            token: self.token,
            security_module: security_module.clone(),
            check_value: self.key.map(|k| k.check_value),
            audit_sequence: self.audit_sequence,
            audit_record: self.audit_record,
        })
    }
}

/// Tokens in the making: what the group has looked up and what it has issued so far.
struct TokenBatch<'l> {
    now: UtcMinute,
    keys: BatchKeys,
    credits: Credits,
    known_credits: &'l CreditTotals,
    ledger: &'l mut TidLedger,
}

/// Where a batch of a group began: what to go back to if it is refused.
struct Mark {
    tids: usize,
    credits: Credits,
}

impl TokenBatch<'_> {
    fn mark(&self) -> Mark {
        Mark {
            tids: self.ledger.mark(),
            credits: self.credits.clone(),
        }
    }

    /// Undoes the TIDs and credit issued since `mark`.
    fn undo(&mut self, mark: Mark) {
        self.ledger.rollback_to(mark.tids);
        self.credits = mark.credits;
    }

    /// Reads what the request needs from the store and the batch has not read yet: its
    /// vending key and, for credit, the key's credit total. False when there was nothing to
    /// read; most tokens of a batch find both.
    fn has_what_it_needs(&self, meter: &MeterDescription, request: TokenRequest) -> bool {
        if !request.uses_key() {
            return true;
        }
        match self.keys.cached(meter) {
            Some(key) => request.credit_units().is_none() || self.credits.has(&key.attributes),
            None => false,
        }
    }

    /// Reads the vending key for the request and, for credit, the key's credit total.
    async fn load(
        &mut self,
        sm: &SecurityModule,
        conn: &mut sqlx::SqliteConnection,
        meter: &MeterDescription,
        request: TokenRequest,
    ) -> Result<(), SmError> {
        let key = self.keys.get(sm, conn, meter).await?;
        if request.credit_units().is_some() {
            self.credits
                .load(conn, self.known_credits, &key.attributes)
                .await?;
        }
        Ok(())
    }

    /// Checks a request and plans its token (not yet recorded in the audit), once
    /// [`TokenBatch::load`] has read what it needs.
    fn plan<R: Request>(&mut self, r: &R, nibble: u8) -> Result<Planned, SmError> {
        let (meter, request, floor) = r.parts();
        let (token, key, credit_units) = if request.uses_key() {
            let key = self.keys.cached(meter).ok_or_else(|| {
                StoreError::Corrupt("a vending key the batch read is gone".into())
            })?;
            let (token, credit_units) = self.checked_token(&key, meter, request, floor, nibble)?;
            key.generator.check(meter)?;
            (token, Some(key), credit_units)
        } else {
            let token = request.token(RandomNumber::default(), TokenIdentifier::from_raw(0)?);
            (token, None, None)
        };
        Ok(Planned {
            block: token.to_block()?,
            token,
            meter: *meter,
            key,
            credit_units,
            audit_sequence: 0,
            audit_record: 0,
        })
    }

    /// Applies the key's attributes to a token request and assigns its TID; counts its
    /// credit and its TID in the batch.
    fn checked_token(
        &mut self,
        key: &CachedKey,
        meter: &MeterDescription,
        request: TokenRequest,
        floor: Option<TokenIdentifier>,
        nibble: u8,
    ) -> Result<(Token, Option<u64>), SmError> {
        let a = &key.attributes;
        check_fit(a, meter)?;
        check_issuing(a, self.now)?;
        let credit = request.credit_units();
        if credit.is_some() && a.key_type == VendingKeyType::Default {
            return Err(SmError::DefaultKeyCredit);
        }
        if let Some(requested) = credit {
            let issued = self.credits.cached(a).ok_or_else(|| {
                StoreError::Corrupt("a credit total the batch read is gone".into())
            })?;
            let limit = a.credit_limit.get();
            match issued.total.checked_add(requested) {
                Some(total) if total <= limit => {
                    issued.total = total;
                    issued.added = issued.added.saturating_add(requested);
                }
                _ => {
                    return Err(SmError::CreditLimitExceeded {
                        limit,
                        issued: issued.total,
                        requested,
                    });
                }
            }
        }
        let now = self.now;
        let tid = self.ledger.assign(MeterKey::of(meter), |last| {
            let tid = TokenIdentifier::next_after(now, meter.base_date, last.max(floor))?;
            if tid.is_expired_under(a.key_expiry) {
                return Err(SmError::KeyExpiryNumberPassed {
                    key_expiry: a.key_expiry,
                });
            }
            Ok(tid)
        })?;
        Ok((
            request.token(RandomNumber::from_low_bits(nibble), tid),
            credit,
        ))
    }
}
