#!/usr/bin/env python3
"""Helpers for scripts/bench.sh: ports, waiting for servers, timing whole
processes, filling a SparkQ database for the scale tests, and the report.

Usage: helper.py COMMAND [ARGS] (see each command's argparse help).
Side effects: `fill` writes rows into the SparkQ database it is given; the
report writes the results file it is told to. Everything else only reads or
connects to 127.0.0.1.
"""

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port(_args):
    # N.B. the port is free when this returns; another process could take it
    # before the server binds it, which on a quiet loopback does not happen.
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        print(s.getsockname()[1])


def wait_port(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, args.port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"helper: nothing listens on {LOOPBACK}:{args.port} after {args.timeout} s")


def health_ok(url):
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_url(args):
    """Prints the URL a `sparkq run --port 0` announces on its first line,
    once /health answers."""
    deadline = time.monotonic() + args.timeout
    url = None
    while time.monotonic() < deadline:
        if url is None:
            try:
                with open(args.file, encoding="utf-8") as f:
                    first = f.readline()
            except OSError:
                first = ""
            if first.startswith("http://") and first.endswith("\n"):
                url = first.strip()
        if url and health_ok(url):
            print(url)
            return
        try:
            os.kill(args.pid, 0)
        except OSError:
            sys.exit(f"helper: server (pid {args.pid}) exited before answering")
        time.sleep(0.01)
    sys.exit(f"helper: server gave no answering URL in {args.timeout} s")


def summary_ms(samples):
    samples = sorted(samples)
    if not samples:
        return {"runs": 0}
    p90 = samples[min(len(samples) - 1, max(0, int(len(samples) * 0.9 + 0.5) - 1))]
    return {
        "runs": len(samples),
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(p90, 2),
        "min_ms": round(samples[0], 2),
        "max_ms": round(samples[-1], 2),
    }


def startup(args):
    """Times `sparkq run --port 0` from spawn to the first answered /health."""
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [args.bin, "--config", args.config, "run", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = proc.stdout.readline().strip()
            if not url.startswith("http://"):
                sys.exit(f"helper: sparkq run printed {url!r}, not a URL")
            while not health_ok(url):
                if proc.poll() is not None or time.perf_counter() - start > 30:
                    sys.exit("helper: sparkq run never answered /health")
                time.sleep(0.001)
            times.append((time.perf_counter() - start) * 1000)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(json.dumps(summary_ms(times)))


def time_cmds(args):
    """Runs a command many times; exit 0 and 1 (nothing to claim) count as
    answers, anything else as a failure."""
    times, failures, last_err = [], 0, ""
    for _ in range(args.runs):
        start = time.perf_counter()
        proc = subprocess.run(args.cmd, capture_output=True, text=True, timeout=60)
        elapsed = (time.perf_counter() - start) * 1000
        if proc.returncode in (0, 1):
            times.append(elapsed)
        else:
            failures += 1
            last_err = proc.stderr.strip()[-200:]
    out = summary_ms(times)
    out["failures"] = failures
    if last_err:
        out["last_error"] = last_err
    print(json.dumps(out))


TASK_COLUMNS = (
    "id", "stream_id", "tool_name", "task_class", "payload", "status", "timeout", "attempts",
    "worker_id", "result_summary", "created_at", "updated_at", "claimed_at", "finished_at",
)

# Out of every 20 mixed tasks: 13 succeeded, 2 failed, 4 queued, 1 running.
MIX = ["succeeded"] * 13 + ["failed"] * 2 + ["queued"] * 4 + ["running"]


def fill(args):
    """Adds rows to a database whose schema `sparkq` itself created.

    Only a column list that the schema has is written, and the triggers that
    keep the per-stream counts run as for any insert.
    """
    db = sqlite3.connect(args.db, timeout=30)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    missing = [c for c in TASK_COLUMNS if c not in columns]
    if version < 1 or missing:
        sys.exit(f"helper: unexpected schema (user_version {version}, missing {missing})")
    streams = dict(db.execute("SELECT name, id FROM streams"))
    if args.probe not in streams:
        sys.exit(f"helper: no stream named {args.probe!r}")
    fillers = [sid for name, sid in sorted(streams.items()) if name != args.probe]
    if (args.mixed or args.old_finished) and not fillers:
        sys.exit("helper: no stream besides the probe stream to fill")
    now = int(time.time() * 1000)
    # Ids keep SparkQ's form (prefix and 12 hex digits); a counter from a
    # random base makes them unique without a look-up.
    base = int.from_bytes(os.urandom(6), "big") & 0x7FFFFFFFFFFF

    def rows():
        n = 0
        payload = '{"script":"disk-usage.sh","args":["."]}'
        for i in range(args.old_finished):
            n += 1
            done = now - 10 * 86_400_000 + i
            yield (f"tsk_{(base + n) & 0xFFFFFFFFFFFF:012x}", fillers[i % len(fillers)],
                   "run-bash", "MEDIUM_SCRIPT", payload, "succeeded", 300, 1, "bench",
                   "exit 0: done", done - 10, done, done - 5, done)
        for i in range(args.mixed):
            n += 1
            status = MIX[i % len(MIX)]
            t = now - 3_600_000 + i % 3_600_000
            finished = t + 5 if status in ("succeeded", "failed") else None
            claimed = t + 1 if status != "queued" else None
            yield (f"tsk_{(base + n) & 0xFFFFFFFFFFFF:012x}", fillers[i % len(fillers)],
                   "run-bash", "MEDIUM_SCRIPT", payload, status,
                   # Running tasks get a day so that the sweep leaves them be.
                   86_400 if status == "running" else 300,
                   0 if status == "queued" else 1, None if status == "queued" else "bench",
                   "exit 0: done" if status == "succeeded" else None,
                   t, finished or claimed or t, claimed, finished)
        for i in range(args.probe_queued):
            n += 1
            t = now + i
            yield (f"tsk_{(base + n) & 0xFFFFFFFFFFFF:012x}", streams[args.probe],
                   "run-bash", "MEDIUM_SCRIPT", payload, "queued", 300, 0, None, None,
                   t, t, None, None)

    start = time.perf_counter()
    with db:
        db.executemany(
            f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(TASK_COLUMNS))})",
            rows(),
        )
    total = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
    db.close()
    print(json.dumps({"tasks": total, "fill_seconds": round(time.perf_counter() - start, 2)}))


def fmt_us(us):
    if us is None:
        return "-"
    if us >= 1_000_000:
        return f"{us / 1e6:.2f}s"
    if us >= 1000:
        return f"{us / 1000:.1f}ms"
    return f"{us}us"


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def report(args):
    """Prints the tables and writes the results file from the JSON lines
    that bench.sh collected."""
    result = {"throughput": [], "scale": [], "problems": []}
    with open(args.lines, encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            section = item.pop("section")
            if section in ("throughput", "scale", "problems"):
                result[section].append(item)
            else:
                result.setdefault(section, {}).update(item)

    runs = {}
    for r in result["throughput"]:
        runs[(r["workload"], r["workers"], r["target"])] = r
    ratios = []
    for (workload, workers, target), r in sorted(
        runs.items(), key=lambda kv: ({"lifecycle": 0, "enqueue": 1}.get(kv[0][0], 2), kv[0][1])
    ):
        if target != "sparkq":
            continue
        row = {"workload": workload, "workers": workers}
        for peer in ("beanstalkd", "redis"):
            p = runs.get((workload, workers, peer))
            row[f"vs_{peer}"] = ratio(r["tasks_per_sec"], p and p["tasks_per_sec"])
        ratios.append(row)
    result["ratios"] = ratios

    out = []
    meta = result.get("meta", {})
    out.append(f"SparkQ benchmark {meta.get('date', '')}"
               f"{' (quick)' if meta.get('quick') else ''}: {meta.get('machine', '')}")
    versions = meta.get("versions", {})
    out.append("versions: " + "; ".join(f"{v}" for v in versions.values() if v))
    out.append(f"durability: {meta.get('durability', '')}")
    out.append("")
    out.append("Throughput and latency per request kind (p50/p90/p99/max):")
    head = f"{'workload':<10}{'n':>3} {'target':<11}{'tasks/s':>9}{'req/s':>9}{'err':>5}  "
    out.append(head + "enqueue | claim | complete")
    order = {"lifecycle": 0, "enqueue": 1, "drain": 2}
    for (workload, workers, target), r in sorted(
        runs.items(),
        key=lambda kv: (order.get(kv[0][0], 9), kv[0][1], kv[0][2] != "sparkq", kv[0][2]),
    ):
        lat = []
        for kind in ("enqueue", "claim", "complete"):
            s = r["latency_us"].get(kind)
            lat.append("/".join(fmt_us(s[k]) for k in ("p50", "p90", "p99", "max")) if s else "-")
        out.append(f"{workload:<10}{workers:>3} {target:<11}{r['tasks_per_sec']:>9.0f}"
                   f"{r['requests_per_sec']:>9.0f}{r['errors']:>5}  " + " | ".join(lat))
    out.append("")
    out.append("SparkQ tasks/s as a ratio to each peer (same workload, same workers):")
    out.append(f"{'workload':<10}{'n':>3} {'vs beanstalkd':>14} {'vs redis':>10}")
    for row in ratios:
        vb = row["vs_beanstalkd"]
        vr = row["vs_redis"]
        out.append(f"{row['workload']:<10}{row['workers']:>3} "
                   f"{'-' if vb is None else f'{vb:.3f}':>14} {'-' if vr is None else f'{vr:.3f}':>10}")

    cli = result.get("cli")
    if cli:
        out.append("")
        out.append(f"CLI, whole processes, on a database of {cli.get('tasks_in_db')} tasks "
                   f"({cli.get('runs')} runs each):")
        for name in ("peek", "enqueue", "claim"):
            s = cli.get(name, {})
            out.append(f"  sparkq {name:<8} median {s.get('median_ms')} ms, "
                       f"p90 {s.get('p90_ms')} ms, failures {s.get('failures')}")
    if result["scale"]:
        out.append("")
        out.append("Claim latency by table size (one worker draining a probe stream):")
        for s in result["scale"]:
            c = s["run"]["latency_us"].get("claim", {})
            out.append(f"  {s['tasks_in_table']:>9} tasks: claim p50 {fmt_us(c.get('p50'))} "
                       f"p99 {fmt_us(c.get('p99'))} max {fmt_us(c.get('max'))}, "
                       f"{s['run']['tasks_per_sec']:.0f} tasks/s, errors {s['run']['errors']}")
    purge = result.get("purge")
    if purge:
        lat = purge["run"]["latency_us"]
        c = lat.get("claim", {})
        worst = max((s.get("max", 0) for s in lat.values()), default=None)
        out.append("")
        out.append(f"Purge of {purge.get('purged')} finished tasks took {purge.get('seconds')} s "
                   f"while one worker drained a queue: claim p50 {fmt_us(c.get('p50'))}, "
                   f"claim max {fmt_us(c.get('max'))}, any request max {fmt_us(worst)}, "
                   f"errors {purge['run']['errors']}")
    fp = result.get("footprint")
    if fp:
        out.append("")
        out.append("Footprint:")
        out.append(f"  server RSS idle {fp.get('rss_idle_kb')} kB, peak {fp.get('rss_peak_kb')} kB "
                   f"(under {fp.get('peak_under')})")
        st = fp.get("startup", {})
        out.append(f"  start to first /health: median {st.get('median_ms')} ms "
                   f"({st.get('runs')} runs)")
        build = fp.get("clean_build_seconds")
        out.append(f"  release binary {fp.get('binary_bytes')} bytes; "
                   f"{fp.get('crates')} crates in cargo tree; clean release build "
                   + ("skipped" if build is None else f"{build} s"))
    if result["problems"]:
        out.append("")
        out.append("PROBLEMS:")
        for p in result["problems"]:
            out.append(f"  {p.get('what')}")
    print("\n".join(out))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"\nresults written to {args.out}")


def main(argv):
    parser = argparse.ArgumentParser(prog="helper.py")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("free-port").set_defaults(func=free_port)
    p = sub.add_parser("wait-port")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=20)
    p.set_defaults(func=wait_port)
    p = sub.add_parser("wait-url")
    p.add_argument("file")
    p.add_argument("pid", type=int)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=wait_url)
    p = sub.add_parser("startup")
    p.add_argument("bin")
    p.add_argument("config")
    p.add_argument("--runs", type=int, default=5)
    p.set_defaults(func=startup)
    p = sub.add_parser("time-cmds")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(func=time_cmds)
    p = sub.add_parser("fill")
    p.add_argument("db")
    p.add_argument("--probe", required=True, help="stream that gets the queued probe tasks")
    p.add_argument("--probe-queued", type=int, default=0)
    p.add_argument("--mixed", type=int, default=0, help="tasks of mixed status elsewhere")
    p.add_argument("--old-finished", type=int, default=0, help="succeeded 10 days ago")
    p.set_defaults(func=fill)
    p = sub.add_parser("report")
    p.add_argument("lines")
    p.add_argument("out")
    p.set_defaults(func=report)
    args = parser.parse_args(argv)
    if args.command == "time-cmds" and args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
