-- Purchases, unique by (provider, transaction_id); user_id is '' for a
-- purchase a store notified before any client validated it.
CREATE TABLE purchases (
    id             bigserial PRIMARY KEY,
    provider       text   NOT NULL,
    transaction_id text   NOT NULL,
    product        text   NOT NULL,
    quantity       int    NOT NULL,
    state          text   NOT NULL,
    currencies     jsonb  NOT NULL DEFAULT '{}',
    items          jsonb  NOT NULL DEFAULT '{}',
    user_id        text   NOT NULL,
    created_at     timestamptz NOT NULL,
    UNIQUE (provider, transaction_id)
);
CREATE INDEX purchases_user ON purchases (user_id, id);

-- The outbox: each row is a grant (or a take, for a refund) of a
-- purchase's goods still to deliver to the game service; written in the
-- purchase's transaction, marked done once game answered.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    purchase_id bigint NOT NULL REFERENCES purchases (id),
    kind        text   NOT NULL,
    done_at     timestamptz,
    debt        boolean NOT NULL DEFAULT false,
    attempts    int    NOT NULL DEFAULT 0,
    UNIQUE (purchase_id, kind)
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;

-- Client idempotency keys: the first reply of each (user, key).
CREATE TABLE idempotency_keys (
    user_id      text  NOT NULL,
    key          text  NOT NULL,
    request_hash bytea NOT NULL,
    reply        bytea,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Store notifications seen, deduplicated by (provider, id).
CREATE TABLE notifications (
    provider    text NOT NULL,
    id          text NOT NULL,
    type        text NOT NULL,
    transaction_id text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (provider, id)
);
