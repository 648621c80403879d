#!/usr/bin/env bash
# name: git-summary
# description: Summarise a git repository: branch, upstream, working tree status and recent commits
# inputs: REPO (default .), N: how many recent commits to list (default 10)
# outputs: text: a summary line, then the status and the last N commits
# tags: git, repository, report
# timeout: 30
# task_class: FAST_SCRIPT
#
# Purpose: a short "where is this repository at" report for a worker or a
# person starting on a project.
# Usage: git-summary.sh [REPO] [N]
#   git-summary.sh ~/project 5
# Side effects: none; git runs with --no-optional-locks so that even the
# index's stat cache is left untouched.
# Exit status: 0 done, 2 bad arguments or not a git work tree.

set -eu

prog=git-summary.sh

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 2
}

if [ $# -gt 2 ]; then
    die "too many arguments (usage: $prog [REPO] [N])"
fi
dir=${1:-.}
count=${2:-10}
if ! command -v git >/dev/null 2>&1; then
    die "git is not installed"
fi
if [ ! -d "$dir" ]; then
    die "not a directory: \"$dir\""
fi
if ! [[ $count =~ ^[1-9][0-9]{0,4}$ ]]; then
    die "N must be a whole number from 1 to 99999, not \"$count\""
fi
if [ "$(git -C "$dir" rev-parse --is-inside-work-tree 2>/dev/null)" != true ]; then
    die "not inside a git work tree: \"$dir\""
fi

g() {
    git --no-optional-locks -C "$dir" "$@"
}

top=$(g rev-parse --show-toplevel)
branch=$(g symbolic-ref --short -q HEAD || echo "(detached HEAD)")
if head=$(g rev-parse -q --verify --short HEAD); then
    commits=$(g rev-list --count HEAD)
else
    head="none"
    commits=0
fi
status=$(g status --porcelain=v1 --untracked-files=normal)
untracked=$(printf '%s\n' "$status" | grep -c '^??' || true)
changed=$(printf '%s\n' "$status" | grep -c '^[^?]' || true)

printf '%s: branch %s at %s, %s commits, %s changed, %s untracked\n' \
    "$top" "$branch" "$head" "$commits" "$changed" "$untracked"

if upstream=$(g rev-parse -q --abbrev-ref --symbolic-full-name '@{upstream}' 2>/dev/null); then
    read -r behind ahead < <(g rev-list --left-right --count "$upstream...HEAD")
    printf 'upstream %s: %s ahead, %s behind\n' "$upstream" "$ahead" "$behind"
else
    printf 'upstream: none\n'
fi

printf '\nstatus:\n'
if [ -n "$status" ]; then
    printf '%s\n' "$status" | head -n 50 | sed 's/^/  /'
    lines=$(printf '%s\n' "$status" | wc -l)
    if [ "$lines" -gt 50 ]; then
        printf '  ... and %s more\n' "$((lines - 50))"
    fi
else
    printf '  clean\n'
fi

printf '\nlast commits:\n'
if [ "$commits" -gt 0 ]; then
    g log -n "$count" --date=short --format='  %h %ad %<(16,trunc)%an %s'
else
    printf '  none yet\n'
fi
