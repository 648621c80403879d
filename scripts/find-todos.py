#!/usr/bin/env python3
# name: find-todos
# description: List marker comments (by default TODO, FIXME, XXX, HACK) under a directory as JSON
# inputs: PATH (a directory or a file, default .), --markers WORD,WORD (default TODO,FIXME,XXX,HACK)
# outputs: one line of JSON: root, files_scanned, count, by_marker and items of path, line, marker, text
# tags: code, review, todo, json
# timeout: 120
# task_class: MEDIUM_SCRIPT
#
# Purpose: collects the open-work markers left in a tree so that they can be
# reviewed or turned into tasks.
# Usage: find-todos.py [PATH] [--markers WORDS] [--max-items N]
# A marker counts when it stands as a whole word and is followed by a colon,
# or by a parenthesised note and a colon, or by a space and more text.
# Side effects: none; it only reads files. Hidden folders, node_modules,
# target, __pycache__ and virtual environments are skipped, as are symbolic
# links, binary files and files over 4 MiB.
# Exit status: 0 done (also when nothing is found), 2 bad arguments.

import argparse
import json
import os
import re
import sys

SKIP_DIRS = {"node_modules", "target", "__pycache__", "venv"}
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHARS = 200


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="find-todos.py",
        description="List marker comments under a directory as JSON.",
    )
    parser.add_argument("path", nargs="?", default=".", help="directory or file (default .)")
    parser.add_argument(
        "--markers",
        default="TODO,FIXME,XXX,HACK",
        help="comma-separated words to look for (default TODO,FIXME,XXX,HACK)",
    )
    parser.add_argument(
        "--max-items",
        type=int,
        default=10000,
        help="most items to list; the counts still cover all (default 10000)",
    )
    args = parser.parse_args(argv)
    words = [w.strip() for w in args.markers.split(",") if w.strip()]
    bad = [w for w in words if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", w)]
    if not words or bad:
        parser.error(f"--markers must be words of letters, digits, - and _, not {args.markers!r}")
    if args.max_items < 0:
        parser.error(f"--max-items must be 0 or more, not {args.max_items}")
    if not os.path.exists(args.path):
        parser.error(f"no such file or directory: {args.path!r}")
    args.words = words
    return args


def walk_files(root):
    """Yields the regular files under root, skipping the folders named above."""
    if os.path.isfile(root):
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and d not in SKIP_DIRS
            and not os.path.islink(os.path.join(dirpath, d))
        )
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def read_text(path):
    """Returns the file's text, or None for binary, huge or unreadable files."""
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return None
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def main(argv):
    args = parse_args(argv)
    pattern = re.compile(
        r"\b(" + "|".join(map(re.escape, args.words)) + r")\b(\([^)\n]*\))?(:|[ \t]+(?=\S))"
    )
    root = os.path.abspath(args.path)
    base = root if os.path.isdir(root) else os.path.dirname(root)
    items = []
    by_marker = {w: 0 for w in args.words}
    scanned = 0
    for path in walk_files(root):
        text = read_text(path)
        if text is None:
            continue
        scanned += 1
        for number, line in enumerate(text.splitlines(), start=1):
            for m in pattern.finditer(line):
                by_marker[m.group(1)] += 1
                if len(items) < args.max_items:
                    items.append({
                        "path": os.path.relpath(path, base),
                        "line": number,
                        "marker": m.group(1),
                        "text": line.strip()[:MAX_TEXT_CHARS],
                    })
    report = {
        "root": root,
        "files_scanned": scanned,
        "count": sum(by_marker.values()),
        "by_marker": by_marker,
        "items": items,
    }
    json.dump(report, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        sys.exit(0)
