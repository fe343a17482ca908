#!/usr/bin/env bash
# Starts the sandbox: etcd + kube-apiserver (built from the Kubernetes Go module),
# three docker-registry variants, a Bearer token service and the Deckhouse controller
# simulator, all on 127.0.0.1, then seeds it and writes env.sh and state.json.
#
# GEN=A|B|C|D picks the Deckhouse controller generation the simulator plays
# (docs/deckhouse-real.md §1; default C, the newest confirmed in a DKP release);
# DIGEST_RULE=child|index which digest of a multi-arch tag it records (§3.1).
# MPO_SANDBOX_MPO_VERSION=v1alpha1 (older spelling) means GEN=A.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Missing Debian packages are installed (or named) before anything is built.
MPO_PREREQS_QUIET=1 "$ROOT/scripts/prereqs.sh"
SANDBOX_DIR="${SANDBOX_DIR:-$ROOT/target/sandbox}"
mkdir -p "$SANDBOX_DIR"
SANDBOX_DIR="$(cd "$SANDBOX_DIR" && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$TARGET_DIR"
TARGET_DIR="$(cd "$TARGET_DIR" && pwd)"
PKI="$SANDBOX_DIR/pki"
PIDS="$SANDBOX_DIR/pids"
LOGS="$SANDBOX_DIR/logs"
DATA="$SANDBOX_DIR/data"

log() { printf '[sandbox] %s\n' "$*" >&2; }
die() { printf '[sandbox] error: %s\n' "$*" >&2; exit 1; }

GEN="${GEN:-${MPO_SANDBOX_GEN:-}}"
if [[ -z "$GEN" ]]; then
  if [[ "${MPO_SANDBOX_MPO_VERSION:-}" == v1alpha1 ]]; then GEN=A; else GEN=C; fi
fi
GEN="${GEN^^}"
[[ "$GEN" =~ ^[ABCD]$ ]] || die "GEN must be A, B, C or D (got '$GEN')"
DIGEST_RULE="${DIGEST_RULE:-child}"
[[ "$DIGEST_RULE" == child || "$DIGEST_RULE" == index ]] || die "DIGEST_RULE must be child or index"

alive() { [[ -f "$PIDS/$1.pid" ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

if [[ -f "$SANDBOX_DIR/state.json" ]] && alive kube-apiserver && alive simulator; then
  log "already up in $SANDBOX_DIR (source $SANDBOX_DIR/env.sh)"
  exit 0
fi
if [[ -d "$PIDS" ]]; then
  log "stale sandbox state in $SANDBOX_DIR: stopping it first"
  "$ROOT/sandbox/scripts/down.sh"
fi
mkdir -p "$PKI" "$PIDS" "$LOGS" "$DATA"
trap 'status=$?; if [[ $status -ne 0 ]]; then log "start-up failed; logs are in $LOGS"; fi' EXIT

# --- binaries -------------------------------------------------------------------
CONTROL_PLANE="$("$ROOT/sandbox/scripts/build-control-plane.sh")"
log "control plane binaries: $CONTROL_PLANE"
OIDC_BIN="$("$ROOT/sandbox/scripts/build-oidc.sh")"
log "OpenID Connect provider: $OIDC_BIN"
# MPO_SANDBOX_PREBUILT=1: the caller built them (make test starts a second sandbox
# while its tests hold cargo's build lock).
if [[ "${MPO_SANDBOX_PREBUILT:-}" != 1 ]]; then
  log "building kubectl-mpo and mpo-sandbox"
  (cd "$ROOT" && cargo build --quiet --workspace --bins)
fi
SANDBOX_BIN="$TARGET_DIR/debug/mpo-sandbox"
# `kubectl mpo <TAB>`: kubectl looks for the completion helper on PATH, and env.sh puts
# this directory there.
ln -sf "$ROOT/kubectl_complete-mpo" "$TARGET_DIR/debug/kubectl_complete-mpo"
REGISTRY_BIN="$(command -v docker-registry)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() { # name, command...
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

wait_for() { # description, seconds, command...
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.2
  done
}

# --- PKI --------------------------------------------------------------------------
log "generating certificates"
(
  cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=mpo-sandbox-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  cat >server.ext <<EOF
subjectAltName = IP:127.0.0.1, DNS:localhost
extendedKeyUsage = serverAuth
EOF
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile server.ext -out server.crt 2>/dev/null
  echo "extendedKeyUsage = clientAuth" >client.ext
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=cert-admin" -keyout admin.key -out admin.csr 2>/dev/null
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile client.ext -out admin.crt 2>/dev/null
  # The API server's client certificate for kubelets (pods/log goes through it).
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout kubelet-client.key -out kubelet-client.csr 2>/dev/null
  openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile client.ext -out kubelet-client.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  # The token service signs registry tokens with this key; the registry trusts its cert.
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=mpo-sandbox-token-issuer" \
    -keyout token.key -out token.crt 2>/dev/null
  rm -f ./*.csr ./*.ext ./*.srl
)

secret() { head -c 18 /dev/urandom | base64 | tr -d '/+=' ; }
ADMIN_TOKEN="admin-$(secret)"
READONLY_TOKEN="readonly-$(secret)"
DEVELOPER_TOKEN="developer-$(secret)"
THROTTLED_TOKEN="throttled-$(secret)"
cat >"$PKI/tokens.csv" <<EOF
$ADMIN_TOKEN,admin,admin,"system:masters"
$READONLY_TOKEN,readonly,readonly,
$DEVELOPER_TOKEN,developer,developer,
$THROTTLED_TOKEN,throttled,throttled,
EOF
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

# --- OpenID Connect provider -----------------------------------------------------------
# The example OP of github.com/zitadel/oidc/v3 (sandbox/oidc) plays Deckhouse's dex:
# HTTPS with the sandbox CA, one confidential client as user-authn's kubeconfig
# generator has, rotating refresh tokens and id-tokens that live seconds.
OIDC_PORT=$(free_port)
OIDC_ISSUER="https://127.0.0.1:$OIDC_PORT"
OIDC_CLIENT_ID="kubeconfig-generator"
OIDC_USER="developer@dkp.example"
OIDC_USER_ID="dkp-developer"
OIDC_ID_TOKEN_LIFETIME="${MPO_SANDBOX_OIDC_ID_TOKEN_LIFETIME:-20s}"
printf 'client-%s' "$(secret)" >"$PKI/oidc-client-secret"
printf 'pw-%s' "$(secret)" >"$PKI/oidc-password"
cat >"$PKI/oidc-users.json" <<EOF
{"$OIDC_USER_ID": {"ID": "$OIDC_USER_ID", "Username": "$OIDC_USER", "Password": "$(cat "$PKI/oidc-password")",
  "FirstName": "DKP", "LastName": "Developer", "Email": "$OIDC_USER", "EmailVerified": true, "PreferredLanguage": "en"}}
EOF
chmod 600 "$PKI/oidc-client-secret" "$PKI/oidc-password" "$PKI/oidc-users.json"
log "starting the OpenID Connect provider on $OIDC_ISSUER"
start oidc "$OIDC_BIN" serve --listen "127.0.0.1:$OIDC_PORT" --issuer "$OIDC_ISSUER" \
  --cert "$PKI/server.crt" --key "$PKI/server.key" --users "$PKI/oidc-users.json" \
  --client-id "$OIDC_CLIENT_ID" --client-secret-file "$PKI/oidc-client-secret" \
  --id-token-lifetime "$OIDC_ID_TOKEN_LIFETIME"
wait_for "OpenID Connect provider" 30 curl -sf --cacert "$PKI/ca.crt" "$OIDC_ISSUER/.well-known/openid-configuration"

# --- etcd + kube-apiserver ------------------------------------------------------------
ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
log "starting etcd on 127.0.0.1:$ETCD_PORT"
start etcd "$CONTROL_PLANE/etcd" --name sandbox --data-dir "$DATA/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "sandbox=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# The Node of the deckhouse Pod has no kubelet; this server answers the kubelet's
# containerLogs requests that the API server makes for pods/log.
KUBELET_PORT=$(free_port)
KUBELET_DIR="$DATA/kubelet"
mkdir -p "$KUBELET_DIR"
log "starting the kubelet log endpoint on 127.0.0.1:$KUBELET_PORT"
start kubelet "$SANDBOX_BIN" kubelet --listen "127.0.0.1:$KUBELET_PORT" \
  --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" --dir "$KUBELET_DIR"
wait_for "kubelet log endpoint" 30 grep -q "kubelet log endpoint" "$LOGS/kubelet.log"

log "starting kube-apiserver on 127.0.0.1:$API_PORT"
start kube-apiserver "$CONTROL_PLANE/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
  --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range 10.96.0.0/24 \
  --oidc-issuer-url "$OIDC_ISSUER" --oidc-client-id "$OIDC_CLIENT_ID" --oidc-ca-file "$PKI/ca.crt" \
  --oidc-username-claim sub --oidc-username-prefix "oidc:" \
  --kubelet-client-certificate "$PKI/kubelet-client.crt" --kubelet-client-key "$PKI/kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
  --enable-priority-and-fairness=true --max-requests-inflight 150 --max-mutating-requests-inflight 80 \
  --profiling=false
API="https://127.0.0.1:$API_PORT"
wait_for kube-apiserver 90 curl -sf --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$API/readyz"

# --- kubeconfig ------------------------------------------------------------------------
b64() { base64 -w0 "$1"; }
KUBECONFIG_FILE="$SANDBOX_DIR/kubeconfig"
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: $API
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
- name: cert-admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
- name: readonly
  user:
    token: $READONLY_TOKEN
- name: developer
  user:
    token: $DEVELOPER_TOKEN
- name: throttled
  user:
    token: $THROTTLED_TOKEN
contexts:
- name: sandbox
  context: {cluster: sandbox, user: admin}
- name: sandbox-cert
  context: {cluster: sandbox, user: cert-admin}
- name: sandbox-readonly
  context: {cluster: sandbox, user: readonly}
- name: sandbox-developer
  context: {cluster: sandbox, user: developer}
- name: sandbox-throttled
  context: {cluster: sandbox, user: throttled}
current-context: sandbox
EOF
chmod 600 "$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"
kubectl apply -f "$ROOT/sandbox/rbac.yaml" >/dev/null
# The apiserver creates its default priority levels at start-up; ours joins them.
wait_for "API Priority and Fairness" 30 kubectl get prioritylevelconfigurations.flowcontrol.apiserver.k8s.io global-default
kubectl apply -f "$ROOT/sandbox/apf.yaml" >/dev/null

# A kubeconfig as Deckhouse's kubeconfig generator hands out (auth-provider oidc), for
# the user oidc:dkp-developer. The API server fetches the provider's discovery document
# in the background: wait until a request with the id-token is authenticated.
OIDC_KUBECONFIG="$SANDBOX_DIR/kubeconfig-oidc"
"$OIDC_BIN" login --issuer "$OIDC_ISSUER" --ca "$PKI/ca.crt" --client-id "$OIDC_CLIENT_ID" \
  --client-secret-file "$PKI/oidc-client-secret" --username "$OIDC_USER" --password-file "$PKI/oidc-password" \
  --kubeconfig-out "$OIDC_KUBECONFIG" --server "$API" --cluster-ca "$PKI/ca.crt" --user-name "$OIDC_USER"
wait_for "OIDC authentication at the API server" 60 \
  kubectl --kubeconfig "$OIDC_KUBECONFIG" auth whoami

# --- registries ---------------------------------------------------------------------------
REGISTRY_USER="mpo-dev"
REGISTRY_PASSWORD="pw-$(secret)"
TOKEN_USER="mpo-ci"
# Same password; the token service grants this user only the first scope of a batch.
TOKEN_PARTIAL_USER="mpo-ci-partial"
TOKEN_PASSWORD="pw-$(secret)"
htpasswd -C 4 -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$PKI/htpasswd" 2>/dev/null
TLS_PORT=$(free_port)
TOKEN_REGISTRY_PORT=$(free_port)
HTTP_PORT=$(free_port)
TOKEN_SERVICE_PORT=$(free_port)
FRONT_PORT=$(free_port)

registry_config() { # name port extra-yaml
  local dir="$DATA/registry-$1"
  mkdir -p "$dir"
  cat >"$SANDBOX_DIR/registry-$1.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$2
  secret: $(secret)
$3
EOF
}
registry_config tls "$TLS_PORT" "  tls:
    certificate: $PKI/server.crt
    key: $PKI/server.key
auth:
  htpasswd:
    realm: mpo-sandbox
    path: $PKI/htpasswd"
registry_config token "$TOKEN_REGISTRY_PORT" "  tls:
    certificate: $PKI/server.crt
    key: $PKI/server.key
auth:
  token:
    realm: http://127.0.0.1:$TOKEN_SERVICE_PORT/token
    service: mpo-sandbox-registry
    issuer: mpo-sandbox-token-issuer
    rootcertbundle: $PKI/token.crt"
registry_config http "$HTTP_PORT" ""

for variant in tls token http; do
  log "starting registry '$variant'"
  start "registry-$variant" "$REGISTRY_BIN" serve "$SANDBOX_DIR/registry-$variant.yml"
done
printf '%s' "$TOKEN_PASSWORD" >"$PKI/token-password"
chmod 600 "$PKI/token-password"
start token-service "$SANDBOX_BIN" token-server --listen "127.0.0.1:$TOKEN_SERVICE_PORT" \
  --key "$PKI/token.key" --cert "$PKI/token.crt" --issuer mpo-sandbox-token-issuer \
  --service mpo-sandbox-registry --user "$TOKEN_USER" --password-file "$PKI/token-password" \
  --partial-user "$TOKEN_PARTIAL_USER"
start registry-front "$SANDBOX_BIN" registry-front --listen "127.0.0.1:$FRONT_PORT" \
  --upstream "http://127.0.0.1:$HTTP_PORT"
wait_for "registry tls" 30 curl -s -o /dev/null --cacert "$PKI/ca.crt" "https://127.0.0.1:$TLS_PORT/v2/"
wait_for "registry token" 30 curl -s -o /dev/null --cacert "$PKI/ca.crt" "https://127.0.0.1:$TOKEN_REGISTRY_PORT/v2/"
wait_for "registry http" 30 curl -sf "http://127.0.0.1:$HTTP_PORT/v2/"
wait_for "registry front" 30 curl -sf "http://127.0.0.1:$FRONT_PORT/v2/"
wait_for "token service" 30 curl -s -o /dev/null "http://127.0.0.1:$TOKEN_SERVICE_PORT/healthz"

# --- state ---------------------------------------------------------------------------------
cat >"$SANDBOX_DIR/state.json" <<EOF
{
  "dir": "$SANDBOX_DIR",
  "kubeconfig": "$KUBECONFIG_FILE",
  "api_server": "$API",
  "generation": "$GEN",
  "digest_rule": "$DIGEST_RULE",
  "contexts": { "admin": "sandbox", "cert": "sandbox-cert", "readonly": "sandbox-readonly", "developer": "sandbox-developer", "throttled": "sandbox-throttled" },
  "ca_file": "$PKI/ca.crt",
  "kubelet": { "port": $KUBELET_PORT, "dir": "$KUBELET_DIR" },
  "oidc": {
    "issuer": "$OIDC_ISSUER", "client_id": "$OIDC_CLIENT_ID", "client_secret_file": "$PKI/oidc-client-secret",
    "username": "$OIDC_USER", "password_file": "$PKI/oidc-password", "binary": "$OIDC_BIN",
    "kubeconfig": "$OIDC_KUBECONFIG", "id_token_lifetime": "$OIDC_ID_TOKEN_LIFETIME"
  },
  "registries": {
    "tls": { "host": "127.0.0.1:$TLS_PORT", "scheme": "HTTPS", "auth": "basic", "username": "$REGISTRY_USER", "password": "$REGISTRY_PASSWORD" },
    "token": { "host": "127.0.0.1:$TOKEN_REGISTRY_PORT", "scheme": "HTTPS", "auth": "bearer", "username": "$TOKEN_USER", "password": "$TOKEN_PASSWORD", "token_realm": "http://127.0.0.1:$TOKEN_SERVICE_PORT/token" },
    "token-partial": { "host": "127.0.0.1:$TOKEN_REGISTRY_PORT", "scheme": "HTTPS", "auth": "bearer", "username": "$TOKEN_PARTIAL_USER", "password": "$TOKEN_PASSWORD", "token_realm": "http://127.0.0.1:$TOKEN_SERVICE_PORT/token" },
    "http": { "host": "127.0.0.1:$HTTP_PORT", "scheme": "HTTP", "auth": "none" },
    "front": { "host": "127.0.0.1:$FRONT_PORT", "scheme": "HTTP", "auth": "none" }
  }
}
EOF
chmod 600 "$SANDBOX_DIR/state.json"
cat >"$SANDBOX_DIR/env.sh" <<EOF
# Generated by sandbox/scripts/up.sh: source it to use the sandbox.
export KUBECONFIG="$KUBECONFIG_FILE"
export MPO_SANDBOX_DIR="$SANDBOX_DIR"
export MPO_REGISTRY_TLS="127.0.0.1:$TLS_PORT"
export MPO_REGISTRY_TOKEN="127.0.0.1:$TOKEN_REGISTRY_PORT"
export MPO_REGISTRY_HTTP="127.0.0.1:$HTTP_PORT"
export MPO_OIDC_KUBECONFIG="$OIDC_KUBECONFIG"
export MPO_SANDBOX_GEN="$GEN"
export PATH="$TARGET_DIR/debug:\$PATH"
EOF

# --- seed + simulator ------------------------------------------------------------------------
log "applying CRDs and seeding"
log "controller generation $GEN, digest rule $DIGEST_RULE"
"$SANDBOX_BIN" seed --state "$SANDBOX_DIR/state.json" --crds "$ROOT/sandbox/crds" \
  --generation "$GEN" --digest-rule "$DIGEST_RULE"
start simulator "$SANDBOX_BIN" simulate --state "$SANDBOX_DIR/state.json"
wait_for simulator 30 grep -q "simulator ready" "$LOGS/simulator.log"

# --- ModuleConfig admission webhook (docs/deckhouse-real.md §3.17) ---------------------------
# HTTPS on 127.0.0.1 with the sandbox server certificate; the API server calls it by URL
# and trusts it through caBundle (the sandbox CA). Registered after seeding, as Deckhouse
# registers it once it runs.
WEBHOOK_PORT=$(free_port)
log "starting the ModuleConfig webhook on https://127.0.0.1:$WEBHOOK_PORT"
start webhook "$SANDBOX_BIN" webhook --listen "127.0.0.1:$WEBHOOK_PORT" \
  --cert "$PKI/server.crt" --key "$PKI/server.key" --state "$SANDBOX_DIR/state.json"
wait_for webhook 30 grep -q "webhook listening" "$LOGS/webhook.log"
kubectl apply -f - >/dev/null <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: d8-deckhouse-validating-webhook-handler
  labels: {heritage: deckhouse}
webhooks:
- name: moduleconfigs.deckhouse-webhook.deckhouse.io
  clientConfig:
    url: https://127.0.0.1:$WEBHOOK_PORT/validate-moduleconfig
    caBundle: $(b64 "$PKI/ca.crt")
  rules:
  - apiGroups: [deckhouse.io]
    apiVersions: ["*"]
    operations: [CREATE, UPDATE, DELETE]
    resources: [moduleconfigs]
    scope: Cluster
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 10
EOF
# The API server reaches the webhook: a dry run with a forbidden source is rejected by it.
webhook_rejects() {
  local answer
  answer=$(printf '%s\n' 'apiVersion: deckhouse.io/v1alpha1' 'kind: ModuleConfig' \
    'metadata: {name: webhook-probe}' 'spec: {source: Embedded}' |
    kubectl apply --dry-run=server -f - 2>&1 || true)
  [[ "$answer" == *"'Embedded' is a forbidden source"* ]]
}
wait_for "the API server to reach the webhook" 30 webhook_rejects
log "up: source $SANDBOX_DIR/env.sh"
