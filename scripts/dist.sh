#!/usr/bin/env bash
# Builds this machine's release archive (`make dist`): the release binary, its man
# pages and completion scripts (written by the binary itself), packed reproducibly by
# scripts/release.py into $MPO_DIST_DIR (default dist/) as
# kubectl-mpo_<version>_<os>_<arch>.tar.gz, then renders $MPO_DIST_DIR/mpo.yaml and
# checksums.txt from the archives there. A local build has only its own platform: the
# others are left out of the manifest (a line says so), never given a made-up checksum.
# The release workflow packs all six and renders with --tag instead.
#
# MPO_VERSION_OVERRIDE (make dist-check only) builds the same sources as another
# version, to publish a next version into a test krew index.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DIST="${MPO_DIST_DIR:-$ROOT/dist}"
VERSION="${MPO_VERSION_OVERRIDE:-$(scripts/release.py meta version)}"
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "unsupported OS $(uname -s)" >&2; exit 1 ;; esac
case "$(uname -m)" in x86_64|amd64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) echo "unsupported arch $(uname -m)" >&2; exit 1 ;; esac

# Every archive time is the commit's (or SOURCE_DATE_EPOCH), as build.rs's build date.
cargo build --quiet --release --locked --bin kubectl-mpo
binary="$TARGET_DIR/release/kubectl-mpo"
built="$("$binary" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"
[[ "$built" == "$VERSION" ]] || { echo "error: the binary says version $built, expected $VERSION" >&2; exit 1; }

docs="$(mktemp -d)"
trap 'rm -rf "$docs"' EXIT
scripts/release.py docs --binary "$binary" "$docs"
mkdir -p "$DIST"
version_args=()
[[ -n "${MPO_VERSION_OVERRIDE:-}" ]] && version_args=(--version "$MPO_VERSION_OVERRIDE")
scripts/release.py package --binary "$binary" --platform "$os/$arch" --docs "$docs" --out "$DIST" "${version_args[@]}"
scripts/release.py render --dist "$DIST" --local "${version_args[@]}" ${MPO_DIST_BASE_URL:+--base-url "$MPO_DIST_BASE_URL"}
