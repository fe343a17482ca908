#!/usr/bin/env bash
# The fresh-machine check (.ci/run runs it first): the prerequisite step of `make demo`
# (scripts/prereqs.sh) is run with the Debian packages' programs hidden from PATH,
#  1. as a user who can neither be root nor use sudo: it must stop within 5 seconds
#     and name the one command to run;
#  2. as root (or with sudo), with an apt-get that records its arguments and installs
#     stand-ins: it must install exactly the missing packages and then succeed.
# Nothing is installed on this machine and nothing is built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { printf '[prereqs-check] FAIL: %s\n' "$*" >&2; exit 1; }

# PATH with every program this machine has, except the hidden ones.
hidden=" docker-registry htpasswd sudo apt-get id "
bare="$work/bare"
mkdir -p "$bare"
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  # The first directory wins, as on PATH (ln leaves existing names alone).
  [[ -d "$dir" ]] && ln -s -t "$bare" "$dir"/* 2>/dev/null || true
done
for name in $hidden; do rm -f "$bare/$name"; done
real_id="$(command -v id)"
completion_file="$work/no-bash-completion/bash_completion"

# 1. No root, no sudo: `id -u` answers 1000 and sudo does not exist.
user_bin="$work/user-bin"
mkdir -p "$user_bin"
printf '#!/bin/sh\n[ "$1" = -u ] && { echo 1000; exit 0; }\nexec %s "$@"\n' "$real_id" >"$user_bin/id"
chmod +x "$user_bin/id"
start=$(date +%s%N)
set +e
out="$(PATH="$user_bin:$bare" MPO_BASH_COMPLETION="$completion_file" "$ROOT/scripts/prereqs.sh" </dev/null 2>&1)"
code=$?
set -e
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
((code != 0)) || fail "without root or sudo it exited 0: $out"
((elapsed_ms < 5000)) || fail "it took ${elapsed_ms} ms to fail (limit 5000 ms)"
command_line="$(grep -o 'sudo apt-get install -y .*' <<<"$out" | head -1)"
[[ -n "$command_line" ]] || fail "no install command named in: $out"
for package in docker-registry apache2-utils bash-completion; do
  [[ " $command_line " == *" $package "* ]] || fail "$package missing from: $command_line"
done
printf '[prereqs-check] no root, no sudo: failed in %d ms with: %s\n' "$elapsed_ms" "$command_line"

# 2. Root (or a sudo without password): apt-get installs what is missing.
root_bin="$work/root-bin"
installed="$work/installed"
mkdir -p "$root_bin" "$installed"
cat >"$root_bin/apt-get" <<EOF
#!/bin/sh
echo "\$*" >>"$work/apt.log"
[ "\$1" = install ] || exit 0
shift
for package in "\$@"; do
  case "\$package" in
    docker-registry) program=docker-registry ;;
    apache2-utils) program=htpasswd ;;
    zsh|fish|openssl|curl|python3|build-essential|util-linux|coreutils) program=\$package ;;
    bash-completion) mkdir -p "${completion_file%/*}"; : >"$completion_file"; continue ;;
    -*) continue ;;
    *) echo "unexpected package \$package" >&2; exit 100 ;;
  esac
  printf '#!/bin/sh\nexit 0\n' >"$installed/\$program"
  chmod +x "$installed/\$program"
done
EOF
printf '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n' >"$root_bin/sudo"
chmod +x "$root_bin/apt-get" "$root_bin/sudo"
ln -s "$real_id" "$root_bin/id"
out="$(PATH="$root_bin:$bare:$installed" MPO_BASH_COMPLETION="$completion_file" "$ROOT/scripts/prereqs.sh" </dev/null 2>&1)" ||
  fail "with apt-get available it failed: $out"
grep -q '^update' "$work/apt.log" || fail "apt-get update was not run: $(cat "$work/apt.log")"
install_line="$(grep '^install' "$work/apt.log")" || fail "apt-get install was not run"
for package in docker-registry apache2-utils bash-completion; do
  [[ " $install_line " == *" $package "* ]] || fail "$package not installed: $install_line"
done
[[ -x "$installed/docker-registry" && -x "$installed/htpasswd" ]] || fail "stand-ins missing"
printf '[prereqs-check] as root: ran apt-get %s\n' "$install_line"
