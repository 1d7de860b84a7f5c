-- Write of the mix: a point update by primary key (weight 1 in replicas.sh).
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
