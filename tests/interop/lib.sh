# shellcheck shell=bash disable=SC2034  # variables here are for the sourcing scripts
# Shared helpers for the interop scripts; source it, then call start_registry.
#
# Environment:
#   REGISTRY_URL       use an already-running registry (e.g. http://127.0.0.1:5000)
#   INTEROP_REGISTRY   what to start otherwise: berth (default) | distribution
#   INTEROP_STORAGE    garage: the berth started keeps its blobs in a private Garage
#                      (scripts/garage), with BERTH_STORAGE_REDIRECT as given (default true)
#   INTEROP_CLUSTER=1  start a private 3-node cluster instead (scripts/cluster: PostgreSQL,
#                      Garage, three berth nodes behind haproxy round-robin), so consecutive
#                      requests of a client reach different nodes
#   INTEROP_CREDS      USER:PASSWORD for a REGISTRY_URL registry that wants credentials
#   BERTH_BIN          berth binary (default: target/debug/berth)
#   INTEROP_RESULTS    file that run.sh collects PASS/FAIL lines in
#   INTEROP_KEEP=1     keep the temp dir (server log, data) for debugging
set -euo pipefail

INTEROP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$INTEROP_DIR/../.." && pwd)
SUITE=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-interop-$SUITE.XXXXXX")
RESULTS=${INTEROP_RESULTS:-$WORK/results}
SERVER_PID=
REG=
NS=
DATA=                 # the started berth's data dir (for the admin CLI); empty otherwise
BERTH=                # the berth binary
# The site admin a fresh Berth creates on first start (from BERTH_ADMIN_PASSWORD).
ADMIN_PASSWORD=interop-admin-Pw-1
ADMIN_CREDS=          # USER:PASSWORD every ordinary check uses; empty = anonymous (distribution)
CURL_AUTH=()          # the same for curl
REGISTRY_ENV=()       # NAME=VALUE settings for the berth a suite starts (set before start_registry)
SCHEME=http           # https when a suite starts berth with tls_cert/tls_key
CURL_TLS=()           # curl options that trust the suite's test CA (with SCHEME=https)
HELPER_PIDS=()        # other processes a suite started in the background; cleanup stops them
CLUSTER_DIR=          # the state of the cluster an INTEROP_CLUSTER=1 suite started
FINISHED=
PASSED=0
FAILED=0

cleanup() {
  local rc=$?
  # A script that dies outside a check (set -e) must still show up as a failure.
  if [[ -z $FINISHED ]]; then
    echo "FAIL $SUITE/(aborted, exit $rc)" | tee -a "$RESULTS"
    [[ -f $WORK/server.log ]] && tail -n 20 "$WORK/server.log" | sed 's/^/     server| /'
  fi
  local helper
  for helper in "${HELPER_PIDS[@]}"; do kill "$helper" 2>/dev/null || true; done
  if [[ -n $CLUSTER_DIR ]]; then
    if [[ -z $FINISHED || $FAILED -gt 0 ]]; then
      local log
      for log in "$CLUSTER_DIR"/node*.log; do
        [[ -f $log ]] && tail -n 10 "$log" | sed "s#^#     ${log##*/}| #"
      done
    fi
    BERTH_CLUSTER_DIR=$CLUSTER_DIR "$ROOT/scripts/cluster" down 2>/dev/null || true
  fi
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    # Give it 5 s to shut down cleanly, then stop waiting for it.
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n ${INTEROP_KEEP:-} ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_registry() {
  NS=interop  # repository namespace for this run
  if [[ -n ${INTEROP_CLUSTER:-} ]]; then
    BERTH=${BERTH_BIN:-$ROOT/target/debug/berth}
    [[ $BERTH == /* ]] || BERTH=$PWD/$BERTH
    CLUSTER_DIR=$WORK/cluster
    # PostgreSQL runs as its own user, which must reach its directory in here.
    chmod 755 "$WORK"
    local url
    url=$(BERTH_CLUSTER_DIR=$CLUSTER_DIR BERTH_BIN=$BERTH BERTH_ADMIN_PASSWORD=$ADMIN_PASSWORD \
      "$ROOT/scripts/cluster" up 2>"$WORK/cluster-up.log" | tail -n 1) || {
      cat "$WORK/cluster-up.log" >&2
      return 1
    }
    REG=${url#http://}
    ADMIN_CREDS=admin:$ADMIN_PASSWORD
  elif [[ -n ${REGISTRY_URL:-} ]]; then
    REG=${REGISTRY_URL#http://}
    REG=${REG%/}
    # A shared registry keeps earlier runs' repositories: use fresh ones.
    NS=interop/run-$(date +%s)-$$
    ADMIN_CREDS=${INTEROP_CREDS:-}
  else
    REG=127.0.0.1:$(free_port)
    mkdir -p "$WORK/data"
    case ${INTEROP_REGISTRY:-berth} in
      berth)
        BERTH=${BERTH_BIN:-$ROOT/target/debug/berth}
        [[ $BERTH == /* ]] || BERTH=$PWD/$BERTH
        DATA=$WORK/data
        ADMIN_CREDS=admin:$ADMIN_PASSWORD
        local storage_env=()
        if [[ ${INTEROP_STORAGE:-} == garage ]]; then
          "$ROOT/scripts/garage" start "$WORK/garage" >/dev/null
          HELPER_PIDS+=("$(cat "$WORK/garage/garage.pid")")
          mapfile -t storage_env < <(grep '^BERTH_' "$WORK/garage/env")
        fi
        env "${REGISTRY_ENV[@]}" "${storage_env[@]}" BERTH_ADMIN_PASSWORD=$ADMIN_PASSWORD \
          "$BERTH" serve --listen "$REG" --data-dir "$DATA" >"$WORK/server.log" 2>&1 &
        ;;
      distribution)
        cat >"$WORK/config.yml" <<EOF
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $WORK/data}
  delete: {enabled: true}
http: {addr: $REG}
EOF
        docker-registry serve "$WORK/config.yml" >"$WORK/server.log" 2>&1 &
        ;;
      *) echo "unknown INTEROP_REGISTRY=$INTEROP_REGISTRY" >&2; return 1 ;;
    esac
    SERVER_PID=$!
  fi
  export ADMIN_CREDS
  if [[ -n $ADMIN_CREDS ]]; then CURL_AUTH=(-u "$ADMIN_CREDS"); fi
  # Ready = /v2/ answers, either 200 or a 401 challenge.
  local i
  for i in $(seq 100); do
    case $(curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' "$SCHEME://$REG/v2/") in 200 | 401) break ;; esac
    if [[ -n $SERVER_PID ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "registry exited before becoming ready" >&2; return 1
    fi
    ((i < 100)) || { echo "registry at $REG not ready after 20s" >&2; return 1; }
    sleep 0.2
  done
  setup_containers_env
}

# skopeo/podman as root otherwise write to /var/lib/containers and /run/containers
# and read the host's registries/policy; pretend to be rootless and point
# everything (HOME, XDG dirs, storage, config) into $WORK instead.
setup_containers_env() {
  local c=$WORK/home/.config/containers
  mkdir -p "$c" "$WORK/run" "$WORK/tmp"
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$c/policy.json"
  # skopeo, podman and buildah all read REGISTRY_AUTH_FILE: the ordinary checks run as the
  # admin through it. NOAUTH is an empty one for anonymous calls (`AUTH_FILE=$NOAUTH sko ...`).
  # podman refuses a REGISTRY_AUTH_FILE that does not exist, so both always exist.
  NOAUTH=$WORK/noauth.json
  echo "{}" >"$NOAUTH"
  write_authfile "$WORK/auth.json" "$ADMIN_CREDS"
  # Plain HTTP needs `insecure`; an HTTPS suite verifies the server against its test CA.
  local insecure=true
  [[ $SCHEME == https ]] && insecure=false
  printf 'unqualified-search-registries = []\n[[registry]]\nlocation = "%s"\ninsecure = %s\n' \
    "$REG" "$insecure" >"$c/registries.conf"
  printf '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n' >"$c/containers.conf"
  CT_ENV=(env HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config"
    XDG_DATA_HOME="$WORK/home/.local/share" XDG_RUNTIME_DIR="$WORK/run" TMPDIR="$WORK/tmp"
    CONTAINERS_REGISTRIES_CONF="$c/registries.conf" CONTAINERS_CONF="$c/containers.conf"
    _CONTAINERS_USERNS_CONFIGURED=1 _CONTAINERS_ROOTLESS_UID=1000)
  POLICY=$c/policy.json
}

# write_authfile FILE [USER:PASSWORD]: a containers auth.json for $REG (empty without creds).
write_authfile() {
  if [[ -n ${2:-} ]]; then
    jq -n --arg reg "$REG" --arg auth "$(printf %s "$2" | base64 -w0)" '{auths: {($reg): {$auth}}}' >"$1"
  else
    echo "{}" >"$1"
  fi
}

# sko [--global-opt...] CMD ARGS...: skopeo in the private environment, plain HTTP, as the
# admin unless --creds/--src-creds/--dest-creds say otherwise or AUTH_FILE=$NOAUTH is set.
sko() {
  local global=()
  while [[ $1 == --* ]]; do global+=("$1" "$2"); shift 2; done
  local cmd=$1; shift
  local tls=(--tls-verify=false)
  [[ $cmd == copy ]] && tls=(--src-tls-verify=false --dest-tls-verify=false)
  "${CT_ENV[@]}" REGISTRY_AUTH_FILE="${AUTH_FILE:-$WORK/auth.json}" \
    skopeo --policy "$POLICY" "${global[@]}" "$cmd" "${tls[@]}" "$@"
}

# pod CMD ARGS...: podman in the private environment; same credentials as sko.
pod() {
  local cmd=$1; shift
  local extra=()
  case $cmd in
    pull | push) extra=(--tls-verify=false --signature-policy "$POLICY") ;;
    login) extra=(--tls-verify=false) ;;
  esac
  "${CT_ENV[@]}" REGISTRY_AUTH_FILE="${AUTH_FILE:-$WORK/auth.json}" podman --root "$WORK/storage" --runroot "$WORK/run/storage" \
    --storage-driver vfs "$cmd" "${extra[@]}" "$@"
}

# check NAME CMD...: run CMD (errexit on, output captured) and record the result.
# A registry that stops answering must not hang CI, so each check has a deadline.
check() {
  local name=$1 rc=0; shift
  (set -e; "$@") >"$WORK/check.log" 2>&1 &
  local pid=$!
  (
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "${INTEROP_CHECK_TIMEOUT:-300}" & s=$!
    wait "$s"
    echo "timed out after ${INTEROP_CHECK_TIMEOUT:-300}s" >>"$WORK/check.log"
    kill_tree "$pid"
  ) &
  local dog=$!
  wait "$pid" || rc=$?
  kill "$dog" 2>/dev/null || true
  wait "$dog" 2>/dev/null || true
  if ((rc == 0)); then
    PASSED=$((PASSED + 1))
    echo "PASS $SUITE/$name" | tee -a "$RESULTS"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $SUITE/$name" | tee -a "$RESULTS"
    tail -n 25 "$WORK/check.log" | sed 's/^/     | /'
  fi
}

kill_tree() {
  local c
  for c in $(ps -o pid= --ppid "$1"); do kill_tree "$c"; done
  kill "$1" 2>/dev/null || true
}

# same GOT WANT: string equality that says what differed.
same() {
  [[ $1 == "$2" ]] || { printf 'got:  %s\nwant: %s\n' "$1" "$2"; return 1; }
}

# has_header FILE 'Name: value': a header line in a `curl -D FILE` dump (case-insensitive).
has_header() {
  tr -d '\r' <"$1" | grep -qix "$2" || { echo "missing header '$2' in:"; cat "$1"; return 1; }
}

sha256() { echo "sha256:$(sha256sum | cut -d' ' -f1)"; }

# acurl ARGS...: curl as the admin (plain Basic), or anonymously when there are no creds.
acurl() { curl "${CURL_AUTH[@]}" "$@"; }

# status METHOD URL [curl args...]: print the HTTP status code only (as the admin).
status() {
  local m=$1 u=$2; shift 2
  acurl -s -o /dev/null -w '%{http_code}' -X "$m" "$@" "$u"
}

MANIFEST_ACCEPT='application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json'

# every_node_served: in a cluster, haproxy's log shows requests answered by every node
# (round-robin spread the suite's requests; none was pinned to one node).
every_node_served() {
  local n served
  for n in $(seq "$(grep '^BERTH_CLUSTER_NODES=' "$CLUSTER_DIR/env" | cut -d= -f2)"); do
    served=$(grep -c " berth/node$n " "$CLUSTER_DIR/haproxy.log" || true)
    echo "node $n answered $served requests"
    ((served > 0))
  done
}

# Standalone runs print the closing count; under run.sh only run.sh does.
finish() {
  [[ -z $CLUSTER_DIR ]] || check every-node-served every_node_served
  FINISHED=1
  if ((FAILED)) && [[ -f $WORK/server.log ]]; then
    tail -n 30 "$WORK/server.log" | sed 's/^/     server| /'
  fi
  [[ -n ${INTEROP_RESULTS:-} ]] || echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0))
}
