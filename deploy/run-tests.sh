#!/bin/sh
# The whole suite: type check, unit tests beside the code, integration tests
# with real Envoy (and real NATS where a test needs it) under test/.
# Run through deploy/bootstrap.sh (npm test), which puts the pinned Node.js and tools on PATH.
set -eu
# Real NATS for the scaled-out tests: Debian's nats-server (JetStream), installed here if missing.
if ! command -v nats-server >/dev/null 2>&1; then
  echo "== installing nats-server (Debian package)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq nats-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nats-server >/dev/null; } || { echo "could not install nats-server" >&2; exit 1; }
  else
    echo "nats-server is missing and this is not root: install Debian's nats-server package" >&2
    exit 1
  fi
fi
echo "== type check"
tsc -p tsconfig.json
echo "== tests"
# Unit and integration tests share one runner so its closing summary counts them all.
files=$(find config ext-proc xds-server test deploy -name '*.test.ts' -not -path '*/node_modules/*' | sort)
[ -n "$files" ] || { echo "no test files found" >&2; exit 1; }
# Integration tests start real Envoy processes on loopback ports; run files one at a time.
exec node --test --test-concurrency=1 --test-reporter=spec $files
