#!/usr/bin/env bash
# name: test
# description: Runs SparkQ's whole test suite: unit, integration, fault, hostile-input and browser tests
# tags: development, tests
#
# Runs the whole SparkQ test suite: unit and integration tests (which include
# a short fault run), then the dashboard tests in headless Chromium.
#
# Usage: scripts/test.sh
# Needs: cargo; python3 (fault driver); node and npm. Installs Debian's
# chromium with apt-get when it is missing and this runs as root, and
# playwright-core into node_modules/ with `npm ci` when that is missing. Every server it starts
# listens on 127.0.0.1 and is stopped before it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet
cargo test --quiet --all-targets

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing Debian's chromium for the browser tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "test.sh: chromium is not installed (apt-get install chromium); browser tests cannot run" >&2
        exit 1
    fi
fi
if [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund --silent
fi
SPARKQ_BIN="$PWD/target/debug/sparkq" node --test --test-concurrency=1 tests/browser/
