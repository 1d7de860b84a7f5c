-- The demo's data, one query per table, each after a line naming its table.
-- Deterministic: the same rows on every run. Each query is run as
-- COPY (query) TO STDOUT on shard0 and its rows are loaded through the proxy
-- with COPY <table> FROM STDIN, which splits them across the shards.
-- table: assets
SELECT a,
       'A' || lpad(a::text, 4, '0'),
       'Asset ' || a,
       (ARRAY['technology', 'health', 'energy', 'financials', 'industrials',
              'utilities', 'materials', 'consumer', 'telecom', 'real estate'])[1 + a % 10]
FROM generate_series(1, 1200) AS a
-- table: prices
SELECT asset_id, day,
       round(((20 + 180 * demo_unit(asset_id))
              * exp(sum((demo_unit(asset_id * 100000 + d) - 0.5) * 0.04)
                    OVER (PARTITION BY asset_id ORDER BY d)))::numeric, 4)
FROM (SELECT a AS asset_id, d, date '2025-01-01' + d AS day
      FROM generate_series(1, 1200) AS a, generate_series(0, 259) AS d) AS days
-- table: clients
SELECT c,
       'Client ' || c,
       (ARRAY['DE', 'FR', 'US', 'GB', 'JP', 'CH', 'NL', 'SE'])[1 + c % 8],
       round((1 + 9 * demo_unit(c + 7))::numeric, 3),
       timestamptz '2024-01-01' + c * interval '37 minutes'
FROM generate_series(1, 2000) AS c
-- table: portfolios
SELECT c, p, (ARRAY['growth', 'income', 'balanced'])[p]
FROM generate_series(1, 2000) AS c, generate_series(1, 2) AS p
-- table: holdings
SELECT DISTINCT ON (c, p, asset) c, p, asset,
       round((1 + 999 * demo_unit(c * 1000 + p * 100 + h))::numeric, 4)
FROM (SELECT c, p, h, 1 + ((c * 7919 + p * 104729 + h * 1299709) % 1200) AS asset
      FROM generate_series(1, 2000) AS c, generate_series(1, 2) AS p,
           generate_series(1, 25) AS h) AS picks
ORDER BY c, p, asset, h
-- table: transactions
SELECT h.client_id,
       row_number() OVER (PARTITION BY h.client_id ORDER BY h.portfolio_id, h.asset_id),
       h.portfolio_id, h.asset_id, h.quantity,
       round((10 + 190 * demo_unit(h.asset_id * 31 + h.client_id))::numeric, 4),
       timestamptz '2025-01-02' + (h.client_id % 250) * interval '1 day'
FROM (SELECT DISTINCT ON (c, p, asset) c AS client_id, p AS portfolio_id, asset AS asset_id,
             round((1 + 999 * demo_unit(c * 1000 + p * 100 + h))::numeric, 4) AS quantity
      FROM (SELECT c, p, h, 1 + ((c * 7919 + p * 104729 + h * 1299709) % 1200) AS asset
            FROM generate_series(1, 2000) AS c, generate_series(1, 2) AS p,
                 generate_series(1, 25) AS h) AS picks
      ORDER BY c, p, asset, h) AS h
