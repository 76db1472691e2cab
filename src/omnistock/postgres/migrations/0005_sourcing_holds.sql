-- Sourcing holds (issue 12): the record of each cross-partition hold (domain/sourcing_holds.py),
-- written by the persister from the streams' `o` events, newest event wins (like reservations).
-- GET falls back to it once Redis forgot a record; rebuild restores the unfinished ones from it.
CREATE TABLE sourcing_holds (
    id          text PRIMARY KEY,
    status      text NOT NULL,                 -- pending, compensating, held, failed, released
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    doc         jsonb NOT NULL,                -- the record as the scripts keep it
    event_ms    bigint NOT NULL,               -- stream id of the event that wrote this row,
    event_seq   bigint NOT NULL                -- so an older event never overwrites a newer one
);
-- Pruning takes finished records oldest first; rebuild reads the unfinished ones.
CREATE INDEX sourcing_holds_finished ON sourcing_holds (updated_at)
    WHERE status IN ('held', 'failed', 'released');
CREATE INDEX sourcing_holds_unfinished ON sourcing_holds (id)
    WHERE status IN ('pending', 'compensating');
