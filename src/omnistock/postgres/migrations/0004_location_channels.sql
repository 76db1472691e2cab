-- Locations (additions, issue 12): sourcing priority (lower is preferred) and per-channel safety
-- stock, {channel: units} that the channel may not take at this location on top of safety_stock.
ALTER TABLE locations
    ADD COLUMN priority integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 1000),
    ADD COLUMN channel_safety_stock jsonb NOT NULL DEFAULT '{}'::jsonb;
