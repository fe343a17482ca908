#!/usr/bin/env bash
# Builds kube-apiserver and etcd from their Go modules at pinned versions and caches
# the binaries; a second run with the same versions does nothing.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_DIR="${MPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mpo}"
BIN_DIR="$CACHE_DIR/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

if [[ -x "$BIN_DIR/kube-apiserver" && -x "$BIN_DIR/etcd" ]]; then
  echo "$BIN_DIR"
  exit 0
fi
mkdir -p "$BIN_DIR"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

build_etcd() {
  local work="$CACHE_DIR/src/etcd-$ETCD_VERSION"
  mkdir -p "$work"
  (
    cd "$work"
    local upstream_mod
    upstream_mod=$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
    {
      echo "module mpo-sandbox/etcd"
      echo
      echo "go 1.24"
      echo
      echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
      echo
      # The server module points its sibling modules at ../; use their releases.
      grep -oE '^\s*go\.etcd\.io/etcd/[a-z0-9/-]+ => \.\./' "$upstream_mod" |
        awk -v ver="$ETCD_VERSION" '{print "replace " $1 " => " $1 " " ver}'
    } >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3
  ) >&2
}

build_apiserver() {
  local work="$CACHE_DIR/src/kubernetes-$K8S_VERSION"
  local staging_version="v0.${K8S_VERSION#v1.}"
  mkdir -p "$work"
  (
    cd "$work"
    local upstream_mod
    upstream_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
    {
      echo "module mpo-sandbox/kube-apiserver"
      echo
      echo "go 1.24"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      # Every staging module the upstream go.mod points at ./staging is replaced by
      # its published release of the same minor/patch.
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$upstream_mod" |
        awk -v ver="$staging_version" '{print "replace " $1 " => " $1 " " ver}'
    } >go.mod
    cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
    go mod tidy
    go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" \
      -o "$BIN_DIR/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  ) >&2
}

build_etcd
build_apiserver
echo "$BIN_DIR"
