#!/usr/bin/env bash
# name: count-lines
# description: Count lines of text files by file extension under a directory
# inputs: DIR (default .)
# outputs: text: a total line, then a table of extension, files and lines, most lines first
# tags: code, statistics, report
# timeout: 120
# task_class: MEDIUM_SCRIPT
#
# Purpose: a quick size-of-the-code report for a project tree.
# Usage: count-lines.sh [DIR]
# Side effects: none; it only reads files. Hidden folders, node_modules,
# target, __pycache__ and virtual environments are skipped, as are binary
# and empty files. Files without an extension are listed as "(none)".
# Exit status: 0 done, 2 bad arguments.

set -eu

prog=count-lines.sh

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 2
}

if [ $# -gt 1 ]; then
    die "too many arguments (usage: $prog [DIR])"
fi
dir=${1:-.}
if [ ! -e "$dir" ]; then
    die "no such directory: \"$dir\""
fi
if [ ! -d "$dir" ]; then
    die "not a directory: \"$dir\""
fi
if [ ! -r "$dir" ] || [ ! -x "$dir" ]; then
    die "cannot read directory: \"$dir\""
fi
abs=$(cd -- "$dir" && pwd -P)
counts=$(mktemp)
trap 'rm -f -- "$counts"' EXIT

# Stage one prints "extension<TAB>lines" per file. xargs may split the list
# into several awk runs, so the sums are made by a second awk afterwards.
# grep -I drops binary files; LC_ALL=C keeps awk from choking on bytes that
# are not valid in the user's locale.
export LC_ALL=C
find "$abs" -mindepth 1 \
    \( -type d \( -name '.?*' -o -name node_modules -o -name target \
    -o -name __pycache__ -o -name venv \) -prune \) \
    -o -type f -print0 2>/dev/null |
    xargs -0 -r grep -I -l -Z -e '' -- 2>/dev/null |
    xargs -0 -r awk '
        function ext(path,   base) {
            base = path
            sub(/.*\//, "", base)
            if (match(base, /\.[^.]+$/) && RSTART > 1) {
                base = tolower(substr(base, RSTART))
                gsub(/[^[:print:]]/, "?", base)
                return base
            }
            return "(none)"
        }
        { lines[FILENAME]++ }
        END { for (f in lines) printf "%s\t%d\n", ext(f), lines[f] }
    ' >"$counts" || true

awk -F '\t' -v root="$abs" '
    { files[$1]++; lines[$1] += $2; tf++; tl += $2 }
    END {
        printf "%d lines in %d text files under %s\n", tl, tf, root
        if (tf == 0) exit
        printf "%-12s %8s %10s\n", "extension", "files", "lines"
        for (e in files) printf "%-12s %8d %10d\n", e, files[e], lines[e] | "sort -k3,3nr -k1,1"
    }
' "$counts"
