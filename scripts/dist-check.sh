#!/usr/bin/env bash
# `make dist-check`: the release path, proven on this machine with a real krew.
#  1. scripts/release.py's unit tests (tag/Cargo.toml/CHANGELOG mismatch, missing
#     platform, placeholder or wrong checksum, reproducible archives).
#  2. The host archive is built (`make dist`), built again as a next version, then built
#     once more as the first: the binary is compiled anew, and both archives of the one
#     commit must have one sha256.
#  3. Six archives (the host one, five more with the same layout holding the host
#     binary) are served by a local HTTP server on 127.0.0.1; the manifest is rendered
#     for all six from them, verified (no placeholder, every sha256 its archive's) and
#     validated by krew's validate-krew-manifest, which installs every platform.
#     A manifest with a zeroed or a wrong checksum must be refused.
#  4. A custom krew index (a local git repository) is added to a throw-away KREW_ROOT;
#     the plugin is installed from it, a next version is published into it and
#     `kubectl krew upgrade` takes it, `kubectl mpo version --client` checked after
#     each step; the completion helper works; then uninstall.
# krew and validate-krew-manifest are built from their Go module (cached in
# ${MPO_CACHE_DIR:-~/.cache/kubectl-mpo}/bin). Everything else lives in a temporary
# directory, removed at the end; the HTTP server is stopped by its PID.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${MPO_CACHE_DIR:-$HOME/.cache/kubectl-mpo}/bin"
KREW_VERSION=v0.4.3
START=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - START))"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf 'dist-check: FAILED: %s\n' "$*" >&2; exit 1; }

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step "unit tests of scripts/release.py"
python3 -m unittest -q scripts/test_release.py 2>&1 | tail -n 3

step "krew $KREW_VERSION and validate-krew-manifest"
for tool in krew validate-krew-manifest; do
  if [[ ! -x "$BIN/$tool" ]]; then
    mkdir -p "$BIN"
    (cd "$(mktemp -d)" && GOBIN="$BIN" GOFLAGS=-mod=mod go install "sigs.k8s.io/krew/cmd/$tool@$KREW_VERSION")
  fi
done
mkdir -p "$WORK/tools"
ln -s "$BIN/krew" "$WORK/tools/kubectl-krew"
export PATH="$WORK/tools:$PATH" KREW_NO_UPGRADE_CHECK=1
ok "sigs.k8s.io/krew $KREW_VERSION: $BIN/krew (as kubectl krew) and $BIN/validate-krew-manifest"

VERSION="$(scripts/release.py meta version)"
NEXT="$(python3 -c 'import sys; a,b,c=sys.argv[1].split("-")[0].split("."); print(f"{a}.{b}.{int(c)+1}")' "$VERSION")"
COMMIT="$(git rev-parse --short=12 HEAD)"
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) HOST=linux/amd64 ;; Linux/aarch64) HOST=linux/arm64 ;;
  Darwin/x86_64) HOST=darwin/amd64 ;; Darwin/arm64) HOST=darwin/arm64 ;;
  *) fail "no release platform for $(uname -s)/$(uname -m)" ;;
esac
archive() { echo "kubectl-mpo_${1}_${2%/*}_${2#*/}.tar.gz"; }

step "host archive $VERSION ($HOST, commit $COMMIT): first build"
MPO_DIST_DIR="$WORK/build1" scripts/dist.sh 2>&1 | sed '/^left out /d; s/^/   /'
A1="$WORK/build1/$(archive "$VERSION" "$HOST")"
SUM1="$(sha256sum "$A1" | cut -d' ' -f1)"
ok "$(basename "$A1") $SUM1"

step "host archive $NEXT: the same sources as the next version"
MPO_VERSION_OVERRIDE="$NEXT" MPO_DIST_DIR="$WORK/build-next" scripts/dist.sh 2>&1 | sed '/^left out /d; s/^/   /'
ok "$(basename "$WORK/build-next/$(archive "$NEXT" "$HOST")")"

step "host archive $VERSION again: compiled anew, must be the same bytes"
MPO_DIST_DIR="$WORK/build2" scripts/dist.sh 2>&1 | sed '/^left out /d; s/^/   /'
SUM2="$(sha256sum "$WORK/build2/$(archive "$VERSION" "$HOST")" | cut -d' ' -f1)"
[[ "$SUM1" == "$SUM2" ]] || fail "two builds of $COMMIT differ: $SUM1 vs $SUM2"
ok "two builds of commit $COMMIT: one sha256 $SUM1"

step "local HTTP server on 127.0.0.1"
mkdir -p "$WORK/serve"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/serve" >"$WORK/http.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
  PORT="$(awk '/ port [0-9]+ / { for (i = 1; i < NF; i++) if ($i == "port") { print $(i + 1); exit } }' "$WORK/http.log")"
  [[ -n "$PORT" ]] && break
  sleep 0.1
done
[[ -n "${PORT:-}" ]] || fail "the HTTP server did not start: $(cat "$WORK/http.log")"
ok "serving $WORK/serve at http://127.0.0.1:$PORT (pid $SERVER_PID)"

# Six archives of one version: the host's real one; the other five hold the host
# binary in their platform's layout (kubectl-mpo.exe on windows) and their own name.
publish() { # VERSION BUILD_DIR
  local version="$1" build="$2" dir="$WORK/serve/v$1" docs="$WORK/docs-$1" binary
  mkdir -p "$dir"
  cp "$build/$(archive "$version" "$HOST")" "$dir/"
  binary="$WORK/bin-$version"
  tar -xzOf "$build/$(archive "$version" "$HOST")" kubectl-mpo >"$binary"
  chmod +x "$binary"
  scripts/release.py docs --binary "$binary" "$docs"
  for platform in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
    [[ "$platform" == "$HOST" ]] && continue
    scripts/release.py package --binary "$binary" --platform "$platform" --docs "$docs" \
      --out "$dir" --version "$version" >/dev/null
  done
  scripts/release.py render --dist "$dir" --local --require-all --version "$version" \
    --base-url "http://127.0.0.1:$PORT/v$version" >/dev/null
  scripts/release.py verify --dist "$dir" | sed 's/^/   /'
}

step "manifest $VERSION for six platforms, from six archives"
publish "$VERSION" "$WORK/build1"
MANIFEST="$WORK/serve/v$VERSION/mpo.yaml"
[[ "$(grep -c '^    uri: http://127.0.0.1' "$MANIFEST")" == 6 ]] || fail "the manifest does not name six platforms"
if grep -Eq "sha256: [\"']?0{64}" "$MANIFEST"; then fail "a placeholder checksum in $MANIFEST"; fi
grep -q "^  homepage: $(scripts/release.py meta repository)$" "$MANIFEST" || fail "homepage is not Cargo.toml's repository"
sed -n 's/^  shortDescription: //p' "$MANIFEST" | awk '{ if (length($0) >= 50) exit 1 }' || fail "shortDescription is 50 characters or more"
sed 's/^/   /' "$WORK/serve/v$VERSION/checksums.txt"

step "validate-krew-manifest (installs every platform from the server)"
"$BIN/validate-krew-manifest" -manifest "$MANIFEST" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "validate-krew-manifest"; }
grep -E "validation OK|platform|installed" "$WORK/out" | sed -E 's/^[IWEF][0-9]{4} [0-9:.]+ +[0-9]+ [a-z_.-]+:[0-9]+\] //; s/^[0-9\/]+ [0-9:]+ //; s/^/   /'
grep -q "all 6 spec.platforms installed fine" "$WORK/out" || fail "validate-krew-manifest did not install all six platforms"
ok "validate-krew-manifest: valid, every platform installed from http://127.0.0.1:$PORT"

step "a checksum that lies is refused"
for lie in zero wrong; do
  bad="$WORK/lie-$lie"
  cp -r "$WORK/serve/v$VERSION" "$bad"
  sum="$(awk '/^    sha256: / { print $2; exit }' "$bad/mpo.yaml")"
  case "$lie" in
    zero) new="$(printf '0%.0s' $(seq 64))" ;;
    wrong) new="$(sha256sum "$bad/checksums.txt" | cut -d' ' -f1)" ;; # a real sha256, of another file
  esac
  sed -i "s/^    sha256: $sum$/    sha256: \"$new\"/" "$bad/mpo.yaml"
  if scripts/release.py verify --dist "$bad" >"$WORK/out" 2>&1; then fail "release.py verify accepted a $lie checksum"; fi
  ok "release.py verify refuses a $lie checksum: $(cat "$WORK/out")"
  if KREW_ROOT="$WORK/krew-lie-$lie" kubectl krew install --manifest="$bad/mpo.yaml" >"$WORK/out" 2>&1; then
    fail "krew installed a manifest with a $lie checksum"
  fi
  ok "krew refuses it too: $(grep -m1 -o 'sha256` value [0-9a-f]* is not valid\|checksum does not match' "$WORK/out" || tail -1 "$WORK/out")"
done

step "custom krew index: install $VERSION, upgrade to $NEXT, uninstall"
INDEX="$WORK/index"
git init -q -b main "$INDEX"
mkdir -p "$INDEX/plugins"
index_commit() { # VERSION
  cp "$WORK/serve/v$1/mpo.yaml" "$INDEX/plugins/mpo.yaml"
  git -C "$INDEX" add plugins/mpo.yaml
  git -C "$INDEX" -c user.name=dist-check -c user.email=dist-check@localhost commit -q -m "mpo v$1"
}
index_commit "$VERSION"
export KREW_ROOT="$WORK/krew-root"
export PATH="$KREW_ROOT/bin:$PATH"
kubectl krew index add mpo-test "file://$INDEX" >/dev/null 2>&1
ok "kubectl krew index add mpo-test file://$INDEX: $(kubectl krew index list 2>/dev/null | tail -n +2 | tr -s ' ')"
kubectl krew install mpo-test/mpo >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "krew install mpo-test/mpo"; }
check_version() { # VERSION
  local line
  line="$(kubectl mpo version --client)"
  [[ "$line" == "kubectl-mpo $1 (commit "* ]] || fail "kubectl mpo version --client: '$line', expected version $1"
  [[ "$line" == *"(commit $(git rev-parse HEAD), built "* && "$line" != *"built unknown"* ]] ||
    fail "kubectl mpo version --client: '$line' does not name commit $(git rev-parse HEAD) and its date"
  ok "kubectl mpo version --client: $line"
}
check_version "$VERSION"
# (outputs go to a file first: grep -q would end the pipe early, and pipefail with it)
kubectl plugin list >"$WORK/out" 2>/dev/null || true
grep -qx "$KREW_ROOT/bin/kubectl-mpo" "$WORK/out" || fail "kubectl plugin list does not find $KREW_ROOT/bin/kubectl-mpo"
store="$(echo "$KREW_ROOT/store/mpo/"v*)"
for file in kubectl-mpo kubectl_complete-mpo LICENSE man/man1/kubectl-mpo.1 man/man1/kubectl-mpo-create.1 \
  completions/kubectl-mpo.bash completions/_kubectl-mpo completions/kubectl-mpo.fish completions/kubectl-mpo.ps1; do
  [[ -s "$store/$file" ]] || fail "$store/$file is missing"
done
test -x "$store/kubectl_complete-mpo" || fail "the completion helper is not executable"
ok "installed from the index: binary, helper, LICENSE, $(ls "$store/man/man1" | wc -l) man pages, 4 completion scripts"
# The one step krew cannot do: the completion helper on PATH, next to the plugin.
kubectl mpo completion --install-helper >/dev/null
test -x "$KREW_ROOT/bin/kubectl_complete-mpo" || fail "completion --install-helper did not install the helper"
kubectl __complete mpo vers >"$WORK/out" 2>/dev/null || true
cut -f1 "$WORK/out" | grep -qx version || fail "kubectl __complete mpo does not complete: $(cat "$WORK/out")"
ok "completion helper installed; kubectl __complete mpo vers -> version"

publish "$NEXT" "$WORK/build-next"
index_commit "$NEXT"
ok "published $NEXT into the index ($(git -C "$INDEX" log --oneline | wc -l) commits)"
kubectl krew upgrade mpo >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "krew upgrade mpo"; }
grep -q "^Upgraded plugin: mpo-test/mpo$" "$WORK/out" || { cat "$WORK/out"; fail "krew upgrade did not upgrade mpo-test/mpo"; }
ok "kubectl krew upgrade mpo: $(grep -m1 "Upgraded plugin" "$WORK/out")"
check_version "$NEXT"
kubectl krew list >"$WORK/out" 2>/dev/null || true
grep -q "mpo" "$WORK/out" || fail "krew list does not show mpo: $(cat "$WORK/out")"
kubectl krew uninstall mpo >/dev/null 2>&1
[[ ! -e "$KREW_ROOT/bin/kubectl-mpo" ]] || fail "kubectl-mpo is still in $KREW_ROOT/bin after uninstall"
ok "kubectl krew uninstall mpo: $KREW_ROOT/bin/kubectl-mpo removed"

kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
step "dist-check passed"
echo "   reproducible host archive $SUM1; six-platform manifest valid and installable; index install $VERSION -> upgrade $NEXT -> uninstall"
