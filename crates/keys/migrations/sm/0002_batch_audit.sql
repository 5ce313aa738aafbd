-- Batch audit entries: a batch of tokens (or key change sets) is one audit entry whose
-- `records` hold one compact binary record per token (sts-keys `audit::records`), covered by
-- the entry's hash. Entries written before have no records and verify as before.
ALTER TABLE audit ADD COLUMN records BLOB;
