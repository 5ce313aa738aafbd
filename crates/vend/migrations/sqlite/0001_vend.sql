-- The vending service's database (SQLite). The same tables as ../postgres, in the same
-- standard SQL apart from the identity columns and the append-only triggers.

-- A meter's key record: `sgc` .. `dkga` are what the meter should hold (set by register and
-- update); `cur_*` are what it holds as far as this service knows (changed by a key change
-- set). They differ while a key change is pending.
CREATE TABLE meters (
    pan           TEXT PRIMARY KEY NOT NULL,
    sgc           TEXT NOT NULL,
    ti            TEXT NOT NULL,
    krn           TEXT NOT NULL,
    kt            TEXT NOT NULL,
    base_date     TEXT NOT NULL,
    dkga          TEXT NOT NULL,
    ea            TEXT NOT NULL,
    ken           TEXT NOT NULL,
    cur_sgc       TEXT NOT NULL,
    cur_ti        TEXT NOT NULL,
    cur_krn       TEXT NOT NULL,
    cur_kt        TEXT NOT NULL,
    cur_base_date TEXT NOT NULL,
    cur_dkga      TEXT NOT NULL,
    utility       TEXT NOT NULL,
    status        TEXT NOT NULL,
    last_tid      BIGINT,
    last_tid_base TEXT,
    version       BIGINT NOT NULL,
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL
);

-- One row per client request ID: what was asked (canonical JSON) and what was answered.
CREATE TABLE vends (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    pan        TEXT NOT NULL REFERENCES meters (pan),
    kind       TEXT NOT NULL,
    request    TEXT NOT NULL,
    response   TEXT NOT NULL,
    sm_id      TEXT NOT NULL,
    kcv        TEXT,
    tid        BIGINT,
    key_id     TEXT NOT NULL,
    created    BIGINT NOT NULL
);
CREATE INDEX vends_by_meter ON vends (pan, id);

-- Every token issued; a meter's TIDs are unique per base date.
CREATE TABLE tokens (
    request_id TEXT NOT NULL REFERENCES vends (request_id),
    position   BIGINT NOT NULL,
    pan        TEXT NOT NULL,
    number     TEXT NOT NULL,
    class      BIGINT NOT NULL,
    subclass   BIGINT NOT NULL,
    tid        BIGINT,
    tid_base   TEXT,
    PRIMARY KEY (request_id, position),
    UNIQUE (pan, tid_base, tid)
);

CREATE TABLE api_keys (
    id      TEXT PRIMARY KEY NOT NULL,
    digest  TEXT NOT NULL,
    role    TEXT NOT NULL,
    name    TEXT NOT NULL,
    created BIGINT NOT NULL,
    revoked BIGINT
);

-- Append-only: every state change, with who (API key), why (request ID) and with what
-- (security module, vending key check value). Never a token number or a key.
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    time       BIGINT NOT NULL,
    key_id     TEXT,
    request_id TEXT,
    sm_id      TEXT,
    kcv        TEXT,
    action     TEXT NOT NULL,
    details    TEXT NOT NULL
);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit table is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit table is append-only');
END;
