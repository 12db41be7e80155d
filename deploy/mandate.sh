#!/bin/sh
# The mandate CLI. bootstrap.sh changes to the repository root, so the caller's
# directory travels in MANDATE_CWD for relative paths such as `apply -f personas.yaml`.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MANDATE_CWD=${MANDATE_CWD:-$(pwd)}
export MANDATE_CWD
exec sh "$ROOT/deploy/bootstrap.sh" node "$ROOT/xds-server/cli/main.ts" "$@"
