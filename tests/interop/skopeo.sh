#!/usr/bin/env bash
# skopeo against the registry: copy in/out, multi-arch --all, inspect, list-tags, delete.
# shellcheck disable=SC2016,SC2034  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
start_registry

IMG=$WORK/img
# 4 MiB layers: big enough that the server has to stream request and response bodies.
one=$(python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed skopeo-1 --tag v1 --layer-size 4194304)
multi=$(python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed skopeo-2 --tag multi --index)
digest=$(jq -r .digest <<<"$one")
R=docker://$REG/$NS/skopeo

# The digests we compare against are only meaningful if generation is reproducible.
deterministic() {
  python3 "$INTEROP_DIR/mkimage.py" "$WORK/img2" --seed skopeo-1 --tag v1 --layer-size 4194304 >/dev/null
  python3 "$INTEROP_DIR/mkimage.py" "$WORK/img2" --seed skopeo-2 --tag multi --index >/dev/null
  diff -r "$IMG" "$WORK/img2"
}
check mkimage-deterministic deterministic

check copy-in sko copy "oci:$IMG:v1" "$R:v1"
# Same-registry copy: skopeo finds every blob present (HEAD) and only PUTs the manifest.
check copy-retag sko copy "$R:v1" "$R:v2"

copy_out() {
  sko copy "$R:v1" "oci:$WORK/out:v1"
  local m
  m=$(jq -r '.manifests[0].digest' "$WORK/out/index.json")
  same "$m" "$digest"
  same "$(jq -c '[.layers[].digest]' "$WORK/out/blobs/sha256/${m#sha256:}")" "$(jq -c .images[0].layers <<<"$one")"
  for f in "$WORK/out/blobs/sha256/"*; do cmp "$f" "$IMG/blobs/sha256/${f##*/}"; done
}
check copy-out-identical copy_out

# skopeo and podman rely on these when resolving a tag to a digest.
head_manifest() {
  acurl -fsS -I -H "Accept: $MANIFEST_ACCEPT" "http://$REG/v2/$NS/skopeo/manifests/v1" >"$WORK/h"
  has_header "$WORK/h" "docker-content-digest: $digest"
  has_header "$WORK/h" 'content-type: application/vnd.oci.image.manifest.v1+json'
  has_header "$WORK/h" "content-length: $(jq -r .size <<<"$one")"
}
check head-manifest-headers head_manifest

inspect() {
  local j
  j=$(sko inspect "$R:v1")
  same "$(jq -r .Digest <<<"$j")" "$digest"
  same "$(jq -r '"\(.Architecture)/\(.Os)"' <<<"$j")" amd64/linux
  same "$(jq -c .Layers <<<"$j")" "$(jq -c .images[0].layers <<<"$one")"
  same "$(jq -r '.Labels["org.example.seed"]' <<<"$j")" skopeo-1
}
check inspect inspect
check inspect-raw eval 'cmp <(sko inspect --raw "$R:v1") "$IMG/blobs/sha256/${digest#sha256:}"'
check inspect-config eval 'same "$(sko inspect --config --raw "$R:v1" | sha256)" "$(jq -r .images[0].config <<<"$one")"'
check list-tags eval 'same "$(sko list-tags "$R" | jq -c ".Tags | sort")" "[\"v1\",\"v2\"]"'

M=docker://$REG/$NS/multi
check index-copy-all sko copy --all "oci:$IMG:multi" "$M:latest"
check index-raw eval 'same "$(sko inspect --raw "$M:latest" | sha256)" "$(jq -r .digest <<<"$multi")"'
platform() {
  local i=$1 d arch
  d=$(jq -r ".images[$i].digest" <<<"$multi")
  arch=$(jq -r ".images[$i].platform.architecture" <<<"$multi")
  same "$(sko inspect --raw "$M@$d" | sha256)" "$d"
  # A client on $arch resolving the tag must land on the same manifest.
  sko --override-arch "$arch" copy "$M:latest" "oci:$WORK/plat-$arch:x"
  same "$(jq -r '.manifests[0].digest' "$WORK/plat-$arch/index.json")" "$d"
  same "$(jq -c '[.layers[].digest]' "$WORK/plat-$arch/blobs/sha256/${d#sha256:}")" "$(jq -c ".images[$i].layers" <<<"$multi")"
}
check index-amd64-by-digest platform 0
check index-arm64-by-digest platform 1

delete() {
  sko delete "$R:v2"
  # v1 and v2 name the same manifest, so both tags go with it.
  same "$(status GET "http://$REG/v2/$NS/skopeo/manifests/$digest" -H "Accept: $MANIFEST_ACCEPT")" 404
  same "$(status GET "http://$REG/v2/$NS/skopeo/manifests/v1" -H "Accept: $MANIFEST_ACCEPT")" 404
  ! sko inspect --raw "$R:v1"
}
check delete delete

finish
