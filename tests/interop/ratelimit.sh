#!/usr/bin/env bash
# Pull rate limits as registry clients meet them: the headers on manifest GET and HEAD and how
# they count down, HEAD not counted, a multi-arch pull counted once (the platform manifest
# pulled through its index is free), skopeo refused over the limit with Berth's message,
# podman waiting for Retry-After before it pulls again; a site admin is never limited.
# shellcheck disable=SC2016  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
# skopeo (containers/image) retries a 429 four times, 60 s apart (Retry-After, capped),
# before it reports the error: that check alone takes four minutes.
INTEROP_CHECK_TIMEOUT=${INTEROP_CHECK_TIMEOUT:-420}
REGISTRY_ENV=(BERTH_RATE_LIMIT_ANONYMOUS='2;w=3600' BERTH_RATE_LIMIT_AUTHENTICATED='1;w=10')
start_registry
if [[ -z $DATA ]]; then
  echo "skipped: the limits are settings of a Berth this suite starts"
  finish
  exit
fi

IMG=$WORK/img
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed ratelimit-1 --tag v1 >/dev/null
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed ratelimit-2 --tag multi --index >/dev/null
R=docker://$REG/library/ratelimit
M=http://$REG/v2/library/ratelimit/manifests
anon() { AUTH_FILE=$NOAUTH "$@"; }

# The admin pushes (and is never counted).
check push-as-admin sko copy "oci:$IMG:v1" "$R:v1"
check push-index-as-admin sko copy --all "oci:$IMG:multi" "$R:multi"

get_counts() {
  curl -s -D "$WORK/get" -o /dev/null -H "Accept: $MANIFEST_ACCEPT" "$M/v1"
  has_header "$WORK/get" 'ratelimit-limit: 2;w=3600'
  has_header "$WORK/get" 'ratelimit-remaining: 1;w=3600'
  has_header "$WORK/get" 'docker-ratelimit-source: 127.0.0.1'
}
check get-shows-and-spends-the-allowance get_counts

head_is_free() {
  for _ in 1 2 3; do
    curl -s -I -D "$WORK/head" -o /dev/null -H "Accept: $MANIFEST_ACCEPT" "$M/v1"
  done
  has_header "$WORK/head" 'ratelimit-remaining: 1;w=3600'
}
check head-is-not-counted head_is_free

multi_arch_counts_once() {
  anon sko --override-os linux --override-arch amd64 copy "$R:multi" "dir:$WORK/multi"
  curl -s -I -D "$WORK/head" -o /dev/null -H "Accept: $MANIFEST_ACCEPT" "$M/v1"
  has_header "$WORK/head" 'ratelimit-remaining: 0;w=3600'
}
check multi-arch-pull-counts-once multi_arch_counts_once

over_the_limit() {
  curl -s -D "$WORK/refused" -o "$WORK/body" -H "Accept: $MANIFEST_ACCEPT" "$M/v1"
  head -n1 "$WORK/refused" | grep -q ' 429'
  # One pull comes back every 1800 s (3600 / 2), counted from the first pull.
  local retry
  retry=$(tr -d '\r' <"$WORK/refused" | sed -n 's/^retry-after: //Ip')
  ((retry > 1500 && retry <= 1800)) || { echo "Retry-After: $retry"; return 1; }
  has_header "$WORK/refused" 'ratelimit-remaining: 0;w=3600'
  jq -e '.errors[0].code == "TOOMANYREQUESTS"' "$WORK/body"
  jq -r '.errors[0].message' "$WORK/body" | grep -q "next pull is allowed in $retry s"
}
check over-the-limit-429 over_the_limit

skopeo_refused() {
  if anon sko copy "$R:v1" "dir:$WORK/refused-copy" 2>"$WORK/err"; then
    echo "a pull over the limit went through"; return 1
  fi
  cat "$WORK/err"
  grep -qi 'toomanyrequests\|too many requests' "$WORK/err"
  grep -q 'pull rate limit of 2;w=3600' "$WORK/err"
}
check skopeo-over-the-limit-fails-with-the-message skopeo_refused

# podman (containers/image) retries a 429 up to five times, waiting for Retry-After (at most
# 60 s each): with a short window, a pull over the limit waits and then goes through, and
# both pulls are counted against the signed-in user.
podman_waits() {
  "$BERTH" --data-dir "$DATA" user create carol --password-stdin <<<"carol-password-1"
  write_authfile "$WORK/carol.json" "carol:carol-password-1"
  AUTH_FILE=$WORK/carol.json pod pull "$REG/library/ratelimit:v1" >/dev/null
  local start=$SECONDS
  AUTH_FILE=$WORK/carol.json pod pull "$REG/library/ratelimit:v1" >/dev/null
  local waited=$((SECONDS - start))
  echo "the second pull waited ${waited}s"
  ((waited >= 5))
}
check podman-waits-for-retry-after-then-pulls podman_waits

check admin-is-not-limited sko copy "$R:v1" "dir:$WORK/admin-copy"

finish
