-- Batch audit entries: a batch of tokens (or key change sets) is one audit entry whose
-- `records` hold one compact binary record per token (sts-keys `audit::records`), covered by
-- the entry's hash. Entries written before have no records and verify as before.
--
-- From now on the audit records are also the durable record of every meter's TIDs (the
-- security module keeps the last TIDs that still matter in memory and rebuilds them from the
-- newest batch entries): `meter_tids` is no longer written, only read for what older versions
-- wrote there.
ALTER TABLE audit ADD COLUMN records BLOB;
