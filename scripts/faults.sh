#!/usr/bin/env bash
# name: faults
# description: Crash test: runs a mixed load on a SparkQ server, kills it with SIGKILL at random moments, restarts it and checks that nothing acknowledged was lost and nothing was claimed twice
# inputs: [--cycles N] [--seconds-per-cycle S] [--seed N] [--bin PATH] [--time-limit S] [--keep]
# outputs: one line per cycle, then "faults: cycles=N acknowledged=N lost=0 double_claims=0 bad_states=0 server_errors=0 integrity=ok"; exit 0 only when all of those hold
# tags: test, faults, crash, durability
#
# Purpose: SPEC rules 2 and 7 under crashes. Each cycle starts `sparkq run
# --port 0` on a queue in a temporary folder, drives it from HTTP threads
# and CLI processes at once (enqueue, claim, complete, fail, requeue; some
# tasks time out so the sweep joins in; a few CLI processes are killed
# mid-command too), kills the server with SIGKILL after a random time, and
# then checks the database as the crash left it (opened read-only with
# python3's sqlite3) and, after a restart, through the API:
#   - every task the API (201 + id) or the CLI (exit 0 + id) acknowledged
#     exists;
#   - no task is in an impossible state (fields that contradict the status,
#     attempts other than 0 or 1, a success past the 2x deadline, stream
#     counters that disagree with the rows), and every task is in the state
#     its worker was told (a 200 complete stays succeeded, a refusal that
#     said "auto-failed" is a TIMEOUT failure);
#   - PRAGMA integrity_check is ok, and /stats counts every row;
#   - no task id was handed out by two successful claims. A claim whose
#     answer was lost in the crash is not a claim anybody acted on, so it
#     is not counted.
#
# Usage: scripts/faults.sh [--cycles N] [--seconds-per-cycle S] [--seed N]
#                          [--bin PATH] [--time-limit S] [--keep]
#   --cycles N             kill/restart cycles (default 5)
#   --seconds-per-cycle S  longest load before the kill; the kill comes at a
#                          random moment in it (default 2)
#   --seed N               seed for the random choices (default: random)
#   --bin PATH             the sparkq binary (default: $SPARKQ_BIN, else
#                          target/debug/sparkq under $CARGO_TARGET_DIR or
#                          beside this script)
#   --time-limit S         hard limit for the whole run (default: from the
#                          cycles); past it everything is stopped, exit 3
#   --keep                 keep the temporary folder even when all is well
# Exit: 0 all checks held; 1 a check failed; 2 usage or setup error;
# 3 the time limit was reached; 130 interrupted.
#
# Side effects: a folder under $TMPDIR (removed at the end unless --keep or
# a check failed; its path is printed then), servers on 127.0.0.1 only.
# Every process it starts is killed when it exits, however it exits.
# Needs bash, coreutils (timeout, mktemp) and python3 (standard library).

set -euo pipefail

usage() {
    sed -n '/^# Usage:/,/^# Exit:/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cycles=5
seconds=2
seed=""
bin="${SPARKQ_BIN:-}"
limit=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cycles) cycles="${2:-}"; shift 2 || usage ;;
        --seconds-per-cycle) seconds="${2:-}"; shift 2 || usage ;;
        --seed) seed="${2:-}"; shift 2 || usage ;;
        --bin) bin="${2:-}"; shift 2 || usage ;;
        --time-limit) limit="${2:-}"; shift 2 || usage ;;
        --keep) keep=1; shift ;;
        -h|--help) usage ;;
        *) echo "faults.sh: unknown option \"$1\"" >&2; usage ;;
    esac
done
case "$cycles" in ''|*[!0-9]*|0) echo "faults.sh: --cycles must be a whole number from 1, not \"$cycles\"" >&2; exit 2 ;; esac
if ! python3 -c 'import sys; v = float(sys.argv[1]); sys.exit(0 if 0.2 <= v <= 600 else 1)' "$seconds" 2>/dev/null; then
    echo "faults.sh: --seconds-per-cycle must be a number from 0.2 to 600, not \"$seconds\"" >&2
    exit 2
fi
case "$seed" in *[!0-9]*) echo "faults.sh: --seed must be a whole number, not \"$seed\"" >&2; exit 2 ;; esac

here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "$bin" ]; then
    bin="${CARGO_TARGET_DIR:-$here/../target}/debug/sparkq"
fi
if [ ! -x "$bin" ]; then
    echo "faults.sh: no sparkq binary at \"$bin\": build it (cargo build) or pass --bin PATH" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")"
if [ -z "$limit" ]; then
    # Per cycle: the load, the checks, a restart; generous, so that a slow
    # machine does not trip it and a hang still ends.
    limit=$(python3 -c 'import sys; print(int(int(sys.argv[1]) * (float(sys.argv[2]) + 25) + 60))' "$cycles" "$seconds")
fi
case "$limit" in ''|*[!0-9]*|0) echo "faults.sh: --time-limit must be a whole number of seconds, not \"$limit\"" >&2; exit 2 ;; esac

work="$(mktemp -d "${TMPDIR:-/tmp}/sparkq-faults.XXXXXX")"
driver_pid=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
        # `timeout` passes the signal on to the driver, which stops its
        # load and kills what it started; give it a few seconds for that.
        kill -TERM "$driver_pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$driver_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$driver_pid" 2>/dev/null || true
    fi
    # The driver writes the PID of every process it starts; kill those that
    # still run this binary (a PID may have been reused since).
    if [ -f "$work/pids" ]; then
        while read -r pid; do
            if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin" ]; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done < "$work/pids"
    fi
    if [ "$rc" -eq 0 ] && [ "$keep" -eq 0 ]; then
        rm -rf "$work"
    else
        echo "faults.sh: files kept in $work" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

set +e
timeout --signal=TERM --kill-after=10 "$limit" \
    python3 - "$bin" "$work" "$cycles" "$seconds" "${seed:-$RANDOM$RANDOM}" "$limit" <<'PY' &
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

BIN, WORK = sys.argv[1], sys.argv[2]
CYCLES, SECONDS, SEED, LIMIT = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
CONFIG = os.path.join(WORK, "sparkq.yml")
DB = os.path.join(WORK, "sparkq.db")
STREAM = "load"
HTTP_THREADS = 4
CLI_THREADS = 2
START = time.monotonic()


class Stopped(Exception):
    """SIGTERM (from `timeout` at the time limit, or from the wrapper when
    it is interrupted) or SIGINT."""


def on_signal(_sig, _frame):
    raise Stopped()


# Set explicitly: a background job may start with SIGINT ignored.
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

rng = random.Random(SEED)
children = set()
children_lock = threading.Lock()
stops = []  # the stop flag of every load started


def track(proc):
    with children_lock:
        children.add(proc)
        with open(os.path.join(WORK, "pids"), "a") as f:
            f.write(f"{proc.pid}\n")


def untrack(proc):
    with children_lock:
        children.discard(proc)


def kill_all():
    for stop in stops:
        stop.set()
    with children_lock:
        procs = list(children)
    for p in procs:
        try:
            p.kill()
            p.wait(timeout=10)
        except Exception:
            pass


class Ledger:
    """What clients were told; guarded by one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}        # task id -> how it was acknowledged
        self.claims = {}       # task id -> [claimer, ...] with a successful answer
        self.told = {}         # task id -> ("succeeded", summary) | ("failed", error) | ("timeout", None)
        self.hand = []         # claimed task ids nobody has reported on yet
        self.finished = []     # task ids told finished (requeue picks from these)
        self.cycle_acked = []  # ids acknowledged in this cycle
        self.server_errors = []
        self.odd = []          # answers that contradict what we hold

    def ack(self, tid, how):
        with self.lock:
            if tid in self.acked:
                self.odd.append(f"id {tid} acknowledged twice ({self.acked[tid]}, {how})")
            self.acked[tid] = how
            self.cycle_acked.append(tid)

    def claimed(self, tid, who):
        with self.lock:
            self.claims.setdefault(tid, []).append(who)
            self.hand.append(tid)

    def take(self):
        with self.lock:
            if not self.hand:
                return None
            return self.hand.pop(rng.randrange(len(self.hand)))

    def finish(self, tid, what, text):
        with self.lock:
            self.told[tid] = (what, text)
            self.finished.append(tid)

    def pick_finished(self):
        with self.lock:
            return rng.choice(self.finished) if self.finished else None


L = Ledger()
addr = {"host": "127.0.0.1", "port": 0}
counter = {"n": 0}
counter_lock = threading.Lock()


def next_n():
    with counter_lock:
        counter["n"] += 1
        return counter["n"]


def api(method, path, body=None):
    """One request on a new connection; (status, json) or None when no
    answer came (the server died or was down)."""
    try:
        c = http.client.HTTPConnection(addr["host"], addr["port"], timeout=15)
        headers = {"Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        c.request(method, path, data, headers)
        r = c.getresponse()
        raw = r.read()
        c.close()
    except (OSError, http.client.HTTPException):
        return None
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = {"error": raw[:200].decode("utf-8", "replace")}
    return r.status, doc


def die(message):
    print(f"faults: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def refusal_kind(message):
    return "timeout" if "auto-failed" in (message or "") else "other"


def server_error(where, status, doc):
    # The database staying locked past the busy wait is load, not a fault.
    msg = (doc or {}).get("error", "") if isinstance(doc, dict) else str(doc)
    if "stayed locked" in msg:
        return
    with L.lock:
        L.server_errors.append(f"{where}: {status} {msg}")


def http_worker(wid, stop):
    me = f"http-{wid}"
    while not stop.is_set():
        op = rng.random()
        if op < 0.35:
            tool = "quick" if rng.random() < 0.2 else "work"
            r = api("POST", "/api/tasks", {"stream_id": STREAM, "tool_name": tool, "payload": {"n": next_n()}})
            if r and r[0] == 201:
                L.ack(r[1]["task"]["id"], "api-enqueue")
            elif r and r[0] >= 500:
                server_error("enqueue", *r)
        elif op < 0.65:
            r = api("POST", f"/api/streams/{STREAM}/claim", {"worker_id": me})
            if r and r[0] == 200:
                L.claimed(r[1]["task"]["id"], me)
            elif r and r[0] >= 500:
                server_error("claim", *r)
        elif op < 0.9:
            tid = L.take()
            if tid is None:
                continue
            if rng.random() < 0.6:
                summary = f"done by {me} #{next_n()}"
                r = api("POST", f"/api/tasks/{tid}/complete", {"result_summary": summary})
                told = ("succeeded", summary)
            else:
                error = f"failed by {me} #{next_n()}"
                r = api("POST", f"/api/tasks/{tid}/fail", {"error_message": error, "error_type": "LOAD"})
                told = ("failed", error)
            if r is None:
                continue  # no answer: the outcome is unknown, so nothing is expected
            if r[0] == 200:
                L.finish(tid, *told)
            elif r[0] == 409 and refusal_kind(r[1].get("error")) == "timeout":
                L.finish(tid, "timeout", None)
            elif r[0] >= 500:
                server_error("finish", *r)
            else:
                with L.lock:
                    L.odd.append(f"{tid}: {told[0]} by its claimer answered {r[0]} {r[1]}")
        else:
            tid = L.pick_finished()
            if tid is None:
                continue
            r = api("POST", f"/api/tasks/{tid}/requeue")
            if r and r[0] == 201:
                L.ack(r[1]["task"]["id"], "api-requeue")
            elif r and r[0] >= 500:
                server_error("requeue", *r)
        if r is None:
            time.sleep(0.02)  # the server is down; do not spin


def cli(args, kill_after=None):
    """Runs the CLI; (exit code, stdout, stderr), or None when it was killed."""
    p = subprocess.Popen(
        [BIN, "--config", CONFIG] + args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    track(p)
    try:
        if kill_after is not None:
            try:
                out, err = p.communicate(timeout=kill_after)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                return None
        else:
            out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        with L.lock:
            L.server_errors.append(f"cli {args[0]}: still running after 60 s")
        return None
    finally:
        untrack(p)
    return p.returncode, out, err


def cli_worker(wid, stop):
    me = f"cli-{wid}"
    while not stop.is_set():
        # Now and then the CLI process itself is killed mid-command.
        kill = rng.uniform(0.0, 0.03) if rng.random() < 0.08 else None
        op = rng.random()
        if op < 0.35:
            tool = "quick" if rng.random() < 0.2 else "work"
            r = cli(["enqueue", "--stream", STREAM, "--tool", tool, "--payload", json.dumps({"n": next_n()})], kill)
            if r and r[0] == 0:
                L.ack(r[1].strip(), "cli-enqueue")
            elif r and r[0] > 0:
                server_error("cli enqueue", r[0], {"error": r[2].strip()})
        elif op < 0.65:
            r = cli(["claim", "--stream", STREAM, "--worker-id", me], kill)
            if r and r[0] == 0:
                L.claimed(json.loads(r[1])["id"], me)
            elif r and r[0] == 2:
                server_error("cli claim", r[0], {"error": r[2].strip()})
        elif op < 0.9:
            tid = L.take()
            if tid is None:
                continue
            if rng.random() < 0.6:
                text = f"done by {me} #{next_n()}"
                r = cli(["complete", tid, "--summary", text], kill)
                told = ("succeeded", text)
            else:
                text = f"failed by {me} #{next_n()}"
                r = cli(["fail", "--task-id", tid, "--error", text, "--error-type", "LOAD"], kill)
                told = ("failed", text)
            if r is None or r[0] < 0:
                continue  # killed: the outcome is unknown
            if r[0] == 0:
                L.finish(tid, *told)
            elif refusal_kind(r[2]) == "timeout":
                L.finish(tid, "timeout", None)
            elif "stayed locked" in r[2]:
                pass
            else:
                with L.lock:
                    L.odd.append(f"{tid}: cli {told[0]} by its claimer exited {r[0]}: {r[2].strip()}")
        else:
            tid = L.pick_finished()
            if tid is None:
                continue
            r = cli(["requeue", tid], kill)
            if r and r[0] == 0:
                L.ack(r[1].strip(), "cli-requeue")
            elif r and r[0] > 0:
                server_error("cli requeue", r[0], {"error": r[2].strip()})


def start_server():
    log = open(os.path.join(WORK, "server.log"), "a")
    p = subprocess.Popen(
        [BIN, "--config", CONFIG, "run", "--port", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
    )
    log.close()
    track(p)
    got = {}

    def read_first():
        got["line"] = p.stdout.readline()

    t = threading.Thread(target=read_first, daemon=True)
    t.start()
    t.join(30)
    line = got.get("line", "").strip()
    if not line.startswith("http://127.0.0.1:"):
        p.kill()
        p.wait()
        die(f"the server did not start (first line {line!r}); see {WORK}/server.log")
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: p.stdout.read(), daemon=True).start()
    addr["port"] = int(line.rsplit(":", 1)[1].rstrip("/"))
    return p


def run_load():
    stop = threading.Event()
    stops.append(stop)
    # Daemon threads, so that a stopped run exits without waiting for them.
    threads = [threading.Thread(target=http_worker, args=(i, stop), daemon=True) for i in range(HTTP_THREADS)]
    threads += [threading.Thread(target=cli_worker, args=(i, stop), daemon=True) for i in range(CLI_THREADS)]
    for t in threads:
        t.start()
    return stop, threads


# ---- checks ------------------------------------------------------------

def check_db(cycle):
    """Checks the database file as it is now; returns (lost, bad, integrity)."""
    conn = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, timeout=30)
    try:
        integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        rows = {}
        for r in conn.execute(
            "SELECT id, status, attempts, worker_id, result_summary, error_type, error, "
            "created_at, claimed_at, finished_at, timeout FROM tasks"
        ):
            rows[r[0]] = r
        counters = conn.execute(
            "SELECT s.name, s.queued, s.running, s.succeeded, s.failed, "
            "(SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND t.status = 'queued'), "
            "(SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND t.status = 'running'), "
            "(SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND t.status = 'succeeded'), "
            "(SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND t.status = 'failed') "
            "FROM streams s"
        ).fetchall()
    finally:
        conn.close()

    bad = []
    for tid, st, att, worker, summary, etype, err, created, claimed, finished, timeout in rows.values():
        why = None
        if st == "queued":
            if att != 0 or claimed is not None or finished is not None or worker is not None:
                why = "queued but claimed or finished"
        elif st == "running":
            if att != 1 or claimed is None or finished is not None:
                why = "running with attempts != 1, no claim time or a finish time"
        elif st == "succeeded":
            if att != 1 or claimed is None or finished is None or summary is None or err is not None:
                why = "succeeded without a claim, a finish or a summary, or with an error"
            elif finished > claimed + timeout * 2000:
                why = "succeeded after its 2x deadline"
        elif st == "failed":
            if finished is None or err is None or att not in (0, 1):
                why = "failed without a finish time or an error"
            elif etype == "TIMEOUT" and (claimed is None or finished <= claimed + timeout * 2000):
                why = "auto-failed before its 2x deadline"
        else:
            why = f"unknown status {st!r}"
        if why is None and claimed is not None and not (created <= claimed <= (finished or claimed)):
            why = "times out of order"
        if why:
            bad.append(f"{tid}: {why}")
    for name, *c in counters:
        if c[:4] != c[4:]:
            bad.append(f"stream {name}: counters {c[:4]} but rows {c[4:]}")

    with L.lock:
        acked = dict(L.acked)
        claims = {k: list(v) for k, v in L.claims.items()}
        told = dict(L.told)
    lost = [t for t in acked if t not in rows]
    for tid, who in claims.items():
        r = rows.get(tid)
        if r is None:
            continue  # counted as lost if it was acknowledged
        if r[1] == "queued":
            bad.append(f"{tid}: claimed by {who[0]} but queued")
        elif len(who) == 1 and r[3] != who[0]:
            bad.append(f"{tid}: claimed by {who[0]} but its worker is {r[3]}")
    for tid, (what, text) in told.items():
        r = rows.get(tid)
        if r is None:
            continue
        ok = {
            "succeeded": r[1] == "succeeded" and r[4] == text,
            "failed": r[1] == "failed" and r[6] == text,
            "timeout": r[1] == "failed" and r[5] == "TIMEOUT",
        }[what]
        if not ok:
            bad.append(f"{tid}: its worker was told {what} but it is {r[1]} ({r[5]}: {r[6] or r[4]})")
    return lost, bad, integrity, len(rows)


def check_api(ids):
    """Every id in `ids` answers 200 through the restarted server."""
    missing = []
    for tid in ids:
        r = api("GET", f"/api/tasks/{tid}")
        if r is None or r[0] != 200:
            missing.append(f"{tid}: GET answered {r[0] if r else 'nothing'}")
    stats = api("GET", "/stats")
    return missing, stats


def setup():
    with open(CONFIG, "w") as f:
        f.write(
            "project:\n  name: faults\n"
            "server:\n  port: 0\n"
            "maintenance:\n  interval_seconds: 1\n"
            "purge:\n  older_than_days: 30\n"
            "script_dirs: []\n"
            "tools:\n"
            "  work:\n    description: ordinary load\n    timeout: 600\n"
            "  quick:\n    description: auto-failed after two seconds\n    timeout: 1\n"
        )
    for args in (["session", "create", "faults"], ["stream", "create", STREAM, "--session", "faults"]):
        r = cli(args)
        if r is None or r[0] != 0:
            die(f"setup failed: sparkq {' '.join(args)}: {r}")


def main():
    setup()
    lost_all, bad_all, integrity_all = set(), [], "ok"
    cycles_run = 0
    server = start_server()
    try:
        for cycle in range(1, CYCLES + 1):
            with L.lock:
                L.cycle_acked = []
            stop, threads = run_load()
            up = rng.uniform(min(0.2, SECONDS), SECONDS)
            time.sleep(up)
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
            untrack(server)
            # The load runs on a little against the dead server, so that
            # requests in flight at the kill are cut off, not drained.
            time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join(90)
                if t.is_alive():
                    die("a load thread did not stop within 90 s")
            lost, bad, integrity, total = check_db(cycle)
            server = start_server()
            with L.lock:
                fresh = list(L.cycle_acked)
            missing, stats = check_api(fresh)
            lost_all.update(lost)
            bad_all.extend(bad + missing)
            if integrity != "ok":
                integrity_all = integrity
            with L.lock:
                acked, claims = len(L.acked), len(L.claims)
                doubles = sum(1 for v in L.claims.values() if len(v) > 1)
                errors = len(L.server_errors)
            cycles_run = cycle
            line = (f"cycle {cycle}: killed after {up:.2f}s; tasks {total}, acknowledged {acked} "
                    f"(+{len(fresh)}), claims {claims}, lost {len(lost_all)}, double claims {doubles}, "
                    f"bad states {len(bad_all)}, server errors {errors}, integrity {integrity}")
            # With the load stopped the total is fixed (the sweep only moves
            # tasks from running to failed), so the API must count the rows.
            counted = sum(stats[1]["tasks"].values()) if stats and stats[0] == 200 else None
            if counted != total:
                line += f"; /stats after restart answered {stats}"
                bad_all.append(f"cycle {cycle}: /stats after restart counts {counted} tasks, the file {total}")
            print(line, flush=True)
        # Last, the database as a clean stop leaves it.
        r = cli(["stop"])
        code = server.wait(timeout=30)
        untrack(server)
        if r is None or r[0] != 0 or code != 0:
            bad_all.append(f"stop after the last cycle: {r}; the server exited {code}")
    except Stopped:
        kill_all()
        why = why_stopped()
        print(f"faults: {why} after {cycles_run} cycles", flush=True)
        report(cycles_run, lost_all, bad_all, integrity_all)
        sys.exit(3 if why.startswith("time") else 130)
    finally:
        kill_all()
    lost, bad, integrity, _ = check_db(cycles_run)
    lost_all.update(lost)
    bad_all.extend(bad)
    if integrity != "ok":
        integrity_all = integrity
    sys.exit(report(cycles_run, lost_all, bad_all, integrity_all))


def report(cycles_run, lost, bad, integrity):
    with L.lock:
        doubles = {k: v for k, v in L.claims.items() if len(v) > 1}
        errors, odd = list(L.server_errors), list(L.odd)
        acked = len(L.acked)
    for title, items in (("lost", sorted(lost)), ("double claims", [f"{k}: {v}" for k, v in doubles.items()]),
                         ("bad states", bad), ("server errors", errors), ("odd answers", odd)):
        for item in items[:20]:
            print(f"  {title}: {item}", file=sys.stderr)
        if len(items) > 20:
            print(f"  {title}: ... and {len(items) - 20} more", file=sys.stderr)
    failed = lost or doubles or bad or errors or odd or integrity != "ok"
    print(f"faults: cycles={cycles_run} acknowledged={acked} lost={len(lost)} "
          f"double_claims={len(doubles)} bad_states={len(bad) + len(odd)} "
          f"server_errors={len(errors)} integrity={integrity}", flush=True)
    return 1 if failed else 0


def why_stopped():
    if time.monotonic() - START >= LIMIT - 1:
        return f"time limit of {LIMIT} s reached"
    return "stopped by a signal"


try:
    main()
except Stopped:
    kill_all()
    why = why_stopped()
    print(f"faults: {why} during setup", flush=True)
    sys.exit(3 if why.startswith("time") else 130)
PY
driver_pid=$!
wait "$driver_pid"
rc=$?
driver_pid=""
set -e
# 124: `timeout` stopped the driver, which has said so; 137: it had to
# kill it.
case "$rc" in
    124) exit 3 ;;
    137) echo "faults: time limit of $limit s reached; the driver was killed"; exit 3 ;;
esac
exit "$rc"
