#!/bin/sh
# The whole suite: type check, unit tests beside the code, integration tests
# with real Envoy (and real NATS where a test needs it) under test/.
# Run through deploy/bootstrap.sh (npm test), which puts the pinned Node.js and tools on PATH.
set -eu
echo "== type check"
tsc -p tsconfig.json
echo "== tests"
# Unit and integration tests share one runner so its closing summary counts them all.
files=$(find config ext-proc xds-server test deploy -name '*.test.ts' -not -path '*/node_modules/*' | sort)
[ -n "$files" ] || { echo "no test files found" >&2; exit 1; }
# Integration tests start real Envoy processes on loopback ports; run files one at a time.
exec node --test --test-concurrency=1 --test-reporter=spec $files
