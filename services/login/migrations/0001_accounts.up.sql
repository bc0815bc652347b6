-- Accounts of the login service. The migration runs with search_path set to
-- the service's schema (login by default), so names are unqualified.
CREATE TABLE accounts (
    -- id is the user id, a UUIDv7 chosen by the service.
    id            uuid        PRIMARY KEY,
    -- username is the login name as registered: printable ASCII (the
    -- service allows [a-zA-Z0-9_.-]), unique ignoring case.
    username      text        NOT NULL CHECK (username <> '' AND octet_length(username) <= 64),
    nickname      text        NOT NULL,
    -- password_hash is an argon2id PHC string carrying its parameters.
    password_hash text        NOT NULL CHECK (password_hash <> ''),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Case-insensitive uniqueness; ByUsername looks up by the same expression.
CREATE UNIQUE INDEX accounts_username_lower_key ON accounts (lower(username));
