#!/usr/bin/env bash
# name: worker
# description: Shell worker: claims the tasks of one stream with the sparkq CLI, runs the script each one names and reports the outcome
# inputs: STREAM [--once] [--max-tasks N] [--wait SECONDS] [--grace SECONDS] [--worker-id ID]
# outputs: one log line per task on stderr; each script's exit code, stdout and stderr are stored in its task
# tags: worker, runner, shell
#
# Purpose: turns a stream into a queue of script runs, using nothing but the
# sparkq CLI, bash, coreutils and python3 (for JSON).
#
# Usage: worker.sh STREAM [--once] [--max-tasks N] [--wait SECONDS]
#                         [--grace SECONDS] [--worker-id ID]
#   --once         claim at most one task, run it and exit; exit 1 when
#                  nothing arrived within --wait
#   --max-tasks N  exit after N tasks (default: run until stopped)
#   --wait S       how long one claim waits for a task (default 30)
#   --grace S      how long a running script may go on after SIGINT or
#                  SIGTERM before it is terminated (default 10)
#   --worker-id ID the id recorded on claimed tasks
#                  (default worker-HOSTNAME-PID)
# Environment: SPARKQ names the sparkq binary (default: sparkq on PATH);
# SPARKQ_CONFIG picks the config, as for the CLI itself.
#
# Task payload: {"script": NAME_OR_PATH, "args": [STRING...], "cwd": DIR}.
# "args" and "cwd" are optional. An absolute path is run as it is; a name is
# looked up in the script index (`sparkq scripts list --json`, matching the
# file name, a path suffix or the index name), then in the folder of this
# worker and in scripts/ beside the config. The index is read once per run
# and read again only when a name is not in it. An executable file is run
# directly; otherwise .py runs with python3, .rb with ruby, .pl with perl,
# .js with node and anything else with bash. The script gets no stdin and
# runs in "cwd" (default: the worker's own directory) with SPARKQ_TASK_ID,
# SPARKQ_STREAM and SPARKQ_TASK_PAYLOAD_FILE (the payload as JSON) set.
#
# Each script runs under `timeout` with the task's own timeout. Exit 0
# completes the task with the summary "exit 0: <first line of stdout>" and
# the result {"exit_code", "script", "duration_ms"}. Anything else fails it:
# "exit N: <last line of stderr>" with error_type SCRIPT_ERROR, or
# SCRIPT_TIMEOUT when the time limit stopped it (TIMEOUT is kept for the
# tasks SparkQ itself fails at twice their timeout). A payload naming no
# usable script fails the task with BAD_PAYLOAD without running anything.
# stdout and stderr are stored with both tasks and failures, each cut to
# about 100 kB (its start and its end) because they travel as command-line
# arguments. Recording an outcome is tried again only when the database was
# locked or unavailable; a refusal (say, SparkQ already failed the task) or
# an unknown task is logged and the worker goes on.
#
# Signals: on SIGINT or SIGTERM a waiting claim is cancelled and the worker
# exits; a running script gets --grace seconds to finish (its outcome is
# reported as usual), then it is terminated and the task failed with
# WORKER_STOPPED. A second signal terminates the script at once.
#
# Side effects: runs whatever the claimed tasks name, as the user running
# the worker; writes only to a temporary folder, removed on exit.
# Exit status: 0 stopped as asked (signal, --once done, --max-tasks
# reached); 1 with --once when no task arrived; 2 usage or repeated CLI
# errors.

set -u

prog=worker.sh
sparkq=${SPARKQ:-sparkq}
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
clip_bytes=100000

usage() {
    sed -n '/^# Usage:/,/^# Environment:/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 2
}

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$prog" "$*" >&2
}

is_count() {
    [[ $1 =~ ^[0-9]{1,7}$ ]]
}

stream=
once=0
max_tasks=0
wait_s=30
grace=10
worker_id=
while [ $# -gt 0 ]; do
    case $1 in
    --once) once=1 ;;
    --max-tasks | --wait | --grace | --worker-id)
        [ $# -ge 2 ] || die "$1 needs a value"
        case $1 in
        --max-tasks) max_tasks=$2 ;;
        --wait) wait_s=$2 ;;
        --grace) grace=$2 ;;
        --worker-id) worker_id=$2 ;;
        esac
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*) die "unknown option \"$1\" (try --help)" ;;
    *)
        [ -z "$stream" ] || die "one stream only, got \"$stream\" and \"$1\""
        stream=$1
        ;;
    esac
    shift
done
[ -n "$stream" ] || die "missing STREAM (usage: $prog STREAM [--once] [--max-tasks N] [--wait SECONDS])"
is_count "$max_tasks" || die "--max-tasks must be a whole number, not \"$max_tasks\""
is_count "$wait_s" || die "--wait must be a whole number of seconds, not \"$wait_s\""
is_count "$grace" || die "--grace must be a whole number of seconds, not \"$grace\""
if [ -z "$worker_id" ]; then
    worker_id="worker-${HOSTNAME:-$(uname -n)}-$$"
fi
command -v "$sparkq" >/dev/null 2>&1 || die "sparkq binary not found: \"$sparkq\" (set SPARKQ)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read the task JSON"
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is needed to bound script runs"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sparkq-worker.XXXXXX") || die "cannot make a temporary folder"
trap 'rm -rf -- "$tmp"' EXIT

# A signal only bumps a counter: `wait` returns early when one arrives and
# the loops below decide what to do, so no task is left without an outcome.
signals=0
signame=
trap 'signals=$((signals + 1)); signame=INT' INT
trap 'signals=$((signals + 1)); signame=TERM' TERM

# Returns true if and only if process $1 exists and has not exited yet (a
# zombie still answers kill -0, hence the look at its state).
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null || return 1
    [ "$state" != Z ]
}

# Waits for background child $1 and sets child_rc. For a claim ($2 = claim)
# a signal cancels it at once; for a script it starts the grace period, and
# a second signal or the end of the grace period terminates it, which sets
# terminated=1.
wait_child() {
    local pid=$1 kind=$2 seen deadline
    terminated=0
    while :; do
        seen=$signals
        wait "$pid"
        child_rc=$?
        if [ "$signals" -eq "$seen" ] || ! alive "$pid"; then
            # A signal may land just as the child ends; bash remembers the
            # status, so asking again returns it.
            if [ "$signals" -ne "$seen" ]; then
                wait "$pid" 2>/dev/null
                child_rc=$?
            fi
            return
        fi
        if [ "$kind" = claim ] || [ "$signals" -gt 1 ] || [ "$terminated" -eq 1 ]; then
            kill -TERM "$pid" 2>/dev/null
            [ "$kind" = claim ] || terminated=1
            continue
        fi
        log "got SIG$signame: giving the running script ${grace}s to finish"
        deadline=$((SECONDS + grace))
        while alive "$pid" && [ "$SECONDS" -lt "$deadline" ] && [ "$signals" -eq 1 ]; do
            sleep 0.2
        done
        if alive "$pid"; then
            log "terminating the running script"
            kill -TERM "$pid" 2>/dev/null
            terminated=1
        fi
    done
}

# Reads the claimed task in $tmp/claim.json and writes NUL-separated fields
# to $tmp/fields: id, timeout, stream name, verdict ("ok" or the reason the
# payload is unusable), script, cwd, then the args. The payload itself goes
# to $tmp/payload.json.
read_task() {
    python3 - "$tmp" <<'PY'
import json, os, sys

tmp = sys.argv[1]
try:
    with open(os.path.join(tmp, "claim.json"), encoding="utf-8") as f:
        task = json.load(f)
    tid = task["id"]
except (OSError, ValueError, KeyError, TypeError) as e:
    print(f"cannot read the claimed task: {e}", file=sys.stderr)
    sys.exit(3)
timeout = task.get("timeout")
if not isinstance(timeout, int) or timeout <= 0:
    timeout = 300
stream = (task.get("stream") or {}).get("name") or ""
payload = task.get("payload")
with open(os.path.join(tmp, "payload.json"), "w", encoding="utf-8") as f:
    json.dump(payload, f)
script, cwd, args, problem = "", "", [], None
if not isinstance(payload, dict):
    problem = "payload is not a JSON object"
else:
    script = payload.get("script")
    args = payload.get("args", [])
    cwd = payload.get("cwd", "")
    if not isinstance(script, str) or not script.strip():
        problem = 'payload has no "script" (a script name or an absolute path)'
    elif not isinstance(args, list) or not all(
        isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args
    ):
        problem = 'payload "args" must be a list of strings'
    elif not isinstance(cwd, str):
        problem = 'payload "cwd" must be a string'
    else:
        args = [a if isinstance(a, str) else json.dumps(a) for a in args]
        if any("\0" in s for s in [script, cwd] + args):
            problem = "payload strings must not contain NUL characters"
if problem:
    script, cwd, args = "", "", []
fields = [tid, str(timeout), stream, problem or "ok", script, cwd] + args
sys.stdout.write("".join(s + "\0" for s in fields))
PY
}

# The script index as two parallel arrays, an absolute path and its index
# name per entry. It is read once and again only when a name is missing, so
# that each task does not pay for a scan of the script folders.
index_paths=()
index_names=()
index_read=0

read_index() {
    local -a pairs
    local i
    mapfile -d '' -t pairs < <("$sparkq" scripts list --json 2>/dev/null | python3 -c '
import json, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
entries = data.get("scripts", []) if isinstance(data, dict) else data
for e in entries if isinstance(entries, list) else []:
    if not isinstance(e, dict):
        continue
    p, n = e.get("path") or "", e.get("name") or ""
    if isinstance(p, str) and isinstance(n, str) and p and "\0" not in p + n:
        sys.stdout.write(p + "\0" + n + "\0")
')
    index_paths=()
    index_names=()
    for ((i = 0; i + 1 < ${#pairs[@]}; i += 2)); do
        index_paths+=("${pairs[i]}")
        index_names+=("${pairs[i + 1]}")
    done
    index_read=1
}

# Sets script_path to the first index entry named $1 that is a file: by file
# name, else by path suffix, else by index name.
find_in_index() {
    local name=$1 test i p
    for test in base suffix name; do
        for i in "${!index_paths[@]}"; do
            p=${index_paths[i]}
            case $test in
            base) [ "${p##*/}" = "$name" ] || continue ;;
            suffix) [[ $p == *"/$name" ]] || continue ;;
            name) [ "${index_names[i]}" = "$name" ] || continue ;;
            esac
            if [ -f "$p" ]; then
                script_path=$p
                return 0
            fi
        done
    done
    return 1
}

# Sets script_path to the path of the script named $1, or fails. It runs in
# the worker's own shell, not in $(...), so that the index it reads is kept.
resolve_script() {
    local name=$1 dir cfg fresh=0
    script_path=
    case $name in
    /*)
        [ -f "$name" ] && script_path=$name
        [ -n "$script_path" ]
        return
        ;;
    esac
    if [ "$index_read" -eq 0 ]; then
        read_index
        fresh=1
    fi
    find_in_index "$name" && return
    if [ "$fresh" -eq 0 ]; then
        # A script may have been added or moved since the index was read.
        read_index
        find_in_index "$name" && return
    fi
    # Outside the index a name may not climb out of the folders searched.
    case /$name/ in
    */../*) return 1 ;;
    esac
    cfg=${SPARKQ_CONFIG:-}
    if [ -z "$cfg" ]; then
        dir=$PWD
        while :; do
            if [ -f "$dir/sparkq.yml" ]; then
                cfg=$dir/sparkq.yml
                break
            fi
            [ "$dir" != / ] || break
            dir=$(dirname -- "$dir")
        done
    fi
    for dir in "$here" ${cfg:+"$(dirname -- "$cfg")/scripts"}; do
        if [ -f "$dir/$name" ]; then
            script_path=$dir/$name
            return
        fi
    done
    return 1
}

# Writes NUL-separated fields to $tmp/report: the clipped stdout and stderr,
# the first non-empty line of stdout, the last of stderr, and the result JSON
# of a run that succeeded, given the script $1 and its duration $2 in ms.
read_output() {
    python3 - "$tmp" "$clip_bytes" "$1" "$2" <<'PY'
import json, os, sys

tmp, limit, script, ms = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def clip(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace").replace("\0", "")
    data = text.encode()
    if len(data) <= limit:
        return text
    head = data[: limit * 2 // 3].decode("utf-8", "ignore")
    tail = data[-(limit // 3):].decode("utf-8", "ignore")
    cut = len(data) - len(head.encode()) - len(tail.encode())
    return f"{head}\n[... {cut} bytes cut by worker.sh ...]\n{tail}"

out = clip(os.path.join(tmp, "out"))
err = clip(os.path.join(tmp, "err"))
lines = [l.strip() for l in out.splitlines() if l.strip()]
first = lines[0][:200] if lines else "(no output)"
lines = [l.strip() for l in err.splitlines() if l.strip()]
last = lines[-1][:200] if lines else "(no stderr output)"
result = json.dumps({"exit_code": 0, "script": script, "duration_ms": ms})
sys.stdout.write("".join(s + "\0" for s in (out, err, first, last, result)))
PY
}

# Runs a CLI call that records the outcome of task $2. Only a fault that may
# pass is tried again, twice: the database locked or unavailable, or the CLI
# dying without an answer. A refusal (the task is no longer running, say
# because SparkQ auto-failed it), an unknown task or any other error would be
# the same next time, so it is logged and the worker moves on.
report() {
    local try rc msg
    for try in 1 2 3; do
        "$sparkq" "$@" >/dev/null 2>"$tmp/report.err" && return 0
        rc=$?
        msg=
        IFS= read -r msg <"$tmp/report.err"
        msg=${msg#sparkq: }
        if [ "$rc" -eq 2 ]; then
            case $msg in
            *database* | *locked* | *"disk is full"*) ;;
            "cannot "* | "no task"*)
                log "$2: outcome refused, not retried: $msg"
                return 1
                ;;
            *)
                log "could not record the outcome of $2: $msg"
                return 1
                ;;
            esac
        fi
        [ "$try" -eq 3 ] || sleep 1
    done
    log "could not record the outcome of $2 after 3 tries: $(tail -n 1 "$tmp/report.err")"
    return 1
}

# Fails task $1 without having run anything: error type $2, message $3.
fail_unrun() {
    report fail "$1" --error "$3" --error-type "$2" &&
        log "$1 failed: $2: $3"
}

# Runs the task described by $tmp/claim.json and records its outcome.
run_task() {
    local -a f cmd
    local -a result
    local id timeout_s stream_name verdict script cwd path start ms rc
    read_task >"$tmp/fields" || return 0
    mapfile -d '' -t f <"$tmp/fields"
    id=${f[0]}
    timeout_s=${f[1]}
    stream_name=${f[2]}
    verdict=${f[3]}
    script=${f[4]}
    cwd=${f[5]:-$PWD}
    if [ "$verdict" != ok ]; then
        fail_unrun "$id" BAD_PAYLOAD "$verdict"
        return
    fi
    if ! resolve_script "$script" || [ -z "$script_path" ]; then
        fail_unrun "$id" BAD_PAYLOAD "unknown script \"$script\" (not in the script index nor in $here)"
        return
    fi
    path=$script_path
    if [ ! -d "$cwd" ]; then
        fail_unrun "$id" BAD_PAYLOAD "payload \"cwd\" is not a directory: \"$cwd\""
        return
    fi
    if [ -x "$path" ]; then
        cmd=("$path")
    else
        case $path in
        *.py) cmd=(python3 "$path") ;;
        *.rb) cmd=(ruby "$path") ;;
        *.pl) cmd=(perl "$path") ;;
        *.js) cmd=(node "$path") ;;
        *) cmd=(bash "$path") ;;
        esac
    fi
    log "$id: running $path with $((${#f[@]} - 6)) args (timeout ${timeout_s}s)"
    start=$(date +%s%N)
    (
        cd -- "$cwd" &&
            SPARKQ_TASK_ID=$id SPARKQ_STREAM=$stream_name \
                SPARKQ_TASK_PAYLOAD_FILE=$tmp/payload.json \
                exec timeout --kill-after=5 "$timeout_s" "${cmd[@]}" "${f[@]:6}"
    ) </dev/null >"$tmp/out" 2>"$tmp/err" &
    wait_child $! task
    rc=$child_rc
    ms=$((($(date +%s%N) - start) / 1000000))
    read_output "$path" "$ms" >"$tmp/report" ||
        printf '\0\0(no output)\0(no stderr output)\0\0' >"$tmp/report"
    mapfile -d '' -t f <"$tmp/report"
    result=()
    [ -z "${f[4]:-}" ] || result=(--result "${f[4]}")
    if [ "$terminated" -eq 1 ]; then
        report fail "$id" --error "worker stopped by SIG$signame; script terminated after ${ms} ms" \
            --error-type WORKER_STOPPED --stdout "${f[0]}" --stderr "${f[1]}" &&
            log "$id failed: WORKER_STOPPED"
    elif [ "$rc" -eq 0 ]; then
        report complete "$id" --summary "exit 0: ${f[2]}" \
            "${result[@]}" --stdout "${f[0]}" --stderr "${f[1]}" &&
            log "$id succeeded in ${ms} ms"
    elif [ "$rc" -eq 124 ]; then
        report fail "$id" --error "timed out after ${timeout_s}s: ${f[3]}" \
            --error-type SCRIPT_TIMEOUT --stdout "${f[0]}" --stderr "${f[1]}" &&
            log "$id failed: SCRIPT_TIMEOUT after ${timeout_s}s"
    else
        report fail "$id" --error "exit $rc: ${f[3]}" --error-type SCRIPT_ERROR \
            --stdout "${f[0]}" --stderr "${f[1]}" &&
            log "$id failed: exit $rc"
    fi
}

log "worker $worker_id on stream $stream"
done_tasks=0
errors=0
while [ "$signals" -eq 0 ]; do
    if [ "$max_tasks" -gt 0 ] && [ "$done_tasks" -ge "$max_tasks" ]; then
        break
    fi
    "$sparkq" claim --stream "$stream" --worker-id "$worker_id" --wait "$wait_s" \
        >"$tmp/claim.json" 2>"$tmp/claim.err" &
    wait_child $! claim
    if [ "$signals" -gt 0 ]; then
        # The claim may have won a task just before it was cancelled.
        if [ "$child_rc" -eq 0 ] && read_task >"$tmp/fields" 2>/dev/null; then
            mapfile -d '' -t f <"$tmp/fields"
            fail_unrun "${f[0]}" WORKER_STOPPED "worker stopped by SIG$signame before running the task"
        fi
        break
    fi
    case $child_rc in
    0)
        errors=0
        run_task
        done_tasks=$((done_tasks + 1))
        ;;
    1)
        errors=0
        if [ "$once" -eq 1 ]; then
            log "no task arrived in ${wait_s}s"
            exit 1
        fi
        # Without --wait an empty stream would be polled in a tight loop.
        [ "$wait_s" -gt 0 ] || sleep 1
        continue
        ;;
    *)
        errors=$((errors + 1))
        log "claim failed: $(tail -n 1 "$tmp/claim.err")"
        [ "$errors" -lt 3 ] || die "giving up after 3 failed claims in a row"
        sleep 2
        continue
        ;;
    esac
    [ "$once" -eq 0 ] || break
done
[ "$signals" -eq 0 ] || log "stopped by SIG$signame"
log "done: $done_tasks tasks"
exit 0
