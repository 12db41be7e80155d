#!/bin/sh
# The whole suite: type check, unit tests beside the code, integration tests
# with real Envoy (and real NATS or a real ICAP server where a test needs it) under test/.
# Run through deploy/bootstrap.sh (npm test), which puts the pinned Node.js and tools on PATH.
set -eu
# Real peers the integration tests start on loopback, from Debian's packages, installed here if missing:
# nats-server (JetStream) for the scaled-out tests, c-icap with its content-filtering service as the
# enterprise ICAP DLP, and openssl, which issues the certificates of the https:// upstream tests.
missing=""
command -v nats-server >/dev/null 2>&1 || missing="$missing nats-server"
command -v c-icap >/dev/null 2>&1 || missing="$missing c-icap"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
filtering=""
for module in /usr/lib/c_icap/srv_content_filtering.so /usr/lib/*/c_icap/srv_content_filtering.so; do
  [ -e "$module" ] && filtering="$module"
done
[ -n "$filtering" ] || missing="$missing libc-icap-mod-contentfiltering"
if [ -n "$missing" ]; then
  echo "== installing Debian packages:$missing"
  if [ "$(id -u)" = 0 ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $missing >/dev/null; } || { echo "could not install:$missing" >&2; exit 1; }
  else
    echo "missing:$missing; this is not root: install these Debian packages" >&2
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
