#!/usr/bin/env bash
# The pull-through cache with skopeo and podman against a real upstream, CNCF Distribution
# (Debian's docker-registry) on loopback: a first and a second pull (the second reaches no
# upstream GET, read from its access log), a tag moved upstream seen after the ttl, a
# multi-arch index whose other platforms are never fetched, docker's registry-mirrors path
# and containerd's ?ns=, pushes refused, 20 concurrent skopeo pulls of one uncached 256 MiB
# layer that reach the upstream once, and pulls that keep working with the upstream stopped.
# shellcheck disable=SC2016  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
if [[ -n ${REGISTRY_URL:-} || ${INTEROP_REGISTRY:-berth} != berth ]]; then
  echo "skipped: the mirror is configured on a Berth this suite starts"
  finish
  exit
fi
if ! command -v docker-registry >/dev/null; then
  [[ ${CI:-} == true ]] && { echo "FAIL $SUITE/docker-registry missing under CI" | tee -a "$RESULTS"; exit 1; }
  echo "SKIPPED: docker-registry (CNCF Distribution) is not installed: apt-get install -y docker-registry"
  finish
  exit
fi

# The upstream, with its access log on (one line per request, on stdout).
UP=127.0.0.1:$(free_port)
mkdir -p "$WORK/upstream"
cat >"$WORK/upstream.yml" <<YAML
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $WORK/upstream}
  delete: {enabled: true}
http: {addr: $UP}
YAML
docker-registry serve "$WORK/upstream.yml" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
HELPER_PIDS+=("$UP_PID")
for i in $(seq 100); do
  curl -sf -o /dev/null "http://$UP/v2/" && break
  ((i < 100)) || { echo "upstream not ready" >&2; exit 1; }
  sleep 0.2
done

cat >"$WORK/berth.toml" <<TOML
mirror_default = "up"
[[mirror]]
prefix = "up"
upstream = "http://$UP"
ttl = "2s"
TOML
REGISTRY_ENV=(BERTH_CONFIG="$WORK/berth.toml")
start_registry

IMG=$WORK/img
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed mirror-1 --tag one >/dev/null
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed mirror-2 --tag two >/dev/null
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed mirror-3 --tag multi --index >"$WORK/multi.json"
U=docker://$UP/team/app
M=docker://$REG/up/team/app
# Anonymous: a mirror is public by default.
anon() { AUTH_FILE=$NOAUTH "$@"; }
upstream_gets() { grep -c "\"GET /v2/team/app/$1" "$WORK/upstream.log" || true; }
digest_of() { sko inspect --raw "$1" | sha256; }

check seed-upstream sko copy "oci:$IMG:one" "$U:v1"
check skopeo-first-pull anon sko copy "$M:v1" "oci:$WORK/pulled:v1"
check same-digest-as-upstream eval 'same "$(anon digest_of "$M:v1")" "$(digest_of "$U:v1")"'

second_pull_stays_local() {
  local manifests blobs
  manifests=$(upstream_gets manifests/)
  blobs=$(upstream_gets blobs/)
  anon sko copy "$M:v1" "oci:$WORK/again:v1"
  same "$(upstream_gets manifests/)" "$manifests"
  same "$(upstream_gets blobs/)" "$blobs"
}
check skopeo-second-pull-reaches-no-upstream-get second_pull_stays_local
check podman-pull eval 'anon pod pull "$M:v1" >/dev/null'

tag_moves_after_ttl() {
  local want
  sko copy "oci:$IMG:two" "$U:v1"
  want=$(digest_of "$U:v1")
  for _ in $(seq 120); do
    [[ $(anon digest_of "$M:v1") == "$want" ]] && return 0
    sleep 0.5
  done
  echo "the mirror still serves the old v1"; return 1
}
check tag-updated-upstream-is-seen-after-ttl tag_moves_after_ttl

only_one_platform() {
  sko copy --all "oci:$IMG:multi" "$U:multi"
  anon sko copy --override-arch amd64 --override-os linux "$M:multi" "oci:$WORK/one-platform:multi"
  local other
  other=$(jq -r '.images[] | select(.platform.architecture == "arm64") | .digest' "$WORK/multi.json")
  [[ -n $other ]]
  if grep -q "GET /v2/team/app/manifests/$other" "$WORK/upstream.log"; then
    echo "the arm64 child was fetched though nobody asked for it"; return 1
  fi
}
check multi-arch-children-fetched-lazily only_one_platform

registry_mirrors_path() {
  # docker sends the Hub path unchanged; Berth serves it through mirror_default.
  anon sko copy "docker://$REG/team/app:v1" "oci:$WORK/hubpath:v1"
}
check docker-registry-mirrors-path registry_mirrors_path
ns_parameter() {
  local code
  code=$(curl -s -o "$WORK/ns.json" -D "$WORK/ns.h" -w '%{http_code}' -H "Accept: $MANIFEST_ACCEPT" \
    "http://$REG/v2/team/app/manifests/v1?ns=$UP")
  same "$code" 200
  same "$(sha256 <"$WORK/ns.json")" "$(digest_of "$U:v1")"
}
check containerd-ns-parameter ns_parameter

push_refused() {
  if sko copy "oci:$IMG:one" "$M:pushed" 2>"$WORK/err"; then
    echo "a push into the mirror was accepted"; return 1
  fi
  grep -qi 'denied' "$WORK/err"
}
check push-is-denied push_refused

concurrent_pulls_fetch_once() {
  # One uncached 256 MiB layer, 20 skopeo pulls at once: the upstream sees one GET of it.
  python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed mirror-big --tag big --layers 1 \
    --layer-size $((256 << 20)) >"$WORK/big.json"
  sko copy "oci:$IMG:big" "docker://$UP/team/big:v1"
  local layer i pids=() failed=0
  layer=$(jq -r '.images[0].layers[0]' "$WORK/big.json")
  [[ $layer == sha256:* ]]
  for i in $(seq 20); do
    anon sko copy "$M_BIG:v1" "dir:$WORK/big-$i" >"$WORK/big-$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { failed=1; cat "$WORK/big-$((i + 1)).log"; }
  done
  for i in $(seq 20); do
    [[ $failed == 1 ]] || same "$(sha256 <"$WORK/big-$i/${layer#sha256:}")" "$layer"
  done
  rm -rf "$WORK"/big-*
  ((failed == 0))
  same "$(grep -c "\"GET /v2/team/big/blobs/$layer" "$WORK/upstream.log" || true)" 1
}
M_BIG=docker://$REG/up/team/big
check twenty-concurrent-pulls-of-an-uncached-256mib-blob-fetch-it-once concurrent_pulls_fetch_once

stop_upstream() {
  kill "$UP_PID"
  wait "$UP_PID" 2>/dev/null || true
  ! curl -s -o /dev/null "http://$UP/v2/"
  # Past the 2 s ttl, so the next pull of the tag has to ask the (stopped) upstream.
  sleep 3
}
check stop-upstream stop_upstream
check skopeo-pull-with-upstream-stopped anon sko copy "$M:v1" "oci:$WORK/stale:v1"
stale_warning() {
  curl -s -o /dev/null -D "$WORK/stale.h" -H "Accept: $MANIFEST_ACCEPT" "http://$REG/v2/up/team/app/manifests/v1"
  tr -d '\r' <"$WORK/stale.h" | grep -qi '^warning: 110 '
}
check stale-answer-carries-warning stale_warning
check podman-pull-with-upstream-stopped eval 'pod rmi -af >/dev/null; anon pod pull "$M:v1" >/dev/null'
check never-pulled-tag-fails-cleanly eval \
  'same "$(curl -s -o /dev/null -w "%{http_code}" "http://$REG/v2/up/team/app/manifests/never")" 502'

finish
