#!/usr/bin/env bash
# Runs the whole SparkQ test suite: unit and integration tests (which include
# a short fault run), then the dashboard tests in headless Chromium.
#
# Usage: scripts/test.sh
# Needs: cargo; python3 (fault driver); node, npm and Debian's chromium for
# the browser tests (`.ci/run` installs them). Installs playwright-core into
# node_modules/ with `npm ci` when it is missing. Every server it starts
# listens on 127.0.0.1 and is stopped before it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet
cargo test --quiet --all-targets

if ! command -v chromium >/dev/null 2>&1; then
    echo "test.sh: chromium is not installed (apt-get install chromium); browser tests cannot run" >&2
    exit 1
fi
if [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund --silent
fi
SPARKQ_BIN="$PWD/target/debug/sparkq" node --test --test-concurrency=1 tests/browser/
