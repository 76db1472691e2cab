-- Retention (issue 10): what the pruning loop (postgres/prune.py) needs to find old rows by an
-- index, oldest first, in small batches; and where the persister keeps entries it cannot write.
CREATE INDEX ledger_ts ON ledger (ts);
CREATE INDEX reservations_finished ON reservations (event_ms) WHERE status <> 'active';
CREATE INDEX idempotency_expires ON idempotency (expires_at);

CREATE TABLE quarantined_events (
    event_id       text PRIMARY KEY,             -- '<partition>:<stream id>'
    partition      integer NOT NULL,
    fields         bytea NOT NULL,               -- the entry's fields as a MessagePack map
    error          text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
