#!/usr/bin/env bash
# Builds the release archive for this machine's platform and renders the krew manifest
# (dist/mpo.yaml). MPO_DIST_URI overrides the archive URL (e.g. file:///... for a local
# krew install test).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "unsupported OS" >&2; exit 1 ;; esac
case "$(uname -m)" in x86_64|amd64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) echo "unsupported arch" >&2; exit 1 ;; esac

cargo build --quiet --release --bin kubectl-mpo
mkdir -p dist
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$TARGET_DIR/release/kubectl-mpo" kubectl_complete-mpo LICENSE README.md "$stage/"
archive="kubectl-mpo-$os-$arch.tar.gz"
tar -C "$stage" -czf "dist/$archive" kubectl-mpo kubectl_complete-mpo LICENSE README.md
sha="$(sha256sum "dist/$archive" | cut -d' ' -f1)"
uri="${MPO_DIST_URI:-https://github.com/deckhouse-community/kubectl-mpo/releases/download/v$VERSION/$archive}"

platforms="$(cat <<YAML
  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $uri
    sha256: $sha
    bin: kubectl-mpo
    files:
      - from: kubectl-mpo
        to: .
      - from: kubectl_complete-mpo
        to: .
      - from: LICENSE
        to: .
YAML
)"
python3 -c '
import sys
text = open("krew-manifest.yaml").read()
print(text.replace("{{VERSION}}", sys.argv[1]).replace("{{PLATFORMS}}", sys.argv[2]), end="")
' "$VERSION" "$platforms" > dist/mpo.yaml
echo "dist/$archive"
echo "dist/mpo.yaml"
