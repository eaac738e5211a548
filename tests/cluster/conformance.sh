#!/usr/bin/env bash
# The OCI conformance suite (crates/berth/tests/conformance) against a 3-node cluster
# (scripts/cluster) through its load balancer, so that the requests of one workflow (an
# upload's POST, PATCHes and PUT; a push then its pull) reach different nodes. Then
# haproxy's log must show requests answered by every node.
#
# Environment: BERTH_BIN (default target/debug/berth). Extra arguments go to cargo nextest.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-cluster-conformance.XXXXXX")
chmod 755 "$work" # PostgreSQL's user must reach its directory in here
export BERTH_CLUSTER_DIR=$work/cluster
# The password the suite signs in with (crates/berth/tests/common: ADMIN_PASSWORD).
export BERTH_ADMIN_PASSWORD=test-admin-password
# Blobs streamed through the nodes: the suite checks a blob GET's Docker-Content-Digest,
# which a presigned bucket URL (redirect = true) does not send. The redirect is exercised
# through the cluster by the interop suites (INTEROP_CLUSTER=1).
export BERTH_STORAGE_REDIRECT=false
cleanup() {
  "$root/scripts/cluster" down 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

url=$(BERTH_BIN=${BERTH_BIN:-$root/target/debug/berth} "$root/scripts/cluster" up 2>"$work/up.log" | tail -n 1) ||
  { cat "$work/up.log"; exit 1; }
echo "conformance: cluster at $url"
rc=0
(cd "$root" && BERTH_TEST_REGISTRY=$url cargo nextest run -p berth --test conformance --no-fail-fast "$@") || rc=$?
# shellcheck disable=SC1091
source "$BERTH_CLUSTER_DIR/env"
for n in $(seq "$BERTH_CLUSTER_NODES"); do
  served=$(grep -c " berth/node$n " "$BERTH_CLUSTER_DIR/haproxy.log" || true)
  echo "conformance: node $n answered $served requests"
  ((served > 0)) || rc=1
done
if ((rc != 0)); then
  for log in "$BERTH_CLUSTER_DIR"/node*.log; do tail -n 15 "$log" | sed "s#^#  ${log##*/}| #"; done
fi
exit "$rc"
