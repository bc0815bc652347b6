-- Relations of the friends service. The migration runs with search_path set
-- to the service's schema (friends by default), so names are unqualified.
--
-- One row per side: (user_id, other_id) is user_id's relation with
-- other_id. Friends and requests have both sides (friend and friend; invite
-- sent and invite received, updated together); a block has only the
-- blocker's side.
CREATE TABLE edges (
    user_id    text        NOT NULL CHECK (user_id <> '' AND octet_length(user_id) <= 64),
    other_id   text        NOT NULL CHECK (other_id <> '' AND octet_length(other_id) <= 64 AND other_id <> user_id),
    -- state is Nakama's numbering: 0 friend, 1 invite sent, 2 invite
    -- received, 3 blocked.
    state      smallint    NOT NULL CHECK (state BETWEEN 0 AND 3),
    -- updated_at is when the state last changed; an invite expires
    -- request_ttl after it.
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, other_id)
);

-- List: a user's relations, most recently changed first.
CREATE INDEX edges_list ON edges (user_id, updated_at DESC, other_id);

-- Purge: expired invites, oldest first.
CREATE INDEX edges_invites ON edges (updated_at) WHERE state IN (1, 2);
