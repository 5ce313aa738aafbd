-- The key management centre's store. Secrets appear only wrapped (column `wrapped`, meta
-- `signing-key`); the audit log is hash-chained (see src/audit.rs).
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

CREATE TABLE owners (
    id         INTEGER PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    contact    TEXT NOT NULL,
    registered INTEGER NOT NULL
) STRICT;

-- Rows are never deleted: an SGC is never allocated twice.
CREATE TABLE supply_groups (
    sgc       INTEGER PRIMARY KEY NOT NULL,
    owner_id  INTEGER NOT NULL REFERENCES owners (id),
    allocated INTEGER NOT NULL
) STRICT;

CREATE TABLE vending_keys (
    id           INTEGER PRIMARY KEY NOT NULL,
    sgc          INTEGER NOT NULL REFERENCES supply_groups (sgc),
    key_type     TEXT NOT NULL,
    dkga         TEXT NOT NULL,
    krn          TEXT NOT NULL,
    ken          TEXT NOT NULL,
    base_date    TEXT NOT NULL,
    activation   TEXT NOT NULL,
    expiry       TEXT NOT NULL,
    issued_until TEXT NOT NULL,
    credit_limit TEXT NOT NULL,
    kcv          TEXT NOT NULL,
    wrapped      BLOB NOT NULL,
    created      INTEGER NOT NULL,
    UNIQUE (sgc, key_type, krn)
) STRICT;

CREATE TABLE security_modules (
    id         TEXT PRIMARY KEY NOT NULL,
    public_key TEXT NOT NULL,
    registered INTEGER NOT NULL
) STRICT;

CREATE TABLE authorizations (
    key_id  INTEGER NOT NULL REFERENCES vending_keys (id),
    sm_id   TEXT NOT NULL REFERENCES security_modules (id),
    granted INTEGER NOT NULL,
    PRIMARY KEY (key_id, sm_id)
) STRICT;

CREATE TABLE keyload_files (
    serial  INTEGER PRIMARY KEY NOT NULL,
    sm_id   TEXT NOT NULL REFERENCES security_modules (id),
    created INTEGER NOT NULL,
    sha256  TEXT NOT NULL
) STRICT;
