#!/usr/bin/env bash
# Builds the release archive for this machine's platform (krew layout:
# dist/kubectl-mpo_<version>_<os>_<arch>.tar.gz + .sha256) and renders the krew manifest
# dist/mpo.yaml from krew-manifest.yaml. Platforms not built here keep their URLs and
# take their sha256 from dist/*.sha256 when present (a release workflow builds them).
# MPO_DIST_URI overrides this platform's URL (e.g. file:///... for a local krew test).
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
archive="kubectl-mpo_${VERSION}_${os}_${arch}.tar.gz"
tar -C "$stage" -czf "dist/$archive" kubectl-mpo kubectl_complete-mpo LICENSE README.md
(cd dist && sha256sum "$archive" >"$archive.sha256")

python3 - "$VERSION" "$os" "$arch" "${MPO_DIST_URI:-}" <<'PY'
import os, sys
version, this_os, this_arch, override = sys.argv[1:5]
base = f"https://github.com/deckhouse-community/kubectl-mpo/releases/download/v{version}"
blocks = []
for os_name, arch in [("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"),
                      ("darwin", "arm64"), ("windows", "amd64"), ("windows", "arm64")]:
    archive = f"kubectl-mpo_{version}_{os_name}_{arch}.tar.gz"
    exe = ".exe" if os_name == "windows" else ""
    uri = override if (os_name, arch) == (this_os, this_arch) and override else f"{base}/{archive}"
    sums = f"dist/{archive}.sha256"
    sha = open(sums).read().split()[0] if os.path.exists(sums) else "0" * 64
    files = [f"kubectl-mpo{exe}", "LICENSE"] + ([] if exe else ["kubectl_complete-mpo"])
    blocks.append(
        f"  - selector:\n      matchLabels:\n        os: {os_name}\n        arch: {arch}\n"
        f"    uri: {uri}\n    sha256: '{sha}'\n    bin: kubectl-mpo{exe}\n    files:\n"
        + "".join(f"      - from: {name}\n        to: .\n" for name in files)
    )
text = open("krew-manifest.yaml").read()
text = text.replace("{{VERSION}}", version).replace("{{PLATFORMS}}\n", "".join(blocks))
open("dist/mpo.yaml", "w").write(text)
PY
echo "dist/$archive"
echo "dist/mpo.yaml"
