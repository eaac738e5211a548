#!/usr/bin/env bash
# HTTPS: berth serving tls_cert/tls_key signed by a test CA; skopeo, podman and curl verify it
# (--tls-verify=true with --cert-dir, --cacert), push and pull through it, and see a new
# certificate after SIGHUP. Berth only: it starts its own server.
# shellcheck disable=SC2016,SC2034  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"

if [[ -n ${REGISTRY_URL:-} || ${INTEROP_REGISTRY:-berth} != berth ]]; then
  echo "skipped: the HTTPS suite starts its own berth"
  FINISHED=1
  exit 0
fi

CERTS=$WORK/certs
mkdir -p "$CERTS/trust" "$CERTS/trust2"
# ca NAME: a self-signed test CA in $CERTS/NAME.{crt,key}.
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=Berth interop $1" -keyout "$CERTS/$1.key" -out "$CERTS/$1.crt" 2>/dev/null
}
# issue CA: a server certificate for 127.0.0.1 and localhost, signed by CA, as the server's files.
issue() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$CERTS/next.key" -out "$CERTS/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$CERTS/san.ext"
  openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/$1.crt" -CAkey "$CERTS/$1.key" \
    -CAcreateserial -days 2 -extfile "$CERTS/san.ext" -out "$CERTS/next.crt" 2>/dev/null
  mv "$CERTS/next.key" "$CERTS/server.key"
  mv "$CERTS/next.crt" "$CERTS/server.crt"
}
ca ca1
ca ca2
issue ca1
# containers tools read every *.crt in a --cert-dir as a trusted CA.
cp "$CERTS/ca1.crt" "$CERTS/trust/ca.crt"
cp "$CERTS/ca2.crt" "$CERTS/trust2/ca.crt"

SCHEME=https
CURL_TLS=(--cacert "$CERTS/ca1.crt")
REGISTRY_ENV=(BERTH_TLS_CERT="$CERTS/server.crt" BERTH_TLS_KEY="$CERTS/server.key")
start_registry

IMG=$WORK/img
# 4 MiB layers: request and response bodies stream through TLS in many records.
one=$(python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed tls-1 --tag v1 --layer-size 4194304)
digest=$(jq -r .digest <<<"$one")
config=$(jq -r .images[0].config <<<"$one")
R=docker://$REG/$NS/tls

# skos CMD ARGS...: skopeo verifying the server against the test CA in $TRUST.
TRUST=$CERTS/trust
skos() {
  local cmd=$1; shift
  local tls=(--tls-verify=true --cert-dir "$TRUST")
  [[ $cmd == copy ]] && tls=(--src-tls-verify=true --src-cert-dir "$TRUST" --dest-tls-verify=true --dest-cert-dir "$TRUST")
  "${CT_ENV[@]}" REGISTRY_AUTH_FILE="$WORK/auth.json" skopeo --policy "$POLICY" "$cmd" "${tls[@]}" "$@"
}
# pods CMD ARGS...: podman verifying the server the same way.
pods() {
  local cmd=$1; shift
  local extra=()
  case $cmd in
    pull | push) extra=(--tls-verify=true --cert-dir "$TRUST" --signature-policy "$POLICY") ;;
  esac
  "${CT_ENV[@]}" REGISTRY_AUTH_FILE="$WORK/auth.json" podman --root "$WORK/storage" --runroot "$WORK/run/storage" \
    --storage-driver vfs "$cmd" "${extra[@]}" "$@"
}

curl_challenge() {
  curl -sS "${CURL_TLS[@]}" -D "$WORK/h" -o /dev/null "https://$REG/v2/"
  has_header "$WORK/h" "www-authenticate: Bearer realm=\"https://$REG/token\",service=\"berth\""
}
check curl-cacert-challenge-names-https curl_challenge
check curl-http2-by-alpn eval 'same "$(curl -sS "${CURL_TLS[@]}" --http2 -u "$ADMIN_CREDS" -o /dev/null -w "%{http_version} %{http_code}" "https://$REG/v2/")" "2 200"'
check curl-http1 eval 'same "$(curl -sS "${CURL_TLS[@]}" --http1.1 -u "$ADMIN_CREDS" -o /dev/null -w "%{http_version} %{http_code}" "https://$REG/v2/")" "1.1 200"'
check curl-refuses-unknown-ca eval '! curl -sS -o /dev/null "https://$REG/v2/"'

check skopeo-push-verified skos copy "oci:$IMG:v1" "$R:v1"
check skopeo-inspect-verified eval 'same "$(skos inspect "$R:v1" | jq -r .Digest)" "$digest"'
skopeo_pull() {
  skos copy "$R:v1" "oci:$WORK/out:v1"
  same "$(jq -r '.manifests[0].digest' "$WORK/out/index.json")" "$digest"
  for f in "$WORK/out/blobs/sha256/"*; do cmp "$f" "$IMG/blobs/sha256/${f##*/}"; done
}
check skopeo-pull-verified-identical skopeo_pull
check skopeo-refuses-unknown-ca eval 'TRUST=$CERTS/trust2; ! skos inspect --raw "$R:v1"'

podman_round_trip() {
  pods pull "$R:v1"
  same "$(pods image inspect --format '{{.Id}}' "$REG/$NS/tls:v1")" "${config#sha256:}"
  pods push "$REG/$NS/tls:v1" "$R:from-podman"
  pods rmi -af >/dev/null
  pods pull "$R:from-podman"
  same "$(pods image inspect --format '{{.Id}}' "$REG/$NS/tls:from-podman")" "${config#sha256:}"
}
check podman-pull-push-verified podman_round_trip

# A certificate from another CA, swapped in and announced by SIGHUP: clients that trust the
# new CA get in, those that trust only the old one are refused.
reload() {
  issue ca2
  kill -HUP "$SERVER_PID"
  local i
  for i in $(seq 50); do
    curl -s --cacert "$CERTS/ca2.crt" -o /dev/null "https://$REG/healthz" && break
    ((i < 50)) || { echo "the new certificate was not served"; return 1; }
    sleep 0.2
  done
  ! curl -sS "${CURL_TLS[@]}" -o /dev/null "https://$REG/healthz"
  TRUST=$CERTS/trust2
  same "$(skos inspect "$R:v1" | jq -r .Digest)" "$digest"
  grep -q 'reloaded the TLS certificate' "$WORK/server.log"
}
check sighup-reload-new-ca reload

finish
