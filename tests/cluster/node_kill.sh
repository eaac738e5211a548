#!/usr/bin/env bash
# Faults in a 3-node cluster (scripts/cluster), through its load balancer:
#
# 1. Node kill, in a loop: each round starts a chunked blob upload, sends its middle chunk
#    slowly, and kills (SIGKILL) the node that is receiving it. The client does what a
#    registry client does on a broken connection: asks the session's offset (GET on the
#    upload URL, which now reaches another node), resends from there, finishes the blob and
#    pushes a manifest. The killed node is started again before the next round. At the
#    end every acknowledged push (blob 201, manifest 201) is read back, byte for byte:
#    0 lost.
# 2. PostgreSQL restart during traffic: pushes and pulls run while the database restarts;
#    every answer is a success or a 503 (retryable) with an OCI error body, never another
#    error, and afterwards every node serves a push again by itself.
#
# Environment: KILL_ROUNDS (default 20), BERTH_BIN (default target/debug/berth),
# NODE_KILL_KEEP=1 keeps the state directory. Exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${KILL_ROUNDS:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-node-kill.XXXXXX")
chmod 755 "$work" # PostgreSQL's user must reach its directory in here
export BERTH_CLUSTER_DIR=$work/cluster
export BERTH_ADMIN_PASSWORD=node-kill-admin-Pw-1
creds=admin:$BERTH_ADMIN_PASSWORD
cluster() { "$root/scripts/cluster" "$@"; }

cleanup() {
  local rc=$?
  if ((rc != 0)); then
    echo "node-kill: FAILED (exit $rc); the nodes' last lines:"
    for log in "$BERTH_CLUSTER_DIR"/node*.log; do
      [[ -f $log ]] && tail -n 15 "$log" | sed "s#^#  ${log##*/}| #"
    done
  fi
  cluster down 2>/dev/null || true
  if [[ -n ${NODE_KILL_KEEP:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() { echo "node-kill: $*" >&2; exit 1; }

url=$(BERTH_BIN=${BERTH_BIN:-$root/target/debug/berth} cluster up 2>"$work/up.log" | tail -n 1) ||
  { cat "$work/up.log"; exit 1; }
# shellcheck disable=SC1091
source "$BERTH_CLUSTER_DIR/env"
repo=nodekill/app
api=$url/v2/$repo

digest_of() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# offset UPLOAD_URL: the bytes the session holds, from its Range header (-1: no answer).
offset() {
  local range
  range=$(curl -sS -m 30 -u "$creds" -D - -o /dev/null "$1" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "range" {print $2}') || true
  if [[ $range =~ ^0-([0-9]+)$ ]]; then echo $((BASH_REMATCH[1] + 1)); else echo -1; fi
}

# send_from UPLOAD_URL FILE FROM [curl args]: PATCHes FILE's bytes from FROM on; prints the
# next upload URL (Location) on success.
send_from() {
  local upload=$1 file=$2 from=$3 size end
  shift 3
  size=$(stat -c %s "$file")
  end=$((size - 1))
  tail -c +"$((from + 1))" "$file" >"$work/rest"
  curl -sS -m 120 -u "$creds" -X PATCH "$@" -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: $from-$end" --data-binary @"$work/rest" -D "$work/patch.h" -o /dev/null \
    -w '%{http_code}' "$upload" >"$work/patch.status" || true
  [[ $(cat "$work/patch.status") == 202 ]] || return 1
  tr -d '\r' <"$work/patch.h" | awk -F': ' 'tolower($1) == "location" {print $2}'
}

absolute() { [[ $1 == http* ]] && echo "$1" || echo "$url$1"; }

# push_chunked FILE SLOW_CHUNK_BYTES KILL: a chunked upload of FILE; with KILL, the node
# receiving the slow middle chunk is killed while it streams. Resumes like a client.
hit=0
push_chunked() {
  local file=$1 total upload first=$((4 * 1024 * 1024)) next got tries=0
  total=$(stat -c %s "$file")
  upload=$(absolute "$(curl -sS -m 30 -u "$creds" -X POST -D - -o /dev/null "$api/blobs/uploads/" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "location" {print $2}')")
  [[ -n $upload ]] || fail "no upload session"
  # The first chunk, at full speed.
  head -c "$first" "$file" >"$work/first"
  upload=$(absolute "$(send_from "$upload" "$work/first" 0)") || fail "first chunk refused"
  # The rest, slowly, while the node receiving it is killed.
  if [[ -n $3 ]]; then
    send_from "$upload" "$file" "$first" --limit-rate 1M >"$work/next" &
    local sender=$! victim=
    for _ in $(seq 100); do
      victim=$(cluster serving | head -n 1)
      [[ -n $victim ]] && break
      sleep 0.05
    done
    [[ -n $victim ]] || fail "no node was seen receiving the chunk"
    sleep 0.5
    cluster kill "$victim" 2>/dev/null
    if wait "$sender"; then
      next=$(cat "$work/next")
    else
      hit=$((hit + 1))
      next=
    fi
  else
    next=$(send_from "$upload" "$file" "$first") || fail "chunk refused"
    victim=
  fi
  # A broken chunk: ask where the session stands (another node answers) and go on from there.
  while [[ -z $next ]]; do
    tries=$((tries + 1))
    ((tries <= 20)) || fail "the upload could not be resumed"
    got=$(offset "$upload")
    if ((got < 0)); then sleep 0.5; continue; fi
    ((got >= first)) || fail "the session lost acknowledged bytes: at $got, $first acknowledged"
    if ((got == total)); then next=$upload; break; fi
    next=$(send_from "$upload" "$file" "$got") || next=
  done
  upload=$(absolute "$next")
  local sep='?'
  [[ $upload == *\?* ]] && sep='&'
  local status
  status=$(curl -sS -m 120 -u "$creds" -X PUT -o /dev/null -w '%{http_code}' \
    "$upload${sep}digest=$(digest_of "$file")")
  [[ $status == 201 ]] || fail "closing the upload answered $status"
  [[ -z $victim ]] || cluster start "$victim" 2>/dev/null
}

# put_manifest TAG CONFIG LAYER: an image manifest for the two blobs; 201 or fail.
put_manifest() {
  local tag=$1 config=$2 layer=$3
  jq -n --arg cd "$(digest_of "$config")" --argjson cs "$(stat -c %s "$config")" \
    --arg ld "$(digest_of "$layer")" --argjson ls "$(stat -c %s "$layer")" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $ld, size: $ls}]}' \
    >"$work/m-$tag.json"
  local status
  status=$(curl -sS -m 60 -u "$creds" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @"$work/m-$tag.json" -o /dev/null -w '%{http_code}' "$api/manifests/$tag")
  [[ $status == 201 ]] || fail "manifest $tag answered $status"
}

# push_small FILE: a monolithic upload (POST then PUT); prints the status of the PUT.
push_small() {
  local upload sep status
  # One POST: its own status is reported when it opens no session (a second POST could
  # meet a database that has come back, and report a success that never happened).
  status=$(curl -sS -m 30 -u "$creds" -X POST -D "$work/post.h" -o "$work/put.body" \
    -w '%{http_code}' "$api/blobs/uploads/" || echo 000)
  upload=$(tr -d '\r' <"$work/post.h" | awk -F': ' 'tolower($1) == "location" {print $2}') || true
  if [[ $status != 202 || -z $upload ]]; then
    echo "$status"
    return
  fi
  upload=$(absolute "$upload")
  sep='?'
  [[ $upload == *\?* ]] && sep='&'
  curl -sS -m 30 -u "$creds" -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary @"$1" -o "$work/put.body" -w '%{http_code}' "$upload${sep}digest=$(digest_of "$1")" || echo 000
}

echo "node-kill: cluster at $url; $rounds rounds"
config=$work/config.json
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$config"
push_small "$config" >/dev/null
pushed=()
for round in $(seq "$rounds"); do
  layer=$work/layer-$round
  head -c $((9 * 1024 * 1024 + round * 4099)) /dev/urandom >"$layer"
  push_chunked "$layer" x kill
  put_manifest "r$round" "$config" "$layer"
  pushed+=("$round")
  echo "node-kill: round $round acknowledged"
done
((hit > 0)) || fail "no kill broke a chunk in flight: the test did not test resumption"
echo "node-kill: $hit of $rounds kills broke the chunk in flight; reading every push back"

# Every acknowledged push, byte for byte, through the load balancer (blob GETs may redirect
# to the bucket).
lost=0
for round in "${pushed[@]}"; do
  layer=$work/layer-$round
  got=$(curl -sS -m 60 -u "$creds" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$api/manifests/r$round" |
    sha256sum | cut -d' ' -f1)
  [[ sha256:$got == "$(digest_of "$work/m-r$round.json")" ]] || { echo "manifest r$round lost or changed"; lost=$((lost + 1)); }
  got=$(curl -sS -m 120 -L -u "$creds" "$api/blobs/$(digest_of "$layer")" | sha256sum | cut -d' ' -f1)
  [[ sha256:$got == "$(digest_of "$layer")" ]] || { echo "layer of r$round lost or changed"; lost=$((lost + 1)); }
done
((lost == 0)) || fail "$lost acknowledged pushes lost"
echo "node-kill: 0 of ${#pushed[@]} acknowledged pushes lost"

# PostgreSQL restart during traffic.
echo "node-kill: restarting PostgreSQL during traffic"
statuses=$work/statuses
: >"$statuses"
traffic() {
  local i=0 blob status
  while [[ ! -e $work/stop ]]; do
    i=$((i + 1))
    blob=$work/small-$i
    head -c 2048 /dev/urandom >"$blob"
    status=$(push_small "$blob")
    echo "push $status" >>"$statuses"
    [[ $status == 503 ]] && cp "$work/put.body" "$work/503.body" 2>/dev/null || true
    status=$(curl -sS -m 30 -u "$creds" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      -o "$work/get.body" -w '%{http_code}' "$api/manifests/r1" || echo 000)
    echo "pull $status" >>"$statuses"
    [[ $status == 503 ]] && cp "$work/get.body" "$work/503.body" || true
    rm -f "$blob"
  done
}
traffic &
driver=$!
sleep 2
# Down for 8 s: longer than a node waits for a connection (5 s), so requests meet the outage.
cluster restart-db 8 2>/dev/null
sleep 3
touch "$work/stop"
wait "$driver"
bad=$(grep -cvE ' (200|201|503)$' "$statuses" || true)
unavailable=$(grep -c ' 503$' "$statuses" || true)
echo "node-kill: $(wc -l <"$statuses") requests during the restart, $unavailable answered 503"
if ((bad > 0)); then
  grep -vE ' (200|201|503)$' "$statuses" | sort | uniq -c
  fail "answers other than success or 503 during the database restart"
fi
((unavailable > 0)) || fail "no request met the outage: the restart was not tested"
jq -e '.errors[0].code' "$work/503.body" >/dev/null || fail "a 503 without an OCI error body: $(cat "$work/503.body")"
# Every node recovers by itself: a push straight to each one succeeds within 60 s.
for n in $(seq "$BERTH_CLUSTER_NODES"); do
  port_var=NODE${n}_PORT
  deadline=$((SECONDS + 60))
  while :; do
    upload=$(curl -sS -m 10 -u "$creds" -X POST -D - -o /dev/null "http://127.0.0.1:${!port_var}/v2/$repo/blobs/uploads/" |
      tr -d '\r' | awk -F': ' 'tolower($1) == "location" {print $2}') || true
    [[ -n $upload ]] && break
    ((SECONDS < deadline)) || fail "node $n did not recover from the database restart within 60 s"
    sleep 0.5
  done
done
echo "node-kill: every node recovered; ok"
