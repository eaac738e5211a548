#!/usr/bin/env bash
# Automated builds as users meet them: a local bare git repository (file://) with a
# FROM scratch Dockerfile is linked with `berth build source set`, a rule is added, a push
# to the repository is announced with a signed GitHub push hook, Berth builds with buildah
# and pushes; the image pulls with skopeo and podman, with its file and its source
# annotations. A hook with a bad signature gets 401 and builds nothing.
# shellcheck disable=SC2016  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
if ! command -v git >/dev/null || ! command -v buildah >/dev/null; then
  [[ ${CI:-} == true ]] && { echo "CI=true and git or buildah is missing" >&2; exit 1; }
  echo "!!! SKIPPED: the builds suite needs git and buildah (apt-get install -y git buildah)"
  FINISHED=1
  exit 0
fi
REGISTRY_ENV+=(BERTH_BUILD_DIR="$WORK/builds")
start_registry
if [[ -z $DATA ]]; then
  echo "skipped: sources and rules are set with the CLI on the data directory of a Berth this suite starts"
  finish
  exit
fi

cli() { "$BERTH" --data-dir "$DATA" "$@"; }
REPO=admin/hello
GIT=$WORK/git
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com

setup() {
  git init -q --bare "$GIT/hello.git"
  git init -q -b main "$GIT/work"
  printf '{"message": "Hello Hub"}\n' >"$GIT/work/message.json"
  printf 'FROM scratch\nCOPY message.json /message.json\n' >"$GIT/work/Dockerfile"
  git -C "$GIT/work" add .
  git -C "$GIT/work" commit -q -m hello
  git -C "$GIT/work" push -q "file://$GIT/hello.git" main
  cli build source set "$REPO" --git "file://$GIT/hello.git" >"$WORK/source.txt"
  cli build rule add "$REPO" --type branch --source main --tag latest
}
check link-source-and-rule setup

SECRET=$(sed -n 's/^webhook secret: //p' "$WORK/source.txt")
COMMIT=$(git -C "$GIT/work" rev-parse HEAD)
BODY=$(printf '{"ref":"refs/heads/main","after":"%s","deleted":false}' "$COMMIT")
hook() {  # hook SECRET: prints the status of a GitHub push hook signed with SECRET
  local sig
  sig=sha256=$(printf %s "$BODY" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)
  curl -s -o "$WORK/hook.json" -w '%{http_code}' -X POST -H 'X-GitHub-Event: push' \
    -H "X-Hub-Signature-256: $sig" --data-binary "$BODY" \
    "http://$REG/api/v1/repositories/$REPO/build-hooks/github"
}
check bad-signature-is-refused eval 'same "$(hook wrong-secret)" 401 && same "$(acurl -s "http://$REG/api/v1/repositories/$REPO/-/builds" | jq ".builds | length")" 0'

built() {
  same "$(hook "$SECRET")" 202
  local id status
  id=$(jq '.builds[0].id' "$WORK/hook.json")
  for _ in $(seq 600); do
    status=$(acurl -s "http://$REG/api/v1/builds/$id" | jq -r .status)
    [[ $status == queued || $status == running ]] || break
    sleep 0.5
  done
  acurl -s "http://$REG/api/v1/builds/$id" | jq -r .log
  same "$status" succeeded
}
check signed-push-hook-builds built

pulled_with_skopeo() {
  sko copy "docker://$REG/$REPO:latest" "oci:$WORK/oci:latest"
  local manifest layer
  manifest=$(jq -r '.manifests[0].digest' "$WORK/oci/index.json")
  manifest=$WORK/oci/blobs/sha256/${manifest#sha256:}
  same "$(jq -r '.annotations["org.opencontainers.image.source"]' "$manifest")" "file://$GIT/hello.git"
  same "$(jq -r '.annotations["org.opencontainers.image.revision"]' "$manifest")" "$COMMIT"
  same "$(jq -r '.annotations["org.opencontainers.image.ref.name"]' "$manifest")" refs/heads/main
  layer=$(jq -r '.layers[0].digest' "$manifest")
  same "$(tar -xzOf "$WORK/oci/blobs/sha256/${layer#sha256:}" message.json)" '{"message": "Hello Hub"}'
}
check pull-with-skopeo-files-and-annotations pulled_with_skopeo

pulled_with_podman() {
  pod pull "$REG/$REPO:latest"
  local mount
  # An image FROM scratch has no program to run: its file is read from a mounted copy.
  mount=$(pod image mount "$REG/$REPO:latest")
  same "$(cat "$mount/message.json")" '{"message": "Hello Hub"}'
  pod image unmount "$REG/$REPO:latest" >/dev/null
}
check pull-with-podman pulled_with_podman

finish
