#!/usr/bin/env bash
# podman against the registry: push (OCI and Docker v2s2), rmi, pull back, same image.
# shellcheck disable=SC2016,SC2034  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
start_registry

IMG=$WORK/img
gen=$(python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed podman-1 --tag v1 --layers 3)
config=$(jq -r .images[0].config <<<"$gen")
R=$REG/$NS/podman

# podman names the image after the layout path, which must be lowercase: use a relative one.
check load-from-oci-layout eval 'cd "$WORK" && pod pull oci:img:v1 && pod tag "$config" localhost/src:v1'
same_id() { same "$(pod image inspect --format '{{.Id}}' "$1")" "${config#sha256:}"; }
check loaded-image-id same_id localhost/src:v1

# podman stores layers uncompressed and recompresses them on push, so the
# manifest it uploads need not match ours; the image ID (config digest) must.
push() { pod push --digestfile "$WORK/$1.digest" --format "$1" localhost/src:v1 "docker://$R:$1"; }
check push-oci push oci
check push-v2s2 push v2s2
check v2s2-media-type eval 'sko inspect --raw "docker://$R:v2s2" | jq -e ".mediaType == \"application/vnd.docker.distribution.manifest.v2+json\""'

# The Hub's tags view names the platform of both single images (OCI and Docker schema 2), read
# from the configuration podman pushed.
tags_platforms() {
  same "$(acurl -fsS "http://$REG/api/v1/repositories/$NS/podman/-/tags?ordering=name" |
    jq -c '[.results[] | [.name, (.images | map(.os + "/" + .architecture))]]')" \
    '[["oci",["linux/amd64"]],["v2s2",["linux/amd64"]]]'
}
check tags-view-platform tags_platforms

# Each pull starts from empty storage so that every blob really comes from the registry.
# pull_back :TAG|@DIGEST FORMAT: pull what `push FORMAT` pushed.
pull_back() {
  local ref=$R$1 pushed
  pushed=$(cat "$WORK/$2.digest")
  pod rmi -af >/dev/null
  same "$(pod images -q)" ""
  pod pull "$ref"
  same_id "$ref"
  pod image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep -Fx "$R@$pushed"
  same "$(acurl -fsS -H "Accept: $MANIFEST_ACCEPT" "http://$REG/v2/$NS/podman/manifests/${1:1}" | sha256)" "$pushed"
}
check rmi-pull-oci pull_back :oci oci
check rmi-pull-v2s2 pull_back :v2s2 v2s2
# As `podman pull name@sha256:...` does.
check rmi-pull-by-digest eval 'pull_back "@$(cat "$WORK/oci.digest")" oci'

finish
