#!/usr/bin/env bash
# oras-py against the registry: OCI 1.1 artifacts (artifactType), subject and the referrers API.
# shellcheck disable=SC2016,SC2034  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
PY=${ORAS_PYTHON:-$ROOT/target/interop-venv/bin/python}
"$PY" -c 'import oras' || { echo "no oras-py in $PY: run scripts/test to create the venv" >&2; exit 1; }
start_registry

# As the admin; HOME in $WORK so oras-py finds no ~/.docker/config.json of the host's.
orasctl() { HOME=$WORK/home "$PY" "$INTEROP_DIR/orasctl.py" ${ADMIN_CREDS:+--creds "$ADMIN_CREDS"} "$@"; }
SBOM=application/vnd.example.sbom.v1
SIG=application/vnd.example.signature.v1
API=http://$REG/v2/$NS/oras
mkdir -p "$WORK/in"
python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(42).randbytes(200_000))' >"$WORK/in/sbom.bin"
echo 'signed, sealed, delivered' >"$WORK/in/sig.txt"

# Chunked on purpose: 200 kB in 64 KiB PATCHes with oras-py's bare "start-end" Content-Range.
check artifact-push eval 'orasctl push "$REG/$NS/oras:sbom" "$WORK/in/sbom.bin" --artifact-type "$SBOM" --chunked >"$WORK/art.json"'
check artifact-pull-identical eval 'orasctl pull "$REG/$NS/oras:sbom" "$WORK/out" && cmp "$WORK/in/sbom.bin" "$WORK/out/sbom.bin"'
artifact_manifest() {
  acurl -fsS -H "Accept: $MANIFEST_ACCEPT" "$API/manifests/sbom" >"$WORK/art.manifest"
  same "$(sha256 <"$WORK/art.manifest")" "$(jq -r .digest "$WORK/art.json")"
  same "$(jq -r .artifactType "$WORK/art.manifest")" "$SBOM"
}
check artifact-manifest artifact_manifest

# The subject: an ordinary image, as skopeo would have pushed it.
img=$(python3 "$INTEROP_DIR/mkimage.py" "$WORK/img" --seed oras-1 --tag v1)
SUBJ=$(jq -r .digest <<<"$img")
subject=$(jq -c '{mediaType, digest, size}' <<<"$img")
check subject-image-push sko copy "oci:$WORK/img:v1" "docker://$REG/$NS/oras:image"

check referrer-push eval 'orasctl push "$REG/$NS/oras:sbom-of-image" "$WORK/in/sbom.bin" \
  --artifact-type "$SBOM" --subject "$subject" --annotation org.example.kind=sbom >"$WORK/ref1.json"'
check referrer-push-legacy eval 'orasctl push-legacy "$REG/$NS/oras:sig-of-image" "$WORK/in/sig.txt" \
  --config-type "$SIG" --subject "$subject" >"$WORK/ref2.json"'
ref1=$(jq -r .digest "$WORK/ref1.json" 2>/dev/null || true)
ref2=$(jq -r .digest "$WORK/ref2.json" 2>/dev/null || true)
# Tells clients (oras-go, notation) the registry indexed the subject; without it they fall
# back to maintaining a sha256-<digest> tag index themselves.
check referrers-oci-subject-header eval 'same "$(jq -r .oci_subject "$WORK/ref1.json")" "$SUBJ"'

# referrers DIGEST [QUERY]: GET the referrers index into $WORK/refs.{json,headers}.
referrers() {
  acurl -fsS -D "$WORK/refs.headers" -o "$WORK/refs.json" "$API/referrers/$1${2:-}"
  has_header "$WORK/refs.headers" 'content-type: application/vnd.oci.image.index.v1+json'
  jq -e '.schemaVersion == 2 and .mediaType == "application/vnd.oci.image.index.v1+json"' "$WORK/refs.json" >/dev/null
}
# The descriptor the referrers API must list for manifest $1 with artifactType $2
# (empty annotations may be omitted, so normalise them away on both sides).
ANN='(if (.annotations // {}) != {} then {annotations} else {} end)'
descriptor() {
  acurl -fsS -H "Accept: $MANIFEST_ACCEPT" -o "$WORK/m.json" "$API/manifests/$1"
  jq -c --arg d "$1" --arg t "$2" --argjson s "$(wc -c <"$WORK/m.json")" \
    "{mediaType, digest: \$d, size: \$s, artifactType: \$t} + $ANN" "$WORK/m.json"
}
listed() { jq -c "[.manifests[] | {mediaType, digest, size, artifactType} + $ANN] | sort_by(.digest)" "$WORK/refs.json"; }

# Both referrers must exist, or the comparisons below compare two empty lists.
pushed_referrers() { [[ $ref1 == sha256:* && $ref2 == sha256:* ]] || { echo "referrers not pushed: '$ref1' '$ref2'"; return 1; }; }
all_referrers() {
  pushed_referrers
  referrers "$SUBJ"
  # The legacy artifact has no artifactType field: the registry must report config.mediaType.
  same "$(listed)" "$( (descriptor "$ref1" "$SBOM"; descriptor "$ref2" "$SIG") | jq -sc 'sort_by(.digest)')"
}
check referrers-list all_referrers
filtered() {
  pushed_referrers
  referrers "$SUBJ" "?artifactType=$SBOM"
  has_header "$WORK/refs.headers" 'oci-filters-applied: artifactType'
  same "$(listed)" "[$(descriptor "$ref1" "$SBOM")]"
}
check referrers-filter-artifactType filtered
# Nothing refers to the artifact itself: 200 with an empty list, not 404.
check referrers-empty eval 'referrers "$ref1"; same "$(jq -c .manifests "$WORK/refs.json")" "[]"'
after_delete() {
  same "$(status DELETE "$API/manifests/$ref1")" 202
  referrers "$SUBJ"
  same "$(jq -c '[.manifests[].digest]' "$WORK/refs.json")" "[\"$ref2\"]"
}
check referrers-after-delete after_delete

finish
