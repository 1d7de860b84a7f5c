#!/usr/bin/env python3
"""Helpers for benches/replicas.sh (Python 3.11 standard library only).

Subcommands:
  record ...        judge one pgbench run (via loadlib.parse_pgbench), compute
                    its p99 latencies from the per-transaction logs and the
                    per-server statement counts from two pg_stat snapshots;
                    append one TSV line to --out
  table RUNS.tsv    render the recorded runs as markdown tables

A stats snapshot file has one line per server:
  name<TAB>idx_scan<TAB>n_tup_upd<TAB>xact_commit
where idx_scan and n_tup_upd are those of pgbench_accounts (pg_stat_user_tables)
and xact_commit that of the bench database (pg_stat_database). Every statement
of the mix is one index scan of pgbench_accounts' primary key, and every
UPDATE updates one row, so on a server SELECTs = idx_scan - n_tup_upd.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from loadlib import fmt_int, fmt_ratio, parse_pgbench  # noqa: E402

# Columns of the runs TSV, in order.
COLUMNS = ["run", "label", "status", "tps", "reason", "transactions", "p99", "p99_select",
           "p99_update", "servers"]
SELECT_SCRIPT = "0"   # -f select.sql@9 comes first on pgbench's command line
UPDATE_SCRIPT = "1"


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def read_latencies(log_dir: str) -> tuple[list[float], dict[str, list[float]]]:
    """Latencies (ms) of all completed transactions in the pgbench -l files of
    log_dir, overall and per script number. Lines of failed or skipped
    transactions (no number in the latency column) are left out."""
    overall: list[float] = []
    per_script: dict[str, list[float]] = {}
    for name in sorted(os.listdir(log_dir)):
        if not name.startswith("pgbench_log"):
            continue
        with open(os.path.join(log_dir, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                # client_id transaction_no time_us script_no epoch epoch_us ...
                if len(fields) < 4 or not fields[2].isdigit():
                    continue
                ms = int(fields[2]) / 1000.0
                overall.append(ms)
                per_script.setdefault(fields[3], []).append(ms)
    overall.sort()
    for values in per_script.values():
        values.sort()
    return overall, per_script


def read_snapshot(path: str) -> dict[str, tuple[int, int, int]]:
    snapshot = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 4:
                name, idx, upd, xact = fields
                snapshot[name] = (int(idx or 0), int(upd or 0), int(xact or 0))
    return snapshot


def server_counts(before: str, after: str) -> str:
    """`name=selects/updates/commits,...` per server, from two snapshots."""
    b, a = read_snapshot(before), read_snapshot(after)
    parts = []
    for name, (idx, upd, xact) in a.items():
        idx0, upd0, xact0 = b.get(name, (0, 0, 0))
        updates = upd - upd0
        parts.append(f"{name}={idx - idx0 - updates}/{updates}/{xact - xact0}")
    return ",".join(parts)


def fmt_ms(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def cmd_record(args: argparse.Namespace) -> None:
    with open(args.pgbench_out, encoding="utf-8", errors="replace") as f:
        status, tps, _, reason = parse_pgbench(f.read(), args.rc)
    overall, per_script = read_latencies(args.log_dir)
    row = {
        "run": args.run,
        "label": args.label,
        "status": status,
        "tps": "" if tps is None else f"{tps}",
        "reason": reason.replace("\t", " ").replace("|", "\\|"),
        "transactions": str(len(overall)),
        "p99": fmt_ms(percentile(overall, 0.99)),
        "p99_select": fmt_ms(percentile(per_script.get(SELECT_SCRIPT, []), 0.99)),
        "p99_update": fmt_ms(percentile(per_script.get(UPDATE_SCRIPT, []), 0.99)),
        "servers": server_counts(args.before, args.after),
    }
    with open(args.out, "a", encoding="utf-8") as f:
        f.write("\t".join(row[c] for c in COLUMNS) + "\n")
    print(f"{row['status']} tps={row['tps'] or '—'} p99={row['p99'] or '—'} ms "
          f"servers={row['servers']} {row['reason']}")


def read_runs(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [dict(zip(COLUMNS, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def number(s: str) -> float | None:
    return float(s) if s else None


def ratio(x: float | None, base: float | None) -> float | None:
    return None if x is None or not base else x / base


def parse_servers(s: str) -> dict[str, tuple[int, int, int]]:
    counts = {}
    for part in filter(None, s.split(",")):
        name, values = part.split("=", 1)
        sel, upd, xact = (int(v) for v in values.split("/"))
        counts[name] = (sel, upd, xact)
    return counts


def cmd_table(args: argparse.Namespace) -> None:
    runs = read_runs(args.file)
    direct = next((r for r in runs if r["run"] == "direct"), None)
    base_tps = number(direct["tps"]) if direct and direct["status"] == "OK" else None
    base_p99 = number(direct["p99"]) if direct and direct["status"] == "OK" else None
    out = ["| run | TPS | p99 (ms) | **TPS vs direct** | **p99 vs direct** | p99 SELECT (ms) | p99 UPDATE (ms) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        if r["status"] != "OK":
            out.append(f"| {r['label']} | **FAILED**: {r['reason']} | — | — | — | — | — |")
            continue
        tps, p99 = number(r["tps"]), number(r["p99"])
        out.append(f"| {r['label']} | {fmt_int(tps)} | {r['p99'] or '—'} | {fmt_ratio(ratio(tps, base_tps))} "
                   f"| {fmt_ratio(ratio(p99, base_p99))} | {r['p99_select'] or '—'} | {r['p99_update'] or '—'} |")
    servers: list[str] = []
    for r in runs:
        for name in parse_servers(r["servers"]):
            if name not in servers:
                servers.append(name)
    out += ["", "Statements each server executed during the run (from `pg_stat_user_tables` of "
            "`pgbench_accounts` and `pg_stat_database`, before/after deltas; SELECTs = index scans "
            "− updated rows):", "",
            "| run | " + " | ".join(f"{s} SELECTs" for s in servers)
            + " | UPDATEs (primary) | SELECTs on replicas | commits per server |",
            "|---|" + "---:|" * (len(servers) + 3)]
    for r in runs:
        counts = parse_servers(r["servers"])
        selects = [counts.get(s, (0, 0, 0))[0] for s in servers]
        total = sum(selects)
        on_replicas = sum(sel for s, sel in zip(servers, selects) if s != "primary")
        share = f"{100 * on_replicas / total:.1f} %" if total else "—"
        updates = counts.get("primary", (0, 0, 0))[1]
        commits = ", ".join(f"{s} {counts[s][2]:,}" for s in servers if s in counts)
        out.append(f"| {r['label']} | " + " | ".join(f"{v:,}" for v in selects)
                   + f" | {updates:,} | {share} | {commits} |")
    print("\n".join(out))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("record")
    for name in ["--run", "--label", "--pgbench-out", "--log-dir", "--before", "--after", "--out"]:
        s.add_argument(name, required=True)
    s.add_argument("--rc", type=int, required=True)
    s.set_defaults(f=cmd_record)
    s = sub.add_parser("table"); s.add_argument("file"); s.set_defaults(f=cmd_table)
    args = p.parse_args()
    args.f(args)


if __name__ == "__main__":
    main()
