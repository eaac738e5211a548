#!/usr/bin/env bash
# Replication from Berth to CNCF Distribution (Debian's docker-registry) on loopback, checked
# with skopeo: `berth replication run --wait` copies an image and a two-platform index with
# identical digests, a second run skips everything, and the history shows both runs. Then pull
# rules import into Berth: from Distribution without auth and with htpasswd (down, then up
# again), and from a Berth (this one, with token auth), digests identical, a second run skipping.
#
# With REPLICATION_BENCH_MB=N (e.g. 1024) it also times the copy of one image with an N MiB
# layer: `skopeo copy` from Berth to a fresh Distribution, then a replication run to another
# fresh Distribution, and prints both and their ratio (the issue asks for ≥ 0.8× skopeo).
# shellcheck disable=SC2016  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
if [[ -n ${REGISTRY_URL:-} || ${INTEROP_REGISTRY:-berth} != berth ]]; then
  echo "skipped: replication runs from a Berth this suite starts"
  finish
  exit
fi
if ! command -v docker-registry >/dev/null; then
  [[ ${CI:-} == true ]] && { echo "FAIL $SUITE/docker-registry missing under CI" | tee -a "$RESULTS"; exit 1; }
  echo "SKIPPED: docker-registry (CNCF Distribution) is not installed: apt-get install -y docker-registry"
  finish
  exit
fi

# distribution NAME [HTPASSWD_FILE]: starts a Distribution in $WORK/NAME (with Basic auth
# when given the file); prints its host:port.
distribution() {
  local addr=127.0.0.1:$(free_port)
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $WORK/$1}
  delete: {enabled: true}
http: {addr: $addr}
YAML
  if [[ -n ${2:-} ]]; then
    printf 'auth:\n  htpasswd: {realm: interop, path: %s}\n' "$2" >>"$WORK/$1.yml"
  fi
  serve_distribution "$1" "$addr"
  echo "$addr"
}

# serve_distribution NAME ADDR: (re)starts the Distribution configured in $WORK/NAME.yml; its
# pid goes to $WORK/NAME.pid.
serve_distribution() {
  docker-registry serve "$WORK/$1.yml" >>"$WORK/$1.log" 2>&1 &
  HELPER_PIDS+=("$!")
  echo "$!" >"$WORK/$1.pid"
  for i in $(seq 100); do
    curl -s -o /dev/null "http://$2/v2/" && break
    ((i < 100)) || { echo "$1 not ready" >&2; exit 1; }
    sleep 0.2
  done
}

start_registry
berth() { "$BERTH" --data-dir "$DATA" "$@"; }
DEST=$(distribution dest)
IMG=$WORK/img
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed repl-1 --tag one >/dev/null
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed repl-2 --tag multi --index >/dev/null
digest_of() { sko inspect --raw "$1" | sha256sum | cut -d' ' -f1; }
anon() { AUTH_FILE=$NOAUTH "$@"; }

check push-to-berth eval 'sko copy "oci:$IMG:one" "docker://$REG/$NS/app:v1" &&
  sko copy --all "oci:$IMG:multi" "docker://$REG/$NS/multi:v1"'
check create-rule berth replication create interop --source "$NS/*" --to "http://$DEST" \
  --to-namespace copies
first_run() {
  berth replication run interop --wait >"$WORK/first.json"
  same "$(jq -c '[.copied, .skipped, .failed]' "$WORK/first.json")" '[2,0,0]'
}
check first-run-copies-both first_run
check same-digests eval 'same "$(anon digest_of "docker://$DEST/copies/app:v1")" "$(digest_of "docker://$REG/$NS/app:v1")" &&
  same "$(anon digest_of "docker://$DEST/copies/multi:v1")" "$(digest_of "docker://$REG/$NS/multi:v1")"'
check index-children-pull eval 'anon sko copy --all "docker://$DEST/copies/multi:v1" "oci:$WORK/back:multi"'
second_run() {
  berth replication run interop --wait >"$WORK/second.json"
  same "$(jq -c '[.copied, .skipped, .failed, .blobs_copied]' "$WORK/second.json")" '[0,2,0,0]'
}
check second-run-skips second_run
check history-lists-both eval 'same "$(berth replication history interop --json | jq length)" 2'
check bad-source-refused eval '! berth replication create bad --source nonsense --to "http://$DEST" 2>"$WORK/bad.err" &&
  grep -q NAMESPACE/REPO_GLOB "$WORK/bad.err"'

# Pull rules. From Distribution without auth: what the push rule put there comes back, under
# $NS/copies/..., with the digests Distribution serves.
check pull-rule-from-distribution berth replication create import-dist --from "http://$DEST" \
  --source 'copies/*' --to-namespace "$NS" --bandwidth 512MiB/s
pull_first() {
  berth replication run import-dist --wait >"$WORK/pull1.json"
  same "$(jq -c '[.copied, .skipped, .failed]' "$WORK/pull1.json")" '[2,0,0]'
}
check pull-imports-both pull_first
check pull-same-digests eval 'same "$(digest_of "docker://$REG/$NS/copies/app:v1")" "$(anon digest_of "docker://$DEST/copies/app:v1")" &&
  same "$(digest_of "docker://$REG/$NS/copies/multi:v1")" "$(anon digest_of "docker://$DEST/copies/multi:v1")"'
check pull-index-children eval 'sko copy --all "docker://$REG/$NS/copies/multi:v1" "oci:$WORK/pulled:multi"'
pull_second() {
  berth replication run import-dist --wait >"$WORK/pull2.json"
  same "$(jq -c '[.copied, .skipped, .failed, .blobs_copied]' "$WORK/pull2.json")" '[0,2,0,0]'
}
check pull-second-run-skips pull_second

# From Distribution with htpasswd: the credentials are used; the origin stopped makes the run
# fail (and say why), started again the next run completes.
if command -v htpasswd >/dev/null; then
  htpasswd -nbB puller puller-Pw-1 >"$WORK/htpasswd"
  PRIV=$(distribution private "$WORK/htpasswd")
  check seed-private eval 'sko copy --dest-creds puller:puller-Pw-1 "oci:$IMG:one" "docker://$PRIV/team/app:v7"'
  check pull-rule-with-password eval 'echo puller-Pw-1 | berth replication create import-private \
    --from "http://$PRIV" --source team/app --to-namespace "$NS" --flatten --username puller --password-stdin'
  kill "$(cat "$WORK/private.pid")"
  wait "$(cat "$WORK/private.pid")" 2>/dev/null || true
  check pull-origin-down-fails eval '! berth replication run import-private --wait >"$WORK/down.json" &&
    same "$(jq -c "[.copied, .failed]" "$WORK/down.json")" "[0,1]"'
  serve_distribution private "$PRIV"
  check pull-origin-up-completes eval 'berth replication run import-private --wait >"$WORK/up.json" &&
    same "$(jq -c "[.copied, .failed]" "$WORK/up.json")" "[1,0]" &&
    same "$(digest_of "docker://$REG/$NS/app:v7")" "$(sko inspect --raw --creds puller:puller-Pw-1 "docker://$PRIV/team/app:v7" | sha256sum | cut -d" " -f1)"'
else
  echo "SKIPPED: pull from Distribution with htpasswd: htpasswd is not installed (apt-get install -y apache2-utils)"
fi

# From a Berth (this one: token auth with the admin's credentials) into another name.
check pull-rule-from-berth eval 'echo "$ADMIN_PASSWORD" | berth replication create import-berth \
  --from "http://$REG" --source "$NS/multi" --to-namespace "$NS/fromberth" --username admin --password-stdin'
check pull-from-berth eval 'berth replication run import-berth --wait >"$WORK/berth.json" &&
  same "$(jq -c "[.copied, .failed]" "$WORK/berth.json")" "[1,0]" &&
  same "$(digest_of "docker://$REG/$NS/fromberth/$NS/multi:v1")" "$(digest_of "docker://$REG/$NS/multi:v1")"'
check pull-bad-rule-refused eval '! berth replication create bad-pull --from "http://$DEST" --source "library/*" 2>"$WORK/badpull.err" &&
  grep -q to_namespace "$WORK/badpull.err"'

if [[ -n ${REPLICATION_BENCH_MB:-} ]]; then
  # One image with one random (incompressible) layer of N MiB, in an OCI layout.
  BIG=$WORK/big
  mkdir -p "$BIG/blobs/sha256"
  head -c "$((REPLICATION_BENCH_MB * 1024 * 1024))" /dev/urandom >"$BIG/layer"
  layer=$(sha256sum "$BIG/layer" | cut -d' ' -f1)
  mv "$BIG/layer" "$BIG/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$layer" >"$BIG/config"
  config=$(sha256sum "$BIG/config" | cut -d' ' -f1)
  mv "$BIG/config" "$BIG/blobs/sha256/$config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$(stat -c %s "$BIG/blobs/sha256/$config")" "$layer" "$((REPLICATION_BENCH_MB * 1024 * 1024))" >"$BIG/manifest"
  manifest=$(sha256sum "$BIG/manifest" | cut -d' ' -f1)
  msize=$(stat -c %s "$BIG/manifest")
  mv "$BIG/manifest" "$BIG/blobs/sha256/$manifest"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$BIG/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"big"}}]}' \
    "$manifest" "$msize" >"$BIG/index.json"
  sko copy "oci:$BIG:big" "docker://$REG/$NS/big:v1"
  SKOPEO_DEST=$(distribution bench-skopeo)
  REPL_DEST=$(distribution bench-replication)
  # skopeo pulls from Berth with the admin's credentials and pushes anonymously.
  t0=$(date +%s.%N)
  sko copy "docker://$REG/$NS/big:v1" "docker://$SKOPEO_DEST/bench/big:v1" >/dev/null
  t1=$(date +%s.%N)
  berth replication create bench --source "$NS/big" --to "http://$REPL_DEST" --to-namespace bench >/dev/null
  t2=$(date +%s.%N)
  berth replication run bench --wait >"$WORK/bench.json"
  t3=$(date +%s.%N)
  skopeo_s=$(echo "$t1 - $t0" | bc -l)
  repl_s=$(echo "$t3 - $t2" | bc -l)
  printf 'bench: %s MiB layer: skopeo copy %.2f s, replication %.2f s, replication speed = %.2f x skopeo\n' \
    "$REPLICATION_BENCH_MB" "$skopeo_s" "$repl_s" "$(echo "$skopeo_s / $repl_s" | bc -l)"
  check bench-copied eval 'same "$(jq -c "[.copied, .failed]" "$WORK/bench.json")" "[1,0]"'
  check bench-same-digest eval 'same "$(anon digest_of "docker://$REPL_DEST/bench/big:v1")" "$(anon digest_of "docker://$SKOPEO_DEST/bench/big:v1")"'
fi
finish
