#!/usr/bin/env bash
# Signatures and pull policies as registry clients meet them. A cosign signature in cosign's
# own layout (the simple-signing payload layer with its `dev.cosignproject.cosign/signature`
# annotation under the `sha256-<hex>.sig` tag), signed by openssl with a P-256 key as
# `cosign sign --key` does; the key trusted with `berth trust add`; a namespace policy set with
# `berth policy set`. podman and skopeo pulls of the unsigned image are refused with the
# message naming the policy; the signed image pulls; a vulnerable image (npm's minimist 1.2.5,
# its real package.json) is scanned after `berth vulndb import` of real OSV advisories and
# blocked by the severity policy.
# shellcheck disable=SC2016  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
start_registry
if [[ -z $DATA ]]; then
  echo "skipped: keys and policies are set with the CLI on the data directory of a Berth this suite starts"
  finish
  exit
fi

cli() { "$BERTH" --data-dir "$DATA" "$@"; }
CAROL_PW=carol-Interop-pw-1
CAROL=carol:$CAROL_PW
REPO=carol/app
R=docker://$REG/$REPO
IMG=$WORK/img
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed signed-1 --tag signed >/dev/null
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed unsigned-1 --tag unsigned >/dev/null
SCAN_DATA=$ROOT/crates/scan/tests/data
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed vulnerable-1 --tag vulnerable \
  --file "usr/lib/node_modules/minimist/package.json=$SCAN_DATA/npm/minimist/package.json" >/dev/null
write_authfile "$WORK/carol.json" "$CAROL"
# carol is no site admin: site admins are exempt from pull policies.
as_carol() { AUTH_FILE=$WORK/carol.json "$@"; }
ccurl() { curl -s -u "$CAROL" "$@"; }

setup() {
  cli user create carol --password-stdin <<<"$CAROL_PW"
  for tag in signed unsigned vulnerable; do
    as_carol sko copy "oci:$IMG:$tag" "$R:$tag"
  done
}
check push-images setup

# upload FILE: a monolithic blob upload to $REPO; prints the digest.
upload() {
  local digest
  digest=$(sha256 <"$1")
  ccurl -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' \
    --data-binary "@$1" "http://$REG/v2/$REPO/blobs/uploads/?digest=$digest" | grep -q 201
  echo "$digest"
}

sign() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/cosign.key"
  openssl pkey -in "$WORK/cosign.key" -pubout -out "$WORK/cosign.pub"
  local digest payload sig config layer manifest
  digest=$(as_carol sko inspect --raw "$R:signed" | sha256)
  printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' \
    "$REG/$REPO" "$digest" >"$WORK/payload.json"
  sig=$(openssl dgst -sha256 -sign "$WORK/cosign.key" "$WORK/payload.json" | base64 -w0)
  payload=$(upload "$WORK/payload.json")
  printf '{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' \
    "$payload" >"$WORK/sigconfig.json"
  config=$(upload "$WORK/sigconfig.json")
  jq -n --arg c "$config" --argjson cs "$(stat -c %s "$WORK/sigconfig.json")" \
    --arg p "$payload" --argjson ps "$(stat -c %s "$WORK/payload.json")" --arg s "$sig" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", digest: $p,
                size: $ps, annotations: {"dev.cosignproject.cosign/signature": $s}}]}' \
    >"$WORK/sig.json"
  ccurl -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$WORK/sig.json" "http://$REG/v2/$REPO/manifests/${digest/:/-}.sig" | grep -q 201
}
check sign-in-cosign-layout sign
check trust-key cli trust add carol --name release --key "$WORK/cosign.pub"
check trust-list eval 'cli trust list carol | grep -q "^release  ecdsa-p256  sha256:"'
not_a_key() {
  echo "not a key" >"$WORK/bad.pub"
  if cli trust add carol --name bad --key "$WORK/bad.pub" 2>"$WORK/err"; then
    echo "a file that is not a key was trusted"; return 1
  fi
  grep -q "not a PEM public key" "$WORK/err"
}
check not-a-key-is-refused not_a_key
check policy-set cli policy set carol --require-signature
check policy-show eval 'cli policy show carol | grep -q "verified signatures only"'

# The signature is verified by a job after its push; a running server also re-reads policies
# the CLI wrote every two seconds: poll with a generous deadline.
verified() {
  local i
  for i in $(seq 300); do
    [[ $(ccurl "http://$REG/api/v1/repositories/$REPO/-/tags" |
      jq -r '.results[] | select(.name == "signed") | .signature.state') == verified ]] && return 0
    sleep 0.2
  done
  echo "carol/app:signed never became verified"; return 1
}
check signed-image-becomes-verified verified

refused_with_message() {
  local i
  for i in $(seq 100); do
    if ! "$@" 2>"$WORK/err" >/dev/null; then
      cat "$WORK/err"
      grep -q 'denied' "$WORK/err"
      grep -q "pull refused by the namespace carol's pull policy \\\\\?\"verified signatures only\\\\\?\"" "$WORK/err" ||
        grep -q 'verified signatures only' "$WORK/err"
      grep -q 'has no signature' "$WORK/err"
      return 0
    fi
    sleep 0.2 # the server may not have re-read the policy yet
  done
  echo "the unsigned image was pulled"; return 1
}
check skopeo-unsigned-pull-refused refused_with_message as_carol sko copy "$R:unsigned" "oci:$WORK/out:unsigned"
check podman-unsigned-pull-refused refused_with_message as_carol pod pull "$REG/$REPO:unsigned"
check skopeo-signed-pull-passes as_carol sko copy "$R:signed" "oci:$WORK/out:signed"
check podman-signed-pull-passes as_carol pod pull "$REG/$REPO:signed"
check site-admin-is-exempt sko copy "$R:unsigned" "oci:$WORK/out:admin"

vulnerable_blocked() {
  # Real advisories (GHSA-xvch-5gv4-984h: minimist < 1.2.6, critical); the running server
  # rescans every image after an import.
  cli vulndb import "$SCAN_DATA/osv"
  local i critical=
  for i in $(seq 600); do
    critical=$(curl -s -u "$ADMIN_CREDS" "http://$REG/api/v1/repositories/$REPO/-/tags" |
      jq -r '.results[] | select(.name == "vulnerable") | .vulnerabilities.critical // empty')
    [[ -n $critical && $critical -ge 1 ]] && break
    sleep 0.2
  done
  if [[ -z $critical || $critical -lt 1 ]]; then
    echo "carol/app:vulnerable was never scanned with its critical finding"; return 1
  fi
  cli policy set carol --no-require-signature --block-severity high --allow-unscanned
  # The running server re-reads policies the CLI wrote within two seconds.
  for i in $(seq 100); do
    if ! as_carol pod pull "$REG/$REPO:vulnerable" 2>"$WORK/err" >/dev/null &&
      grep -q 'block severity high or higher' "$WORK/err"; then
      cat "$WORK/err"
      grep -q 'denied' "$WORK/err"
      grep -q '1 finding' "$WORK/err"
      if as_carol sko copy "$R:vulnerable" "oci:$WORK/out:vulnerable" 2>"$WORK/err"; then
        echo "skopeo pulled the vulnerable image"; return 1
      fi
      grep -q 'block severity high or higher' "$WORK/err"
      # Images without such findings pass, signed or not.
      as_carol pod pull "$REG/$REPO:unsigned"
      return 0
    fi
    sleep 0.2
  done
  cat "$WORK/err"
  echo "the vulnerable image was never refused by the severity policy"; return 1
}

check podman-vulnerable-pull-refused vulnerable_blocked
check policy-clear cli policy clear carol

finish
