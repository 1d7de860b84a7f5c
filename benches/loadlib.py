#!/usr/bin/env python3
"""Helpers for benches/load.sh (Python 3.11 standard library, plus asyncpg for
the idle-connections test only).

Subcommands:
  ports N                      print N distinct free TCP ports on 127.0.0.1
  wait-port PORT SECONDS       wait until 127.0.0.1:PORT accepts connections
  parse-pgbench FILE RC        print "OK|FAILED<TAB>tps<TAB>latency_ms<TAB>reason"
  table RESULTS.tsv            render the pgbench runs as markdown tables
  idle ...                     open N idle client connections, measure a pid's RSS
  idle-table RESULTS.jsonl     render the idle-connections results as markdown
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import socket
import statistics
import sys
import time


def cmd_ports(args: argparse.Namespace) -> None:
    socks = []
    try:
        for _ in range(args.n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


def cmd_wait_port(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", args.port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing accepts connections on 127.0.0.1:{args.port} after {args.seconds}s")


# --------------------------------------------------------------------------
# pgbench output

ERROR_RE = re.compile(r"(error:|fatal:|aborted|Run was aborted)", re.IGNORECASE)


def parse_pgbench(text: str, rc: int) -> tuple[str, float | None, float | None, str]:
    """Status, TPS, mean latency (ms) and the reason of a failure.

    A run fails when pgbench exits non-zero, prints an `error:`/`fatal:` line,
    reports aborted clients, or has failed transactions. The TPS of a failed
    run is never returned: the clients that survived do not represent it.
    """
    tps = lat = None
    reason = ""
    failed_tx = 0
    for line in text.splitlines():
        if m := re.match(r"tps = ([0-9.]+) \(without initial connection time\)", line):
            tps = float(m.group(1))
        elif m := re.match(r"latency average = ([0-9.]+) ms", line):
            lat = float(m.group(1))
        elif m := re.match(r"number of failed transactions: (\d+)", line):
            failed_tx = int(m.group(1))
        if not reason and ERROR_RE.search(line) and not line.startswith("number of failed"):
            reason = line.strip()
    lines = text.splitlines()
    errors = sum(1 for line in lines if "error:" in line)
    aborted = [m for line in lines
               if (m := re.search(r"client (\d+) script \d+ aborted in [^:]*: (.*)", line))]
    clients = next((int(m.group(1)) for line in lines
                    if (m := re.match(r"number of clients: (\d+)", line))), None)
    if rc != 0 or reason or failed_tx or tps is None:
        parts = []
        if aborted:
            parts.append(f"{len(aborted)}/{clients or '?'} clients aborted "
                         f"({' '.join(aborted[0].group(2).split())})")
        if reason and not aborted:
            parts.append(reason.removeprefix("pgbench: ").removeprefix("error: "))
        elif reason and "aborted in" not in reason:
            first = " ".join(reason.removeprefix("pgbench: ").removeprefix("error: ").split())
            parts.append(f"first error: {first}")
        if failed_tx:
            parts.append(f"{failed_tx} failed transactions")
        if rc != 0:
            parts.append(f"pgbench exit code {rc}")
        if tps is None:
            parts.append("no tps line")
        parts.append(f"{errors} error lines")
        return "FAILED", None, None, "; ".join(parts)
    return "OK", tps, lat, ""


def cmd_parse_pgbench(args: argparse.Namespace) -> None:
    with open(args.file, encoding="utf-8", errors="replace") as f:
        status, tps, lat, reason = parse_pgbench(f.read(), args.rc)
    reason = reason.replace("\t", " ").replace("|", "\\|")
    print(f"{status}\t{'' if tps is None else tps}\t{'' if lat is None else lat}\t{reason}")


TARGETS = ["direct", "shardwire", "shardwire-nostats", "pgbouncer"]
LABELS = {
    "direct": "Postgres 15 direct",
    "shardwire": "shardwire, transaction mode, pool 8",
    "shardwire-nostats": "shardwire, statistics off",
    "pgbouncer": "PgBouncer {v}, transaction mode, pool 8",
}


def fmt_int(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def cmd_table(args: argparse.Namespace) -> None:
    # round, mode, target, status, tps, lat, reason
    runs: dict[tuple[str, str], list[tuple[str, float | None, float | None, str]]] = (
        collections.defaultdict(list))
    modes: list[str] = []
    with open(args.file, encoding="utf-8") as f:
        for line in f:
            rnd, mode, target, status, tps, lat, reason = line.rstrip("\n").split("\t")
            if mode not in modes:
                modes.append(mode)
            runs[(target, mode)].append(
                (status, float(tps) if tps else None, float(lat) if lat else None, reason))

    def summary(target: str, mode: str):
        rs = runs.get((target, mode), [])
        if not rs:
            return None
        failed = [r for r in rs if r[0] != "OK"]
        if failed:
            return ("FAILED", None, None, failed[0][3])
        return ("OK", statistics.median(r[1] for r in rs),
                statistics.median(r[2] for r in rs), "")

    label = {k: v.format(v=args.pgbouncer_version) for k, v in LABELS.items()}
    out = []
    rounds = max(len(v) for v in runs.values()) if runs else 0
    agg = " (median of %d rounds)" % rounds if rounds > 1 else ""
    out.append(f"| target | mode | TPS{agg} | mean latency (ms) | vs direct |")
    out.append("|---|---|---:|---:|---:|")
    for mode in modes:
        base = summary("direct", mode)
        for target in TARGETS:
            s = summary(target, mode)
            if s is None:
                continue
            status, tps, lat, reason = s
            if status != "OK":
                out.append(f"| {label[target]} | {mode} | **FAILED**: {reason} | — | — |")
                continue
            ratio = tps / base[1] if base and base[0] == "OK" else None
            out.append(f"| {label[target]} | {mode} | {fmt_int(tps)} | {lat:.3f} | {fmt_ratio(ratio)} |")
    out.append("")
    out.append("| mode | shardwire / PgBouncer (TPS) | shardwire / direct | PgBouncer / direct "
               "| statistics on / off |")
    out.append("|---|---:|---:|---:|---:|")
    for mode in modes:
        d, s, n, p = (summary(t, mode) for t in TARGETS)
        ok = lambda x: x is not None and x[0] == "OK"  # noqa: E731
        sp = (s[1] / p[1]) if ok(s) and ok(p) else None
        sd = (s[1] / d[1]) if ok(s) and ok(d) else None
        pd = (p[1] / d[1]) if ok(p) and ok(d) else None
        cell = lambda r, x: fmt_ratio(r) if ok(x) else "— (run failed)"  # noqa: E731
        sp_cell = fmt_ratio(sp) if sp is not None else (
            "— (PgBouncer run failed)" if ok(s) else "— (shardwire run failed)")
        sn = (s[1] / n[1]) if ok(s) and ok(n) else None
        sn_cell = fmt_ratio(sn) if sn is not None else "— (run failed)"
        out.append(f"| {mode} | {sp_cell} | {cell(sd, s)} | {cell(pd, p)} | {sn_cell} |")
    if rounds > 1:
        out.append("")
        out.append("Individual runs (TPS):")
        out.append("")
        for mode in modes:
            for target in TARGETS:
                rs = runs.get((target, mode), [])
                cells = ", ".join(fmt_int(r[1]) if r[0] == "OK" else "FAILED" for r in rs)
                out.append(f"- {target} {mode}: {cells}")
    print("\n".join(out))


# --------------------------------------------------------------------------
# idle connections

def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def idle(args: argparse.Namespace) -> dict:
    import asyncpg  # installed by load.sh when missing

    result: dict = {"target": args.name, "clients_requested": args.n}
    time.sleep(1.0)
    result["rss_before_kib"] = rss_kib(args.pid)
    result["fds_before"] = fd_count(args.pid)
    deadline = time.monotonic() + args.timeout * args.rounds
    later_rounds = []
    for rnd in range(1, args.rounds + 1):
        r = result if rnd == 1 else {}
        await idle_round(asyncpg, args, r, deadline)
        if rnd > 1:
            later_rounds.append({k: r[k] for k in (
                "clients_open", "connect_error_count", "rss_open_kib", "rss_after_close_kib")})
    if later_rounds:
        result["later_rounds"] = later_rounds
    return result


async def idle_round(asyncpg, args: argparse.Namespace, result: dict, deadline: float) -> None:
    """Opens args.n connections, measures, checks a sample, closes them all."""
    sem = asyncio.Semaphore(args.concurrency)
    conns: list = []
    errors: collections.Counter = collections.Counter()
    before = rss_kib(args.pid)

    async def one() -> None:
        async with sem:
            if time.monotonic() > deadline:
                errors["deadline passed before connecting"] += 1
                return
            try:
                c = await asyncpg.connect(
                    host="127.0.0.1", port=args.port, user=args.user,
                    password=args.password, database=args.database, ssl=False,
                    statement_cache_size=0, timeout=60)
                conns.append(c)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors[f"{type(e).__name__}: {str(e)[:160]}"] += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.n)))
    result["connect_seconds"] = round(time.monotonic() - t0, 1)
    result["clients_open"] = len(conns)
    result["connect_errors"] = dict(errors.most_common(5))
    result["connect_error_count"] = sum(errors.values())
    await asyncio.sleep(2.0)
    result["rss_open_kib"] = rss_kib(args.pid)
    result["fds_open"] = fd_count(args.pid)
    opened = max(1, len(conns))
    result["kib_per_client"] = round((result["rss_open_kib"] - before) / opened, 2)

    # Are the connections real sessions? Run a simple query on a sample
    # (after the measurement, so the idle figure is not mixed with pool growth).
    sample = conns[:: max(1, len(conns) // 100)][:100]
    ok = 0
    bad: collections.Counter = collections.Counter()
    for c in sample:
        try:
            # execute() without arguments uses the simple query protocol.
            if await asyncio.wait_for(c.execute("SELECT 1"), 30) == "SELECT 1":
                ok += 1
        except Exception as e:  # noqa: BLE001
            bad[f"{type(e).__name__}: {str(e)[:160]}"] += 1
    result["sample_queries_ok"] = f"{ok}/{len(sample)}"
    result["sample_query_errors"] = dict(bad.most_common(3))

    close_sem = asyncio.Semaphore(args.concurrency)

    async def close(c) -> None:
        async with close_sem:
            try:
                await asyncio.wait_for(c.close(), 10)
            except Exception:  # noqa: BLE001
                c.terminate()

    await asyncio.gather(*(close(c) for c in conns))
    await asyncio.sleep(2.0)
    result["rss_after_close_kib"] = rss_kib(args.pid)
    result["fds_after_close"] = fd_count(args.pid)


def cmd_idle(args: argparse.Namespace) -> None:
    try:
        res = asyncio.run(idle(args))
    except Exception as e:  # noqa: BLE001
        res = {"target": args.name, "clients_requested": args.n, "fatal": f"{type(e).__name__}: {e}"}
    line = json.dumps(res)
    print(line)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def cmd_idle_table(args: argparse.Namespace) -> None:
    rows = []
    with open(args.file, encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
    out = ["| proxy | clients open / asked | RSS before (MiB) | RSS with clients open (MiB) "
           "| **KiB per client** | proxy fds open | connect time (s) | sample `SELECT 1` | RSS after close (MiB) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for r in rows:
        if "fatal" in r:
            out.append(f"| {r['target']} | FAILED: {r['fatal']} | | | | | | | |")
            continue
        mib = lambda k: f"{r[k] / 1024:.1f}"  # noqa: E731
        out.append(
            f"| {r['target']} | {r['clients_open']:,} / {r['clients_requested']:,} | {mib('rss_before_kib')} "
            f"| {mib('rss_open_kib')} | **{r['kib_per_client']:.1f}** | {r['fds_open']:,} "
            f"| {r['connect_seconds']} | {r['sample_queries_ok']} | {mib('rss_after_close_kib')} |")
        if r.get("connect_errors"):
            notes.append(f"- {r['target']}: {r['connect_error_count']} connection errors: "
                         + "; ".join(f"{k} (x{v})" for k, v in r["connect_errors"].items()))
        for i, lr in enumerate(r.get("later_rounds", []), start=2):
            notes.append(f"- {r['target']}, round {i} (same process, same {r['clients_requested']:,} clients "
                         f"again): {lr['clients_open']:,} open, RSS open {lr['rss_open_kib'] / 1024:.1f} MiB, "
                         f"after close {lr['rss_after_close_kib'] / 1024:.1f} MiB"
                         + (f", {lr['connect_error_count']} connection errors" if lr["connect_error_count"] else ""))
        if r.get("sample_query_errors"):
            notes.append(f"- {r['target']}: sample query errors: "
                         + "; ".join(f"{k} (x{v})" for k, v in r["sample_query_errors"].items()))
    print("\n".join(out + ([""] + notes if notes else [])))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ports"); s.add_argument("n", type=int); s.set_defaults(f=cmd_ports)
    s = sub.add_parser("wait-port"); s.add_argument("port", type=int)
    s.add_argument("seconds", type=float); s.set_defaults(f=cmd_wait_port)
    s = sub.add_parser("parse-pgbench"); s.add_argument("file"); s.add_argument("rc", type=int)
    s.set_defaults(f=cmd_parse_pgbench)
    s = sub.add_parser("table"); s.add_argument("file")
    s.add_argument("--pgbouncer-version", default="?"); s.set_defaults(f=cmd_table)
    s = sub.add_parser("idle")
    s.add_argument("--name", required=True); s.add_argument("--pid", type=int, required=True)
    s.add_argument("--port", type=int, required=True); s.add_argument("--user", required=True)
    s.add_argument("--password", required=True); s.add_argument("--database", required=True)
    s.add_argument("-n", type=int, default=10_000); s.add_argument("--concurrency", type=int, default=64)
    s.add_argument("--timeout", type=float, default=600)
    s.add_argument("--rounds", type=int, default=1); s.add_argument("--out", required=True)
    s.set_defaults(f=cmd_idle)
    s = sub.add_parser("idle-table"); s.add_argument("file"); s.set_defaults(f=cmd_idle_table)
    args = p.parse_args()
    args.f(args)


if __name__ == "__main__":
    main()
