-- Key change campaigns (SQLite). The same tables as ../postgres/0003_campaigns.sql, in the same
-- standard SQL apart from the identity column.

-- A campaign: which meters (a filter on the key record they hold, or a list of PANs in
-- campaign_pans) and the key record to move them to (NULL: the meter's own value). A run
-- computes the selected meters' key change sets in chunks, in PAN order; `checkpoint` is the
-- last PAN of the last committed chunk, and the next run resumes after it.
CREATE TABLE campaigns (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    sel_sgc       TEXT,
    sel_krn       TEXT,
    sel_base_date TEXT,
    pan_list      BIGINT NOT NULL,
    new_sgc       TEXT,
    new_ti        TEXT,
    new_krn       TEXT,
    new_base_date TEXT,
    new_dkga      TEXT,
    include_sgc   BIGINT NOT NULL,
    chunk_size    BIGINT NOT NULL,
    state         TEXT NOT NULL,
    checkpoint    TEXT NOT NULL,
    chunks        BIGINT NOT NULL,
    selected      BIGINT NOT NULL,
    processed     BIGINT NOT NULL,
    issued        BIGINT NOT NULL,
    failed        BIGINT NOT NULL,
    skipped       BIGINT NOT NULL,
    created       BIGINT NOT NULL,
    started       BIGINT,
    finished      BIGINT,
    updated       BIGINT NOT NULL
);

-- The PAN list of a campaign that selects by list.
CREATE TABLE campaign_pans (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    pan         TEXT NOT NULL,
    PRIMARY KEY (campaign_id, pan)
);

-- One row per selected meter: its precomputed key change set (tokens in entry order as
-- `SUBCLASS:NUMBER`, space-separated) and the key records it moves between
-- (`SGC TI KRN KT BASE_DATE DKGA`). State: pending (delivered with the meter's next vend),
-- delivered, failed (no set: the reason says why), skipped (nothing to do, or another key
-- change was pending) or superseded (the meter's key record changed before delivery).
CREATE TABLE campaign_items (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    pan         TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    from_key    TEXT NOT NULL,
    to_key      TEXT NOT NULL,
    tokens      TEXT,
    sm_id       TEXT,
    from_kcv    TEXT,
    to_kcv      TEXT,
    request_id  TEXT,
    delivered   BIGINT,
    exported    BIGINT,
    PRIMARY KEY (campaign_id, pan)
);
CREATE INDEX campaign_items_by_state ON campaign_items (campaign_id, state);
-- A meter has at most one set waiting for delivery, whatever the campaign.
CREATE UNIQUE INDEX campaign_items_one_pending ON campaign_items (pan) WHERE state = 'pending';
