-- Read of the mix: a point select by primary key (weight 9 in replicas.sh).
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
