-- creator: the user who created the room with room.Create ('' for a
-- matched room): max_rooms_per_user counts a user's rooms that are not
-- closed.
ALTER TABLE rooms ADD COLUMN creator text NOT NULL DEFAULT '';
CREATE INDEX rooms_creator_open_idx ON rooms (creator) WHERE status <> 'closed' AND creator <> '';

-- The retention sweep: closed rooms, oldest first (updated_at is the time
-- of the room's last entry, its closing).
CREATE INDEX rooms_closed_idx ON rooms (updated_at) WHERE status = 'closed';

-- The archive (retention.mode archive): pruned rooms' rows and logs move
-- here, out of the live tables (snapshots are dropped: the log rebuilds
-- them).
CREATE TABLE rooms_archive (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    game        text        NOT NULL,
    status      text        NOT NULL,
    host        text        NOT NULL,
    players     integer     NOT NULL,
    max_players integer     NOT NULL,
    epoch       bigint      NOT NULL,
    last_seq    bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    creator     text        NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE room_entries_archive (
    room_id text        NOT NULL,
    seq     bigint      NOT NULL,
    kind    text        NOT NULL,
    player  text        NOT NULL,
    body    bytea       NOT NULL,
    at      timestamptz NOT NULL,
    PRIMARY KEY (room_id, seq)
);
