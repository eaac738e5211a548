#!/usr/bin/env bash
# The redeploy scenario end to end: a push fires a signed webhook, and the example receiver
# (examples/redeploy) verifies it and `podman pull`s exactly the pushed digest. Forged,
# stale and repeated deliveries change nothing.
# shellcheck disable=SC2016  # the receiver's --then and the inline Python expand their own variables
source "$(dirname "$0")/lib.sh"
# Receivers on loopback are private addresses, which Berth refuses unless told otherwise.
REGISTRY_ENV=(BERTH_WEBHOOK_ALLOW_PRIVATE=true)
start_registry
if [[ -z $DATA ]]; then
  echo "skipped: webhooks are created with the CLI on the data directory of a Berth this suite starts"
  finish
  exit
fi

REPO=$NS/app
R=$REG/$REPO
IMG=$WORK/img
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed webhooks-1 --tag v1 >/dev/null
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed webhooks-2 --tag v2 >/dev/null
RECEIVER_PORT=$(free_port)
RECEIVER_URL=http://127.0.0.1:$RECEIVER_PORT/hooks/berth
DEPLOYED=$WORK/deployed      # one "DIGEST IMAGE" line per deployment the receiver made
: >"$DEPLOYED"

bcli() { BERTH_WEBHOOK_ALLOW_PRIVATE=true "$BERTH" --data-dir "$DATA" "$@"; }

create_webhook() {
  bcli org create "$NS" --owner admin
  bcli repo create "$REPO" --private
  bcli webhook create "$REPO" --url "$RECEIVER_URL" --event push >"$WORK/webhook"
  HOOK_ID=$(sed -n 's/^id: //p' "$WORK/webhook")
  SECRET=$(sed -n 's/^secret: //p' "$WORK/webhook")
  [[ $HOOK_ID == wh_* && $SECRET == whsec_* ]] || { cat "$WORK/webhook"; return 1; }
}
check create-webhook create_webhook
HOOK_ID=$(sed -n 's/^id: //p' "$WORK/webhook" 2>/dev/null || true)
SECRET=$(sed -n 's/^secret: //p' "$WORK/webhook" 2>/dev/null || true)

# The receiver pulls as the admin into this suite's private podman storage.
start_receiver() {
  "${CT_ENV[@]}" REGISTRY_AUTH_FILE="$WORK/auth.json" WEBHOOK_SECRET=$SECRET \
    python3 "$ROOT/examples/redeploy/redeploy.py" --port "$RECEIVER_PORT" --registry "$REG" \
    --repository "$REPO" \
    --podman "podman --root $WORK/storage --runroot $WORK/run/storage --storage-driver vfs" \
    --pull-arg=--tls-verify=false --pull-arg=--signature-policy="$POLICY" \
    --then 'printf "%s %s\n" "$REDEPLOY_DIGEST" "$REDEPLOY_IMAGE" >>'"$DEPLOYED" \
    >"$WORK/receiver.log" 2>&1 &
  HELPER_PIDS+=($!)
  local i
  for i in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$RECEIVER_PORT/" && return 0
    sleep 0.2
  done
  cat "$WORK/receiver.log"
  return 1
}
# Not in a check: a check runs in a subshell, and the receiver must outlive it.
start_receiver || { echo "FAIL $SUITE/receiver-start" | tee -a "$RESULTS"; FAILED=$((FAILED + 1)); }

# push TAG: push the generated image TAG; its digest, as the registry answered it, goes to
# $WORK/TAG.digest.
push() { sko copy --digestfile "$WORK/$1.digest" "oci:$IMG:$1" "docker://$R:$1"; }

# wait_deployed N: wait (at most 30 s) until the receiver has made N deployments; print the
# digest of the Nth.
wait_deployed() {
  local i
  for i in $(seq 150); do
    (($(wc -l <"$DEPLOYED") >= $1)) && { sed -n "$1p" "$DEPLOYED" | cut -d' ' -f1; return 0; }
    sleep 0.2
  done
  echo "no deployment number $1 within 30 s; receiver log:" >&2
  cat "$WORK/receiver.log" >&2
  return 1
}

# pushed_and_pulled TAG N: push TAG; the receiver's Nth deployment is exactly that digest,
# which is also what the registry serves for the tag, and podman's storage now has it.
pushed_and_pulled() {
  push "$1"
  local pushed deployed
  pushed=$(cat "$WORK/$1.digest")
  same "$(sko inspect --format '{{.Digest}}' "docker://$R:$1")" "$pushed"
  deployed=$(wait_deployed "$2")
  same "$deployed" "$pushed"
  same "$(sed -n "$2p" "$DEPLOYED" | cut -d' ' -f2)" "$R@$pushed"
  pod image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$R@$pushed" | grep -Fx "$R@$pushed"
}
check push-v1-pulls-its-digest pushed_and_pulled v1 1
check push-v2-pulls-the-new-digest pushed_and_pulled v2 2

# The history shows each push's delivery, answered 200 at the first attempt, newest first.
deliveries_delivered() {
  local json i
  # The attempt is recorded once the receiver's answer is in: allow for that moment.
  for i in $(seq 50); do
    json=$(bcli webhook deliveries "$HOOK_ID" --json)
    [[ $(jq length <<<"$json") -ge 2 ]] && break
    sleep 0.2
  done
  same "$(jq -c '[.[] | [.event, .attempt, .status]]' <<<"$json")" \
    '[["manifest.pushed",1,200],["manifest.pushed",1,200]]'
  # Read it whole before grep: `grep -q` stops reading at the first match.
  local lines
  lines=$(bcli webhook deliveries "$HOOK_ID")
  grep -q ' 200 ' <<<"$lines"
}
check deliveries-show-200 deliveries_delivered

# post_signed ID TIMESTAMP SIGNATURE BODY_FILE: POST to the receiver; print the status.
post_signed() {
  curl -s -o "$WORK/post.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H "webhook-id: $1" -H "webhook-timestamp: $2" -H "webhook-signature: $3" \
    --data-binary "@$4" "$RECEIVER_URL"
}
# sign ID TIMESTAMP BODY_FILE: the Standard Webhooks signature, computed here independently.
sign() {
  python3 -c 'import base64, hashlib, hmac, sys
key = base64.b64decode(sys.argv[1].removeprefix("whsec_"))
msg = sys.argv[2].encode() + b"." + sys.argv[3].encode() + b"." + open(sys.argv[4], "rb").read()
print("v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode())' \
    "$SECRET" "$1" "$2" "$3"
}
# A push of v1's digest again: a genuine-looking payload that would roll the service back.
forged_body() {
  jq -n --arg repo "$REPO" --arg digest "$(cat "$WORK/v1.digest")" --argjson now "$(date +%s)" \
    '{push_data: {pushed_at: $now, pusher: "mallory", tag: "v2", digest: $digest},
      repository: {repo_name: $repo}}' >"$WORK/forged.json"
}
# no_new_deployment: no pull and no deployment beyond the two real ones, even after a moment.
no_new_deployment() {
  sleep 2
  same "$(grep -c '^redeploy: msg_[^ ]*: .* pull ' "$WORK/receiver.log")" 2
  same "$(wc -l <"$DEPLOYED")" 2
}

forged_refused() {
  forged_body
  local now wrong
  now=$(date +%s)
  # Signed with another secret.
  wrong=$(SECRET=whsec_$(head -c 32 /dev/urandom | base64 -w0) sign msg_forged "$now" "$WORK/forged.json")
  same "$(post_signed msg_forged "$now" "$wrong" "$WORK/forged.json")" 401
  # No signature at all.
  same "$(post_signed msg_forged "$now" "" "$WORK/forged.json")" 401
  no_new_deployment
}
check wrong-signature-refused-401 forged_refused

stale_refused() {
  forged_body
  local stale=$(($(date +%s) - 600))
  same "$(post_signed msg_stale "$stale" "$(sign msg_stale "$stale" "$WORK/forged.json")" "$WORK/forged.json")" 401
  no_new_deployment
}
check stale-timestamp-refused-401 stale_refused

# Berth redelivers with the same webhook-id: the receiver acknowledges it and pulls nothing.
redelivery_deduplicated() {
  local delivery
  delivery=$(bcli webhook deliveries "$HOOK_ID" --json | jq -r '.[0].delivery_id')
  bcli webhook redeliver "$HOOK_ID" "$delivery"
  local i
  for i in $(seq 150); do
    [[ $(bcli webhook deliveries "$HOOK_ID" --json | jq --arg d "$delivery" '[.[] | select(.delivery_id == $d)] | length') == 2 ]] && break
    ((i < 150)) || { echo "the redelivery was not sent within 30 s"; return 1; }
    sleep 0.2
  done
  local newest
  newest=$(bcli webhook deliveries "$HOOK_ID" --json | jq -c '.[0] | [.delivery_id, .status, .response]')
  same "$newest" "$(jq -nc --arg d "$delivery" '[$d, 200, "already accepted\n"]')"
  no_new_deployment
}
check redelivery-not-redeployed redelivery_deduplicated

finish
