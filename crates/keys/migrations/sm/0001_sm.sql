-- A security module's store. Vending keys and the module's X25519 secret appear only wrapped;
-- each key's wrapping is bound to its attributes. The audit log is hash-chained.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    sequence  INTEGER PRIMARY KEY NOT NULL,
    time      INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
) STRICT;

CREATE TABLE keys (
    sgc            INTEGER NOT NULL,
    key_type       TEXT NOT NULL,
    krn            TEXT NOT NULL,
    kmc_key_id     INTEGER NOT NULL,
    dkga           TEXT NOT NULL,
    ken            TEXT NOT NULL,
    base_date      TEXT NOT NULL,
    activation     TEXT NOT NULL,
    expiry         TEXT NOT NULL,
    issued_until   TEXT NOT NULL,
    credit_limit   TEXT NOT NULL,
    kcv            TEXT NOT NULL,
    wrapped        BLOB NOT NULL,
    keyload_serial INTEGER NOT NULL,
    credit_issued  INTEGER NOT NULL DEFAULT 0,
    loaded         INTEGER NOT NULL,
    PRIMARY KEY (sgc, key_type, krn)
) STRICT;

-- The last TID issued to each meter, per base date, so that tokens issued in one minute get
-- successive TIDs.
CREATE TABLE meter_tids (
    pan       TEXT NOT NULL,
    base_date TEXT NOT NULL,
    last_tid  INTEGER NOT NULL,
    PRIMARY KEY (pan, base_date)
) STRICT;

CREATE TABLE keyload_imports (
    serial   INTEGER PRIMARY KEY NOT NULL,
    sha256   TEXT NOT NULL,
    imported INTEGER NOT NULL
) STRICT;
