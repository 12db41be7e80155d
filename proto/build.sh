#!/bin/sh
# Builds proto/gen/envoy.binpb: the Envoy API descriptors Mandate uses, taken
# at install time from the go-control-plane module release that matches the
# pinned Envoy (see descriptor-dump/go.mod), filtered and written by buf.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v go >/dev/null || { echo "proto/build.sh: Go is needed to read the Envoy API release (apt-get install golang, or any Go >= 1.23)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$ROOT/proto/descriptor-dump" && GOFLAGS=-mod=mod go build -o "$work/descriptor-dump" .)
"$work/descriptor-dump" "$work/envoy-release.binpb" >&2
mkdir -p "$ROOT/proto/gen"
# buf checks the image (every import resolves, no duplicate symbols) and writes it without source info.
"$ROOT/node_modules/.bin/buf" build "$work/envoy-release.binpb" --exclude-source-info -o "$ROOT/proto/gen/envoy.binpb"
echo "proto/build.sh: wrote proto/gen/envoy.binpb ($(wc -c < "$ROOT/proto/gen/envoy.binpb") bytes)" >&2
