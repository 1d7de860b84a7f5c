-- The shardwire demo: a small portfolio domain (clients, their portfolios,
-- holdings and transactions; assets and daily prices). Deterministic: the
-- same data on every run, generated inside Postgres.
SET ROLE demo;

CREATE TABLE assets (
    asset_id   integer PRIMARY KEY,
    symbol     text NOT NULL UNIQUE,
    name       text NOT NULL,
    sector     text NOT NULL
);

CREATE TABLE prices (
    asset_id   integer NOT NULL REFERENCES assets,
    day        date    NOT NULL,
    close      numeric(14, 4) NOT NULL,
    PRIMARY KEY (asset_id, day)
);

CREATE TABLE clients (
    client_id  bigint PRIMARY KEY,
    name       text NOT NULL,
    country    text NOT NULL,
    risk_aversion numeric(6, 3) NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE portfolios (
    client_id    bigint NOT NULL REFERENCES clients,
    portfolio_id bigint NOT NULL,
    name         text NOT NULL,
    PRIMARY KEY (client_id, portfolio_id)
);

CREATE TABLE holdings (
    client_id    bigint  NOT NULL,
    portfolio_id bigint  NOT NULL,
    asset_id     integer NOT NULL REFERENCES assets,
    quantity     numeric(18, 4) NOT NULL,
    PRIMARY KEY (client_id, portfolio_id, asset_id),
    FOREIGN KEY (client_id, portfolio_id) REFERENCES portfolios
);

CREATE TABLE transactions (
    client_id    bigint  NOT NULL,
    txn_id       bigint  NOT NULL,
    portfolio_id bigint  NOT NULL,
    asset_id     integer NOT NULL REFERENCES assets,
    quantity     numeric(18, 4) NOT NULL,
    price        numeric(14, 4) NOT NULL,
    executed_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, txn_id)
);

-- A number in [0, 1) derived from a key: deterministic pseudo-randomness.
CREATE FUNCTION demo_unit(key bigint) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ((hashint8(key)::bigint & 2147483647) % 1000003) / 1000003.0 $$;

INSERT INTO assets
SELECT a,
       'A' || lpad(a::text, 4, '0'),
       'Asset ' || a,
       (ARRAY['technology', 'health', 'energy', 'financials', 'industrials',
              'utilities', 'materials', 'consumer', 'telecom', 'real estate'])[1 + a % 10]
FROM generate_series(1, 1200) AS a;

INSERT INTO prices
SELECT asset_id, day,
       round(((20 + 180 * demo_unit(asset_id))
              * exp(sum((demo_unit(asset_id * 100000 + d) - 0.5) * 0.04)
                    OVER (PARTITION BY asset_id ORDER BY d)))::numeric, 4)
FROM (SELECT a AS asset_id, d, date '2025-01-01' + d AS day
      FROM generate_series(1, 1200) AS a, generate_series(0, 259) AS d) AS days;

INSERT INTO clients
SELECT c,
       'Client ' || c,
       (ARRAY['DE', 'FR', 'US', 'GB', 'JP', 'CH', 'NL', 'SE'])[1 + c % 8],
       round((1 + 9 * demo_unit(c + 7))::numeric, 3),
       timestamptz '2024-01-01' + c * interval '37 minutes'
FROM generate_series(1, 2000) AS c;

INSERT INTO portfolios
SELECT c, p, (ARRAY['growth', 'income', 'balanced'])[p]
FROM generate_series(1, 2000) AS c, generate_series(1, 2) AS p;

INSERT INTO holdings
SELECT c, p, 1 + ((c * 7919 + p * 104729 + h * 1299709) % 1200),
       round((1 + 999 * demo_unit(c * 1000 + p * 100 + h))::numeric, 4)
FROM generate_series(1, 2000) AS c, generate_series(1, 2) AS p, generate_series(1, 25) AS h
ON CONFLICT DO NOTHING;

INSERT INTO transactions
SELECT h.client_id,
       row_number() OVER (PARTITION BY h.client_id ORDER BY h.portfolio_id, h.asset_id),
       h.portfolio_id, h.asset_id, h.quantity,
       round((10 + 190 * demo_unit(h.asset_id * 31 + h.client_id))::numeric, 4),
       timestamptz '2025-01-02' + (h.client_id % 250) * interval '1 day'
FROM holdings AS h;

ANALYZE;
