#!/usr/bin/env bash
# name: bench
# description: Benchmark SparkQ on loopback against beanstalkd and Redis: throughput, latency, CLI, scale, purge and footprint
# inputs: [--quick] [--out FILE]
# outputs: tables on stdout; the results as JSON in bench/results/DATE.json (DATE-quick.json with --quick)
# tags: benchmark, performance, peers
#
# Purpose: measures SparkQ the same way each time, beside two well-known
# queues doing the same work, so that a change in speed or size shows up.
#
# Usage: scripts/bench.sh [--quick] [--out FILE]
#   --quick    fewer workers (1 and 4), 2-second runs, small databases; no
#              million-task table and no clean build. Takes about two
#              minutes once the release build is done; CI runs it.
#   --out F    write the JSON results to F
#
# What it runs, each against a fresh server on a free 127.0.0.1 port:
# - throughput: examples/loadgen.rs with the lifecycle, enqueue and drain
#   workloads at 1, 4 and 16 workers, against SparkQ (fresh database per
#   run), beanstalkd with a binlog (-b) and Redis with appendonly yes; SparkQ's
#   tasks/s is printed as a ratio to each peer's;
# - CLI: median wall time of whole `sparkq peek`, `enqueue` and `claim`
#   processes on a database of 100,000 tasks (filled through the API);
# - scale: claim latency with 1,000 and 1,000,000 tasks in the table, of
#   mixed streams and statuses; purge of 500,000 finished tasks while a
#   worker claims and completes (the max claim latency);
# - footprint: server RSS idle and peak (VmRSS, VmHWM) under the largest
#   lifecycle load, start-up time to the first answered /health, release
#   binary size, crate count, clean release build time.
# The big scale and purge tables are written straight into a database whose
# schema `sparkq` itself created (bench/helper.py fill), because a million
# enqueues through the API would take most of the run; the rows keep every
# constraint and the count triggers fire as for any insert.
#
# Side effects: builds the release binary and the loadgen example with
# cargo; installs redis-server and beanstalkd with apt-get when they are
# missing (as root, or with password-less sudo; otherwise those peers are
# skipped); writes the results file. Servers and data live in a temporary
# folder; every server it started is stopped and the folder removed on exit.
# Exit status: 0 done, 1 a run had errors or a step failed (see PROBLEMS),
# 2 bad arguments.

set -eu -o pipefail

prog=bench.sh
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
helper=$root/bench/helper.py

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 2
}

say() {
    printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$prog" "$*" >&2
}

quick=0
out=
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --out)
        [ $# -ge 2 ] || die "--out needs a file name"
        out=$2
        shift
        ;;
    -h | --help)
        sed -n '/^# Usage:/,/^# What it runs/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument \"$1\" (usage: $prog [--quick] [--out FILE])" ;;
    esac
    shift
done

if [ "$quick" -eq 1 ]; then
    worker_counts=(1 4)
    seconds=2
    drain_tasks=2000
    cli_tasks=10000
    cli_runs=10
    scale_sizes=(1000 100000)
    probe_tasks=200
    purge_tasks=50000
    purge_probe=20000
    startup_runs=3
    clean_build=0
    suffix=-quick
else
    worker_counts=(1 4 16)
    seconds=10
    drain_tasks=20000
    cli_tasks=100000
    cli_runs=50
    scale_sizes=(1000 1000000)
    probe_tasks=1000
    purge_tasks=500000
    purge_probe=100000
    startup_runs=10
    clean_build=1
    suffix=
fi
out=${out:-$root/bench/results/$(date -u +%Y-%m-%d)$suffix.json}

for tool in cargo python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sparkq-bench.XXXXXX")
lines=$work/results.jsonl
: >"$lines"
status=0
pids=()

# Stops process $1: TERM, then KILL after 10 s.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
    done
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Records a failed step; the run goes on and exits 1 at the end.
problem() {
    say "PROBLEM: $*"
    python3 -c 'import json, sys; print(json.dumps({"section": "problems", "what": sys.argv[1]}))' \
        "$*" >>"$lines"
    status=1
}

start_time=$SECONDS
say "building the release binary and the load generator"
target_dir=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build -q --release --bin sparkq --example loadgen)
sparkq=$target_dir/release/sparkq
loadgen=$target_dir/release/examples/loadgen
if [ ! -x "$sparkq" ] || [ ! -x "$loadgen" ]; then
    die "build produced no $sparkq or $loadgen"
fi
build_done=$SECONDS

# Installs Debian package $2 unless command $1 exists; fails when it cannot.
ensure_peer() {
    local cmd=$1 pkg=$2 sudo=()
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
        sudo=(sudo -n)
    fi
    say "installing $pkg"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "$pkg" >"$work/apt.log" 2>&1 ||
        { "${sudo[@]}" apt-get update -q >>"$work/apt.log" 2>&1 &&
            "${sudo[@]}" apt-get install -y -q --no-install-recommends "$pkg" >>"$work/apt.log" 2>&1; } ||
        return 1
    command -v "$cmd" >/dev/null 2>&1
}

targets=(sparkq)
if ensure_peer beanstalkd beanstalkd; then
    targets+=(beanstalkd)
else
    problem "beanstalkd is not installed and could not be: its runs are skipped"
fi
if ensure_peer redis-server redis-server; then
    targets+=(redis)
else
    problem "redis-server is not installed and could not be: its runs are skipped"
fi

write_config() {
    cat >"$1/sparkq.yml" <<'EOF'
# Written by scripts/bench.sh. Purge is pushed far out so that the server's
# own start-up purge leaves the scale tables alone.
project: { name: bench }
purge: { older_than_days: 36500 }
tools:
  run-bash: { description: Run a script, task_class: MEDIUM_SCRIPT }
EOF
}

# Starts `sparkq run --port 0` in folder $1 (config written if missing);
# sets srv_pid and srv_addr.
start_sparkq() {
    local dir=$1 url
    mkdir -p "$dir"
    [ -f "$dir/sparkq.yml" ] || write_config "$dir"
    "$sparkq" --config "$dir/sparkq.yml" run --port 0 >"$dir/run.out" 2>"$dir/run.err" &
    srv_pid=$!
    pids+=("$srv_pid")
    if ! url=$(python3 "$helper" wait-url "$dir/run.out" "$srv_pid"); then
        tail -n 5 "$dir/run.err" >&2
        return 1
    fi
    srv_addr=${url#http://}
}

# shellcheck disable=SC2317 # called as "start_$target"
start_beanstalkd() {
    local dir=$1 port
    mkdir -p "$dir/binlog"
    port=$(python3 "$helper" free-port)
    beanstalkd -l 127.0.0.1 -p "$port" -b "$dir/binlog" >"$dir/server.log" 2>&1 &
    srv_pid=$!
    pids+=("$srv_pid")
    python3 "$helper" wait-port "$port" || return 1
    srv_addr=127.0.0.1:$port
}

# shellcheck disable=SC2317 # called as "start_$target"
start_redis() {
    local dir=$1 port
    mkdir -p "$dir"
    port=$(python3 "$helper" free-port)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes \
        --appendfsync everysec --save '' --daemonize no --logfile "$dir/server.log" &
    srv_pid=$!
    pids+=("$srv_pid")
    python3 "$helper" wait-port "$port" || return 1
    srv_addr=127.0.0.1:$port
}

# Prints field $2 (VmRSS, VmHWM) of process $1 in kB.
mem_kb() {
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo null
}

# Runs the load generator; prints its JSON line (or nothing) and records
# a problem when it failed or counted errors.
load() {
    local line rc=0 what=$*
    # The temporary folder's name means nothing in a results file.
    what=${what//$work\//}
    line=$(timeout 900 "$loadgen" --json "$@" 2>"$work/loadgen.err") || rc=$?
    if [ -z "$line" ]; then
        problem "loadgen $what failed (exit $rc): $(tail -n 1 "$work/loadgen.err")"
        return 1
    fi
    [ "$rc" -eq 0 ] || problem "loadgen $what counted errors: ${line:0:300}"
    printf '%s\n' "$line"
}

meta=$(python3 - "$quick" "$sparkq" <<'PY'
import json, os, platform, subprocess, sys, time

def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None

mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
print(json.dumps({
    "section": "meta",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "quick": sys.argv[1] == "1",
    "machine": f"{os.cpu_count()} cores, {int(mem) // 1024} MiB, {platform.system()} {platform.release()}",
    "versions": {
        "sparkq": version([sys.argv[2], "--version"]),
        "rustc": version(["rustc", "--version"]),
        "beanstalkd": version(["beanstalkd", "-v"]),
        "redis": version(["redis-server", "--version"]),
    },
    "durability": "sparkq: SQLite WAL, synchronous=normal (sparkq-full: synchronous=full); "
                  "beanstalkd: binlog (-b), "
                  "default fsync interval; redis: appendonly yes, appendfsync everysec",
}))
PY
)
printf '%s\n' "$meta" >>"$lines"

# Throughput: every workload, every worker count, every target.
rss_idle=null
rss_peak=null
max_workers=${worker_counts[${#worker_counts[@]} - 1]}
for workers in "${worker_counts[@]}"; do
    for workload in lifecycle enqueue drain; do
        for target in "${targets[@]}"; do
            dir=$work/$target-$workload-$workers
            say "$workload x$workers on $target"
            if ! "start_$target" "$dir"; then
                problem "$target did not start for $workload x$workers"
                continue
            fi
            if [ "$target" = sparkq ] && [ "$workload" = lifecycle ] &&
                [ "$workers" -eq "$max_workers" ]; then
                rss_idle=$(mem_kb "$srv_pid" VmRSS)
            fi
            if [ "$workload" = drain ]; then
                args=(--prefill "$drain_tasks" --seconds 300)
            else
                args=(--seconds "$seconds")
            fi
            if line=$(load --target "$target" --addr "$srv_addr" --workload "$workload" \
                --workers "$workers" "${args[@]}"); then
                printf '{"section":"throughput",%s\n' "${line#\{}" >>"$lines"
            fi
            if [ "$target" = sparkq ] && [ "$workload" = lifecycle ] &&
                [ "$workers" -eq "$max_workers" ]; then
                rss_peak=$(mem_kb "$srv_pid" VmHWM)
            fi
            stop_pid "$srv_pid"
        done
    done
done

# Durability setting: the lifecycle again with synchronous=full (a sync of
# the log at every commit), at 1 worker and the most workers, beside the
# default runs above.
for workers in 1 "$max_workers"; do
    dir=$work/sparkq-full-$workers
    mkdir -p "$dir"
    write_config "$dir"
    printf 'database: { synchronous: full }\n' >>"$dir/sparkq.yml"
    say "lifecycle x$workers on sparkq with synchronous=full"
    if ! start_sparkq "$dir"; then
        problem "sparkq did not start with synchronous=full"
        continue
    fi
    if line=$(load --target sparkq --addr "$srv_addr" --workload lifecycle \
        --workers "$workers" --seconds "$seconds"); then
        line=${line/\"target\":\"sparkq\"/\"target\":\"sparkq-full\"}
        printf '{"section":"throughput",%s\n' "${line#\{}" >>"$lines"
    fi
    stop_pid "$srv_pid"
done

# CLI: whole processes on a database filled through the API.
say "CLI timings on $cli_tasks tasks"
dir=$work/cli
if start_sparkq "$dir"; then
    load --target sparkq --addr "$srv_addr" --workload enqueue --workers 4 \
        --tasks "$cli_tasks" --seconds 900 --stream cli >/dev/null || true
    stop_pid "$srv_pid"
    cfg=$dir/sparkq.yml
    peek=$(python3 "$helper" time-cmds --runs "$cli_runs" -- \
        "$sparkq" --config "$cfg" peek --stream cli)
    enq=$(python3 "$helper" time-cmds --runs "$cli_runs" -- \
        "$sparkq" --config "$cfg" enqueue --stream cli --tool run-bash \
        --payload '{"script":"disk-usage.sh","args":["."]}')
    claim=$(python3 "$helper" time-cmds --runs "$cli_runs" -- \
        "$sparkq" --config "$cfg" claim --stream cli --worker-id bench)
    printf '{"section":"cli","tasks_in_db":%s,"runs":%s,"peek":%s,"enqueue":%s,"claim":%s}\n' \
        "$cli_tasks" "$cli_runs" "$peek" "$enq" "$claim" >>"$lines"
    for kind in "$peek" "$enq" "$claim"; do
        case $kind in
        *'"failures": 0'*) ;;
        *) problem "CLI runs failed: $kind" ;;
        esac
    done
else
    problem "sparkq did not start for the CLI timings"
fi

# Makes folder $1 with a config and a database holding session "bench" and
# the streams "probe" and fill-0..fill-9, all through the CLI.
make_streams() {
    local dir=$1 cfg=$1/sparkq.yml i
    mkdir -p "$dir"
    write_config "$dir"
    "$sparkq" --config "$cfg" session create bench >/dev/null
    "$sparkq" --config "$cfg" stream create probe --session bench >/dev/null
    for i in 0 1 2 3 4 5 6 7 8 9; do
        "$sparkq" --config "$cfg" stream create "fill-$i" --session bench >/dev/null
    done
}

# Scale: claim latency on a probe stream, the table small and then big.
for size in "${scale_sizes[@]}"; do
    say "claim latency with $size tasks in the table"
    dir=$work/scale-$size
    if ! make_streams "$dir"; then
        problem "could not create the streams for the $size-task table"
        continue
    fi
    if ! fill=$(python3 "$helper" fill "$dir/sparkq.db" --probe probe \
        --probe-queued "$probe_tasks" --mixed $((size - probe_tasks))); then
        problem "could not fill the $size-task table"
        continue
    fi
    if ! start_sparkq "$dir"; then
        problem "sparkq did not start on the $size-task table"
        continue
    fi
    if line=$(load --target sparkq --addr "$srv_addr" --workload drain --workers 1 \
        --stream probe --seconds 300); then
        printf '{"section":"scale","tasks_in_table":%s,"fill":%s,"run":%s}\n' \
            "$size" "$fill" "$line" >>"$lines"
    fi
    stop_pid "$srv_pid"
done

# Purge: a worker claims and completes from a long queue while the CLI
# purges; the queue is big enough to outlast the purge.
say "purge of $purge_tasks finished tasks under load"
dir=$work/purge
if make_streams "$dir" &&
    python3 "$helper" fill "$dir/sparkq.db" --probe probe --probe-queued "$purge_probe" \
        --old-finished "$purge_tasks" >/dev/null &&
    start_sparkq "$dir"; then
    rm -f "$dir/stop"
    load --target sparkq --addr "$srv_addr" --workload drain --workers 1 --stream probe \
        --seconds 600 --stop-file "$dir/stop" >"$dir/load.json" &
    load_pid=$!
    pids+=("$load_pid")
    sleep 2
    t0=$(date +%s%N)
    purged=$("$sparkq" --config "$dir/sparkq.yml" purge --older-than 1d 2>&1) ||
        problem "purge failed: $purged"
    t1=$(date +%s%N)
    sleep 2
    touch "$dir/stop"
    wait "$load_pid" || true
    n=$(printf '%s' "$purged" | sed -n 's/^purged \([0-9][0-9]*\) tasks.*/\1/p')
    if [ -s "$dir/load.json" ]; then
        printf '{"section":"purge","purged":%s,"seconds":%s,"run":%s}\n' "${n:-null}" \
            "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')" \
            "$(cat "$dir/load.json")" >>"$lines"
    fi
    [ "${n:-0}" -eq "$purge_tasks" ] || problem "purge deleted ${n:-?} tasks, not $purge_tasks"
    if grep -q '"emptied":true' "$dir/load.json"; then
        problem "the probe queue ran dry before the purge ended; raise purge_probe"
    fi
    stop_pid "$srv_pid"
else
    problem "could not set up the purge test"
fi

# Footprint.
say "footprint"
dir=$work/startup
mkdir -p "$dir"
write_config "$dir"
startup=$(python3 "$helper" startup "$sparkq" "$dir/sparkq.yml" --runs "$startup_runs") ||
    { problem "start-up timing failed"; startup=null; }
crates=$(cd "$root" && { cargo tree -q -e normal,build --prefix none --offline 2>/dev/null ||
    cargo tree -q -e normal,build --prefix none; } |
    awk '{ print $1, $2 }' | sort -u | wc -l)
crates=$((crates - 1))
build_s=null
if [ "$clean_build" -eq 1 ]; then
    say "clean release build"
    t0=$(date +%s%N)
    if (cd "$root" && CARGO_TARGET_DIR=$work/clean-build timeout 3600 \
        cargo build -q --release --bin sparkq); then
        build_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    else
        problem "clean release build failed"
    fi
    rm -rf -- "$work/clean-build"
fi
{
    printf '{"section":"footprint","rss_idle_kb":%s,"rss_peak_kb":%s,' \
        "${rss_idle:-null}" "${rss_peak:-null}"
    printf '"peak_under":"lifecycle x%s","startup":%s,"binary_bytes":%s,' \
        "$max_workers" "$startup" "$(stat -c %s "$sparkq")"
    printf '"crates":%s,"clean_build_seconds":%s}\n' "$crates" "$build_s"
    printf '{"section":"meta","build_seconds":%s,"measure_seconds":%s}\n' \
        "$((build_done - start_time))" "$((SECONDS - build_done))"
} >>"$lines"

# Problems found inside $(...) subshells are in the file, not in $status.
if grep -q '"section": "problems"' "$lines"; then
    status=1
fi
python3 "$helper" report "$lines" "$out"
say "measured in $((SECONDS - build_done)) s after a $((build_done - start_time)) s build"
exit "$status"
