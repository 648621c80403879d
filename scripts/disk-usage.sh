#!/usr/bin/env bash
# name: disk-usage
# description: Summarise the disk usage of a directory: its total size, file count and largest entries
# inputs: DIR (default .), TOP: how many entries to list (default 10)
# outputs: text: a summary line, then one line per entry, largest first
# tags: disk, filesystem, report
# timeout: 120
# task_class: MEDIUM_SCRIPT
#
# Purpose: shows where the space under a directory goes before a clean-up.
# Usage: disk-usage.sh [DIR] [TOP]
#   disk-usage.sh ~/project 5
# Side effects: none; it only reads the tree, and stays on DIR's file system.
# Exit status: 0 done, 2 bad arguments. Entries that cannot be read are
# counted and reported rather than failing the run.

set -eu

prog=disk-usage.sh

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 2
}

if [ $# -gt 2 ]; then
    die "too many arguments (usage: $prog [DIR] [TOP])"
fi
dir=${1:-.}
top=${2:-10}
if [ ! -e "$dir" ]; then
    die "no such directory: \"$dir\""
fi
if [ ! -d "$dir" ]; then
    die "not a directory: \"$dir\""
fi
if [ ! -r "$dir" ] || [ ! -x "$dir" ]; then
    die "cannot read directory: \"$dir\""
fi
if ! [[ $top =~ ^[1-9][0-9]{0,5}$ ]]; then
    die "TOP must be a whole number from 1 to 999999, not \"$top\""
fi

abs=$(cd -- "$dir" && pwd -P)
errs=$(mktemp)
trap 'rm -f -- "$errs"' EXIT

# du exits 1 when some entry is unreadable; the sizes it printed are still
# right for everything else, so the errors are counted instead.
total_kb=$(du -sxk -- "$abs" 2>>"$errs" | cut -f1) || true
files=$(find "$abs" -xdev -type f -printf . 2>>"$errs" | wc -c) || true
total_kb=${total_kb:-0}

printf '%s total, %s files in %s\n' \
    "$(numfmt --to=iec --suffix=B --from-unit=1024 "$total_kb")" "$files" "$abs"

# NUL-terminated records keep names with spaces or newlines in one piece.
find "$abs" -mindepth 1 -maxdepth 1 -print0 2>>"$errs" |
    xargs -0 -r du -sxk0 -- 2>>"$errs" |
    sort -z -rn -k1,1 |
    head -z -n "$top" |
    numfmt -z --to=iec --suffix=B --from-unit=1024 --field=1 -d $'\t' --padding=7 |
    tr '\0\n' '\n?' |
    PREFIX="$abs/" awk 'BEGIN { p = "\t" ENVIRON["PREFIX"] }
        { i = index($0, p) }
        i { $0 = substr($0, 1, i - 1) "  " substr($0, i + length(p)) }
        { print }' || true

unreadable=$(grep -c . "$errs" || true)
if [ "$unreadable" -gt 0 ]; then
    printf '(%s entries could not be read; their sizes are left out)\n' "$unreadable"
fi
