#!/usr/bin/env bash
# Immutable tags as registry clients meet them: skopeo and podman pushing another image over
# an immutable tag are refused with Berth's message naming the rule; pushing the same image
# again (a CI rerun) succeeds; an excluded tag still moves.
# shellcheck disable=SC2016  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
start_registry
if [[ -z $DATA ]]; then
  echo "skipped: the rule is set with the CLI on the data directory of a Berth this suite starts"
  finish
  exit
fi

IMG=$WORK/img
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed immutable-1 --tag one >/dev/null
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed immutable-2 --tag two >/dev/null
REPO=$NS/immutable
R=docker://$REG/$REPO
cli() { "$BERTH" --data-dir "$DATA" "$@"; }

check push-before-the-rule sko copy "oci:$IMG:one" "$R:v1"
check set-rule cli immutable set "$REPO" --tag 'v*' --exclude '*-rc'

skopeo_refused() {
  if sko copy "oci:$IMG:two" "$R:v1" 2>"$WORK/err"; then
    echo "the push over an immutable tag was accepted"; return 1
  fi
  cat "$WORK/err"
  grep -q 'denied' "$WORK/err"
  grep -q "tag v1 is immutable under the immutable-tag rule of repository $REPO (tags v\*, except \*-rc)" "$WORK/err"
}
check skopeo-over-immutable-tag-is-refused skopeo_refused
check same-image-again-is-accepted sko copy "oci:$IMG:one" "$R:v1"
check tag-still-names-the-first-image eval \
  'same "$(sko inspect --raw "$R:v1" | sha256)" "$(sko inspect --raw "oci:$IMG:one" | sha256)"'

podman_refused() {
  # From a relative oci: path (podman names the image after it; names are lowercase).
  (cd "$WORK" && pod pull oci:img:two >/dev/null)
  if pod push "$(pod images -q | head -n1)" "docker://$REG/$REPO:v1" 2>"$WORK/err"; then
    echo "the push over an immutable tag was accepted"; return 1
  fi
  cat "$WORK/err"
  grep -q "tag v1 is immutable" "$WORK/err"
}
check podman-over-immutable-tag-is-refused podman_refused

excluded_moves() {
  sko copy "oci:$IMG:one" "$R:v2-rc"
  sko copy "oci:$IMG:two" "$R:v2-rc"
}
check excluded-tag-moves excluded_moves
check delete-is-refused eval '! sko delete "$R:v1"'

finish
