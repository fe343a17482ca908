#!/usr/bin/env bash
# The first step of `make demo`, `make sandbox-up` and `make test`: checks that the
# programs they need are installed, before anything is built. Rust, Go and kubectl
# must be there already; missing Debian packages are installed with apt-get (as root,
# or through sudo when it does not ask for a password, or on a terminal where it may),
# else the script stops at once and prints the one command to run.
#
# MPO_PREREQS_QUIET=1 prints nothing when everything is present.
set -euo pipefail

# command -> Debian package that provides it
PACKAGES=(
  "docker-registry:docker-registry"
  "htpasswd:apache2-utils"
  "openssl:openssl"
  "curl:curl"
  "python3:python3"
  "cc:build-essential"
  "setsid:util-linux"
  "base64:coreutils"
  # the completion tests run the zsh and fish scripts
  "zsh:zsh"
  "fish:fish"
)
# Files (not commands) the tests need: the completion tests source kubectl's bash
# completion, which calls bash-completion's functions.
# MPO_BASH_COMPLETION points at another copy (the tests read the same variable).
FILES=(
  "${MPO_BASH_COMPLETION:-/usr/share/bash-completion/bash_completion}:bash-completion"
)

say() { printf '[prereqs] %s\n' "$*" >&2; }

missing_tools=()
command -v cargo >/dev/null || missing_tools+=("Rust (cargo): https://rustup.rs")
command -v go >/dev/null || missing_tools+=("Go (builds kube-apiserver and etcd): https://go.dev/doc/install")
command -v kubectl >/dev/null || missing_tools+=("kubectl: https://kubernetes.io/docs/tasks/tools/")
if ((${#missing_tools[@]})); then
  for tool in "${missing_tools[@]}"; do say "missing: $tool"; done
  exit 1
fi

missing=()
add() { [[ " ${missing[*]} " == *" $1 "* ]] || missing+=("$1"); }
for entry in "${PACKAGES[@]}"; do
  command -v "${entry%%:*}" >/dev/null || add "${entry#*:}"
done
for entry in "${FILES[@]}"; do
  [[ -e "${entry%%:*}" ]] || add "${entry#*:}"
done
if ((${#missing[@]} == 0)); then
  [[ -n "${MPO_PREREQS_QUIET:-}" ]] || say "all prerequisites are installed"
  exit 0
fi

install_command="apt-get install -y ${missing[*]}"
runner=()
if [[ $(id -u) -eq 0 ]]; then
  runner=(env)
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  runner=(sudo -n env)
elif command -v sudo >/dev/null && [[ -t 0 ]]; then
  runner=(sudo env)
fi
if ! command -v apt-get >/dev/null || ((${#runner[@]} == 0)); then
  say "missing Debian packages: ${missing[*]}"
  say "install them with:  sudo $install_command"
  exit 1
fi

say "installing missing Debian packages: ${missing[*]}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for step in update install; do
  args=(-qq)
  [[ $step == install ]] && args=(-y -qq "${missing[@]}")
  if ! "${runner[@]}" DEBIAN_FRONTEND=noninteractive apt-get "$step" "${args[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    say "apt-get $step failed; run:  sudo $install_command"
    exit 1
  fi
done

still=()
for entry in "${PACKAGES[@]}"; do
  command -v "${entry%%:*}" >/dev/null || still+=("${entry%%:*}")
done
for entry in "${FILES[@]}"; do
  [[ -e "${entry%%:*}" ]] || still+=("${entry%%:*}")
done
if ((${#still[@]})); then
  say "installed ${missing[*]}, but still not found: ${still[*]} (is /usr/sbin or /usr/bin on PATH?)"
  exit 1
fi
say "installed: ${missing[*]}"
