-- The master key wrapped by a key-management service (issue 15: envelope encryption with an
-- OpenBao/Vault Transit key). At most one row: the ciphertext the service returned and the name
-- of its key. The plaintext master key is never stored; replacing the row (a rewrap) is a
-- compare-and-set on the ciphertext.
CREATE TABLE wrapped_master_key (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    key_name   TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
