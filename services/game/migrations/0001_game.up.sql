-- Player data of the game service. The migration runs with search_path set
-- to the service's schema (game by default), so names are unqualified.

-- players: one row per player, the row every change of the player locks
-- (SELECT ... FOR UPDATE) so that the player's changes run one at a time.
CREATE TABLE players (
    user_id          text        PRIMARY KEY CHECK (user_id <> '' AND octet_length(user_id) <= 128),
    display_name     text        NOT NULL DEFAULT '',
    avatar           text        NOT NULL DEFAULT '',
    -- metadata and private_metadata are JSON objects as the player sent
    -- them (checked and bounded by the service).
    metadata         text        NOT NULL DEFAULT '{}',
    private_metadata text        NOT NULL DEFAULT '{}',
    -- seq is the last entry of the player's log.
    seq              bigint      NOT NULL DEFAULT 0,
    banned_until     timestamptz,
    ban_reason       text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE wallets (
    user_id  text   NOT NULL REFERENCES players (user_id),
    currency text   NOT NULL,
    balance  bigint NOT NULL CHECK (balance >= 0),
    PRIMARY KEY (user_id, currency)
);

CREATE TABLE items (
    user_id text   NOT NULL REFERENCES players (user_id),
    item    text   NOT NULL,
    count   bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (user_id, item)
);

CREATE TABLE stats (
    user_id text   NOT NULL REFERENCES players (user_id),
    name    text   NOT NULL,
    value   bigint NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- player_log: every change of a player's inventory, wallet and stats, in
-- order, with its idempotency key, the hash of its request and its result
-- (what a replay of the key answers).
CREATE TABLE player_log (
    user_id         text        NOT NULL REFERENCES players (user_id),
    seq             bigint      NOT NULL,
    kind            text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    text        NOT NULL,
    reason          text        NOT NULL,
    reference       text        NOT NULL,
    result          text        NOT NULL,
    at              timestamptz NOT NULL,
    PRIMARY KEY (user_id, seq),
    UNIQUE (user_id, idempotency_key)
);

-- ledger: one row per currency a change touched; append-only.
CREATE TABLE ledger (
    user_id         text        NOT NULL REFERENCES players (user_id),
    seq             bigint      NOT NULL,
    currency        text        NOT NULL,
    delta           bigint      NOT NULL,
    balance         bigint      NOT NULL CHECK (balance >= 0),
    reason          text        NOT NULL,
    reference       text        NOT NULL,
    idempotency_key text        NOT NULL,
    at              timestamptz NOT NULL,
    PRIMARY KEY (user_id, seq, currency)
);

-- audit: every operator action (noonctl game), with who and why.
CREATE TABLE audit (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL,
    admin   text        NOT NULL,
    action  text        NOT NULL,
    user_id text        NOT NULL,
    reason  text        NOT NULL,
    detail  text        NOT NULL
);
CREATE INDEX audit_user_id ON audit (user_id, id DESC);

-- scores: the leaderboards' record of truth (Redis holds the ranks, and is
-- rebuilt from here). version grows with every change of any score, so a
-- Redis copy applies only rows newer than what it has.
CREATE SEQUENCE score_versions;
CREATE TABLE scores (
    board      text        NOT NULL,
    season     text        NOT NULL,
    user_id    text        NOT NULL,
    score      bigint      NOT NULL CHECK (score BETWEEN -9007199254740991 AND 9007199254740991),
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (board, season, user_id)
);
CREATE INDEX scores_updated_at ON scores (board, season, updated_at);
