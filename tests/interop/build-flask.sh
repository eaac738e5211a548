#!/usr/bin/env bash
# The README's automated-build example end to end: examples/flask-build/ (a Flask app and
# its Dockerfile, `FROM python:3.11-slim`) in a local bare git repository whose
# post-receive hook calls Berth's generic build trigger. Base images come through Berth's
# Docker Hub mirror (`mirror_default`); its upstream is CNCF Distribution on loopback,
# holding a `library/python:3.11-slim` assembled here from Debian's python3, python3-pip
# and python3-flask (the tests have no network). A `git push` builds the image; podman
# pulls it and runs it, and it answers {"message": "Hello Hub"} over HTTP.
# shellcheck disable=SC2016  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
if [[ -n ${REGISTRY_URL:-} || ${INTEROP_REGISTRY:-berth} != berth ]]; then
  echo "skipped: the mirror and the builder are configured on a Berth this suite starts"
  finish
  exit
fi
missing=()
for tool in git buildah podman docker-registry curl jq; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
for pkg in python3-flask python3-pip dash; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  [[ ${CI:-} == true ]] && { echo "FAIL $SUITE/CI=true and ${missing[*]} missing" | tee -a "$RESULTS"; exit 1; }
  echo "!!! SKIPPED: the Flask build suite needs ${missing[*]} (apt-get install -y git buildah podman docker-registry python3-flask python3-pip dash)"
  FINISHED=1
  exit 0
fi

# The Docker Hub stand-in: Distribution on loopback.
UP=127.0.0.1:$(free_port)
mkdir -p "$WORK/upstream"
cat >"$WORK/upstream.yml" <<YAML
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $WORK/upstream}
http: {addr: $UP}
YAML
docker-registry serve "$WORK/upstream.yml" >"$WORK/upstream.log" 2>&1 &
HELPER_PIDS+=("$!")
for i in $(seq 100); do
  curl -sf -o /dev/null "http://$UP/v2/" && break
  ((i < 100)) || { echo "upstream not ready" >&2; exit 1; }
  sleep 0.2
done

# library/python:3.11-slim from the files of Debian's packages (and what they depend on):
# python3 with pip and Flask, /bin/sh, no EXTERNALLY-MANAGED marker (as the official
# image), `python` on PATH.
packages_closure() {
  local -A seen
  local queue=("$@") p part name
  while ((${#queue[@]})); do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [[ -n ${seen[$p]:-} ]] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || continue
    seen[$p]=1
    echo "$p"
    IFS=',' read -ra parts <<<"$(dpkg-query -W -f='${Pre-Depends}, ${Depends}' "$p")"
    for part in "${parts[@]}"; do
      name=$(awk '{print $1}' <<<"${part%%|*}")
      [[ -n $name ]] && queue+=("${name%%:*}")
    done
  done
}
python_image() {
  local rootfs=$WORK/rootfs files=$WORK/rootfs-files.txt f
  # Debian 12's merged /usr: /bin, /lib, ... are links into /usr.
  mkdir -p "$rootfs/tmp" "$rootfs/root" "$rootfs"/usr/{bin,sbin,lib,lib64}
  for f in bin sbin lib lib64; do ln -s "usr/$f" "$rootfs/$f"; done
  packages_closure python3-flask python3-pip dash | xargs dpkg -L | sort -u |
    grep -vE '^/usr/share/(doc|man|locale|info|lintian|bug)/' |
    while read -r f; do
      if [[ -L $f || -f $f ]]; then echo "${f#/}"; fi
    done >"$files"
  tar -C / -cf - --no-recursion -T "$files" | tar -C "$rootfs" -xf -
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf python3 "$rootfs/usr/bin/python"
  chmod 1777 "$rootfs/tmp"
  local b=(env _CONTAINERS_USERNS_CONFIGURED=1 TMPDIR="$WORK" buildah --root "$WORK/bstore/root"
    --runroot "$WORK/bstore/run" --storage-driver vfs)
  local ctr
  ctr=$("${b[@]}" from --signature-policy "$POLICY" scratch)
  "${b[@]}" copy "$ctr" "$rootfs" / >/dev/null
  "${b[@]}" config --env PATH=/usr/local/bin:/usr/bin:/bin --env PIP_DISABLE_PIP_VERSION_CHECK=1 \
    --env PIP_NO_INDEX=1 --cmd python3 --os linux --arch amd64 "$ctr"
  "${b[@]}" commit -q --rm "$ctr" localhost/python:3.11-slim >/dev/null
  "${b[@]}" push --tls-verify=false --signature-policy "$POLICY" localhost/python:3.11-slim \
    "docker://$UP/library/python:3.11-slim"
}

cat >"$WORK/berth.toml" <<TOML
mirror_default = "hub"
[[mirror]]
prefix = "hub"
upstream = "http://$UP"
TOML
REGISTRY_ENV+=(BERTH_CONFIG="$WORK/berth.toml" BERTH_BUILD_DIR="$WORK/builds")
# Building on a vfs copy of a 70 MB base image takes a while on a busy machine.
INTEROP_CHECK_TIMEOUT=${INTEROP_CHECK_TIMEOUT:-1200}
start_registry
check python-base-image-on-the-upstream python_image

cli() { "$BERTH" --data-dir "$DATA" "$@"; }
REPO=admin/hello
GIT=$WORK/git
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com

link() {
  git init -q --bare "$GIT/hello.git"
  cli build source set "$REPO" --git "file://$GIT/hello.git" >"$WORK/source.txt"
  cli build rule add "$REPO" --type branch --source main --tag latest
  local secret
  secret=$(sed -n 's/^webhook secret: //p' "$WORK/source.txt")
  # The README's post-receive hook: tell Berth which refs moved.
  cat >"$GIT/hello.git/hooks/post-receive" <<HOOK
#!/bin/sh
while read -r old new ref; do
  curl -fsS -X POST -H "X-Berth-Build-Token: $secret" -H 'Content-Type: application/json' \\
    -d "{\"ref\": \"\$ref\"}" "http://$REG/api/v1/repositories/$REPO/build-hooks/generic"
done
HOOK
  chmod +x "$GIT/hello.git/hooks/post-receive"
}
check link-source-rule-and-hook link

pushed_and_built() {
  git init -q -b main "$GIT/work"
  cp "$ROOT"/examples/flask-build/{Dockerfile,app.py,requirements.txt} "$GIT/work/"
  git -C "$GIT/work" add .
  git -C "$GIT/work" commit -q -m "Flask app"
  git -C "$GIT/work" push -q "file://$GIT/hello.git" main 2>&1 | tee "$WORK/push.txt"
  local id status
  id=$(acurl -s "http://$REG/api/v1/repositories/$REPO/-/builds" | jq '.builds[0].id')
  [[ $id != null ]] || { echo "the push queued no build"; return 1; }
  for _ in $(seq 1200); do
    status=$(acurl -s "http://$REG/api/v1/builds/$id" | jq -r .status)
    [[ $status == queued || $status == running ]] || break
    sleep 0.5
  done
  acurl -s "http://$REG/api/v1/builds/$id" | jq -r .log | tee "$WORK/build.log"
  same "$status" succeeded
  grep -q "come through the mirror $REG/hub" "$WORK/build.log"
  # The base image was fetched through the pull-through cache, which now holds it.
  same "$(acurl -s "http://$REG/api/v1/repositories/hub/library/python" | jq -r '.mirror.prefix')" hub
}
check git-push-builds-through-the-mirror pushed_and_built

# podman runs containers where the machine lets it: crun refuses hybrid cgroups, so runc is
# tried next. A machine that runs none still runs the image's command from a mounted copy.
podrt() {  # podrt RUNTIME CMD ARGS...: podman with that OCI runtime, in the private environment
  local runtime=$1; shift
  "${CT_ENV[@]}" podman --root "$WORK/storage" --runroot "$WORK/run/storage" --storage-driver vfs \
    --runtime "$runtime" "$@"
}
# The app is the container's PID 1, which ignores SIGTERM: remove the container outright.
stop_flask() {
  local runtime
  for runtime in crun runc; do
    command -v "$runtime" >/dev/null && podrt "$runtime" rm -f -t 0 "flask-$runtime" >/dev/null 2>&1
  done
  return 0
}
served() {
  pod pull "$REG/$REPO:latest" >/dev/null
  local port answer runtime flask
  port=$(free_port)
  for runtime in crun runc; do
    command -v "$runtime" >/dev/null || continue
    podrt "$runtime" run --rm --name "flask-$runtime" --network host -e PORT="$port" \
      "$REG/$REPO:latest" >"$WORK/flask.log" 2>&1 &
    flask=$!
    for _ in $(seq 240); do
      answer=$(curl -s "http://127.0.0.1:$port/" || true)
      [[ -n $answer ]] && break
      kill -0 "$flask" 2>/dev/null || break
      sleep 0.5
    done
    [[ -n $answer ]] && break
    stop_flask
    kill_tree "$flask"
    echo "podman --runtime $runtime could not run it:"; cat "$WORK/flask.log"
  done
  if [[ -z $answer ]]; then
    echo "!!! this machine runs no containers: running the image's command from a mounted copy"
    local mount
    mount=$(pod image mount "$REG/$REPO:latest")
    (cd / && PORT=$port chroot "$mount" /bin/sh -c 'cd /app && exec python app.py') >"$WORK/flask.log" 2>&1 &
    flask=$!
    for _ in $(seq 240); do
      answer=$(curl -s "http://127.0.0.1:$port/" || true)
      [[ -n $answer ]] && break
      sleep 0.5
    done
  fi
  stop_flask
  kill_tree "$flask"
  echo "answer: $answer"
  same "$(jq -c . <<<"$answer")" '{"message":"Hello Hub"}'
}
check podman-run-answers-hello-hub served
stop_flask

finish
