-- Tariffs (SQLite; the same tables as ../postgres). A tariff version is a price per unit
-- for a utility's tariff index from a time on; versions are never changed or deleted (a new
-- version supersedes from its effective time), so a sale's record always names the version
-- it was priced with. Prices are exact decimal text (`2.4536`), never floats.
CREATE TABLE tariffs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    utility           TEXT NOT NULL,
    ti                TEXT NOT NULL,
    version           BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    currency_decimals BIGINT NOT NULL,
    price             TEXT NOT NULL,
    effective_from    BIGINT NOT NULL,
    allowance_tenths  BIGINT,
    created           BIGINT NOT NULL,
    created_by        TEXT,
    UNIQUE (utility, ti, version),
    UNIQUE (utility, ti, effective_from)
);

CREATE TRIGGER tariffs_no_update BEFORE UPDATE ON tariffs
BEGIN
    SELECT RAISE(ABORT, 'tariff versions never change: create a new version');
END;

CREATE TRIGGER tariffs_no_delete BEFORE DELETE ON tariffs
BEGIN
    SELECT RAISE(ABORT, 'tariff versions never change: create a new version');
END;

-- The free allowance of a meter for a calendar month (UTC, `YYYY-MM`), issued with the vend
-- `request_id`: at most one per meter and month.
CREATE TABLE allowances (
    pan        TEXT NOT NULL REFERENCES meters (pan),
    month      TEXT NOT NULL,
    request_id TEXT NOT NULL REFERENCES vends (request_id),
    tariff_id  BIGINT NOT NULL REFERENCES tariffs (id),
    tenths     BIGINT NOT NULL,
    created    BIGINT NOT NULL,
    PRIMARY KEY (pan, month)
);

-- What a credit vend sold, for the daily report: the tariff version in force, the units
-- bought (tenths), the money paid (in the currency's minor units) and the free allowance
-- issued with it (tenths). NULL where not applicable (and for vends made before this).
ALTER TABLE vends ADD COLUMN tariff_id BIGINT REFERENCES tariffs (id);
ALTER TABLE vends ADD COLUMN units_tenths BIGINT;
ALTER TABLE vends ADD COLUMN money_minor BIGINT;
ALTER TABLE vends ADD COLUMN allowance_tenths BIGINT;
CREATE INDEX vends_by_time ON vends (created);
