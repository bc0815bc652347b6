-- The room service's tables. The migration runs with search_path set to the
-- service's schema (room by default), so names are unqualified.

-- rooms: one row per room, the summary room lists show plus the fencing
-- epoch and the log's last seq. Every write of a room's owner updates the
-- row with "WHERE epoch <= <its lease epoch>", and loading a room raises
-- epoch to the loader's: an owner whose lease was taken over matches no
-- row and can never write again.
CREATE TABLE rooms (
    id          text        PRIMARY KEY CHECK (id <> '' AND octet_length(id) <= 64),
    name        text        NOT NULL,
    game        text        NOT NULL,
    -- status is open, playing, finished or closed.
    status      text        NOT NULL,
    host        text        NOT NULL DEFAULT '',
    players     integer     NOT NULL CHECK (players >= 0),
    max_players integer     NOT NULL CHECK (max_players > 0),
    -- epoch is the highest lease epoch that claimed the room.
    epoch       bigint      NOT NULL,
    -- last_seq is the seq of the room's last entry in room_entries.
    last_seq    bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- room.List: open rooms, newest first.
CREATE INDEX rooms_open_idx ON rooms (created_at DESC) WHERE status = 'open';

-- room_entries: each room's log, the inputs it accepted in order; a room's
-- state is a deterministic function of them.
CREATE TABLE room_entries (
    room_id text        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq     bigint      NOT NULL CHECK (seq > 0),
    kind    text        NOT NULL,
    player  text        NOT NULL,
    body    bytea       NOT NULL,
    -- at is when the entry was handled: the clock the game's rules see,
    -- on replay too (millisecond precision).
    at      timestamptz NOT NULL,
    PRIMARY KEY (room_id, seq)
);

-- room_snapshots: each room's latest snapshot; loading replays only the
-- entries after it.
CREATE TABLE room_snapshots (
    room_id  text        PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    seq      bigint      NOT NULL,
    state    bytea       NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);
