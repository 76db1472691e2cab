-- Locations and API keys: the configuration that must survive losing Redis.
CREATE TABLE locations (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    kind              text NOT NULL,
    lat               double precision,
    lon               double precision,
    pickup            boolean NOT NULL,
    ship_from         boolean NOT NULL,
    groups            text[] NOT NULL DEFAULT '{}',
    safety_stock      bigint NOT NULL DEFAULT 0,
    limited_threshold bigint NOT NULL DEFAULT 2,
    timezone          text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX locations_groups ON locations USING gin (groups);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL,
    locations   text[] NOT NULL DEFAULT '{}',
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
