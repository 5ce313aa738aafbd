//! Registering many meters at once: multi-row inserts in one transaction.

use serde_json::json;

use super::{Meter, key_binds, service_name};
use crate::{Database, VendError, audit, db::placeholders_in, retry};

/// Meters per `INSERT` (20 columns: 4,000 parameters).
const ROWS: usize = 200;

impl Database {
    /// Registers `meters` in one transaction, with one audit entry for them all (count, first
    /// and last PAN); all or none. Their target and current key records should be equal (a
    /// new meter has no key change pending); `last_tid` is not stored.
    ///
    /// # Errors
    /// [`VendError::Invalid`] when one is registered already (none is registered then),
    /// database failures.
    pub async fn import_meters(&self, meters: &[Meter]) -> Result<u64, VendError> {
        if meters.is_empty() {
            return Ok(0);
        }
        retry(|| self.import_once(meters)).await?;
        Ok(meters.len() as u64)
    }

    async fn import_once(&self, meters: &[Meter]) -> Result<(), VendError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        for chunk in meters.chunks(ROWS) {
            let sql = format!(
                "INSERT INTO meters (pan, sgc, ti, krn, kt, base_date, dkga, ea, ken, \
                 cur_sgc, cur_ti, cur_krn, cur_kt, cur_base_date, cur_dkga, utility, status, \
                 version, created, updated) VALUES {}",
                placeholders_in(self.backend(), chunk.len(), 20)
            );
            let mut query = sqlx::query(&sql);
            for m in chunk {
                let [sgc, ti, krn, kt, bd, dkga] = key_binds(&m.target);
                let [csgc, cti, ckrn, ckt, cbd, cdkga] = key_binds(&m.current);
                query = query
                    .bind(m.pan.as_str().to_owned())
                    .bind(sgc)
                    .bind(ti)
                    .bind(krn)
                    .bind(kt)
                    .bind(bd)
                    .bind(dkga)
                    .bind(m.algorithm.to_string())
                    .bind(m.key_expiry.to_string())
                    .bind(csgc)
                    .bind(cti)
                    .bind(ckrn)
                    .bind(ckt)
                    .bind(cbd)
                    .bind(cdkga)
                    .bind(service_name(m.utility))
                    .bind(m.status.as_str())
                    .bind(0_i64)
                    .bind(m.created)
                    .bind(m.updated);
            }
            match query.execute(&mut *tx).await {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(VendError::field(
                        "meters",
                        format!(
                            "a meter from {} to {} is already registered (nothing was imported)",
                            chunk.first().map_or("", |m| m.pan.as_str()),
                            chunk.last().map_or("", |m| m.pan.as_str())
                        ),
                    ));
                }
                other => {
                    other?;
                }
            }
        }
        audit::append(
            &mut tx,
            &audit::Entry {
                action: "meter.import",
                details: json!({
                    "meters": meters.len(),
                    "first": meters.first().map(|m| m.pan.as_str()),
                    "last": meters.last().map(|m| m.pan.as_str()),
                }),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
