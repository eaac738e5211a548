#!/usr/bin/env bash
# Access control, driven by the real clients: the Docker token-auth challenge and /token,
# podman login/logout, users created with the admin CLI pushing into their own namespace
# and not into others', private repositories invisible to others, personal access tokens
# (scopes, repository limits, revocation) as passwords for skopeo and oras-py, the
# `library` namespace for bare names, and a repository made public with the CLI.
# Berth only: needs the admin CLI on the data dir of a registry this script started.
# shellcheck disable=SC2016,SC2034  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
PY=${ORAS_PYTHON:-$ROOT/target/interop-venv/bin/python}
"$PY" -c 'import oras' || { echo "no oras-py in $PY: run scripts/test to create the venv" >&2; exit 1; }
if [[ -n ${REGISTRY_URL:-} || ${INTEROP_REGISTRY:-berth} != berth ]]; then
  echo "skipped: the auth suite needs a Berth it starts itself (admin CLI on its data dir)"
  FINISHED=1
  exit 0
fi
start_registry

ALICE_PW=alice-Pw-1
BOB_PW=bob-Pw-1
ALICE=alice:$ALICE_PW
BOB=bob:$BOB_PW
berth() { "$BERTH" --data-dir "$DATA" "$@"; }
orasctl() { HOME=$WORK/home "$PY" "$INTEROP_DIR/orasctl.py" "$@"; }
anon() { AUTH_FILE=$NOAUTH "$@"; }

# refused CMD...: CMD must fail, and for a reason a registry gives (not e.g. a typo or a
# connection error): an auth error, or "unknown" for what must look missing.
refused() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out"
  if ((rc == 0)); then echo "unexpectedly succeeded: $*"; return 1; fi
  grep -Eiq 'unauthori[sz]ed|invalid username/password|authentication required|denied|forbidden|(manifest|name|blob|repository) unknown|status (401|403|404)|\b(401|403|404)\b' <<<"$out" ||
    { echo "failed, but not with an auth or not-found error"; return 1; }
}

# JWT payload (base64url, unpadded) as JSON.
jwt_claims() {
  local p
  p=$(cut -d. -f2 <<<"$1" | tr '_-' '/+')
  while ((${#p} % 4)); do p+="="; done
  base64 -d <<<"$p"
}

IMG=$WORK/img
one=$(python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed auth-1 --tag v1)
two=$(python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed auth-2 --tag v2)
digest=$(jq -r .digest <<<"$one")
digest2=$(jq -r .digest <<<"$two")
SRC=oci:$IMG:v1
SRC2=oci:$IMG:v2
D=docker://$REG

# --- The challenge and the token endpoint, as curl sees them ------------------------------

REALM="Bearer realm=\"http://$REG/token\",service=\"berth\""
# challenge METHOD PATH [SCOPE]: anonymous METHOD gets 401 UNAUTHORIZED with the challenge.
challenge() {
  curl -sS -X "$1" -D "$WORK/ch.h" -o "$WORK/ch.body" -w '%{http_code}' "http://$REG$2" >"$WORK/ch.status"
  same "$(cat "$WORK/ch.status")" 401
  has_header "$WORK/ch.h" "www-authenticate: $REALM${3:+,scope=\"$3\"}"
  [[ $1 == HEAD ]] || jq -e '.errors[0].code == "UNAUTHORIZED"' "$WORK/ch.body"
}
check challenge-v2 challenge GET /v2/
check challenge-pull-scope challenge GET "/v2/$NS/x/manifests/latest" "repository:$NS/x:pull"
check challenge-push-scope challenge POST "/v2/$NS/x/blobs/uploads/" "repository:$NS/x:pull,push"

basic_v2() {
  same "$(curl -s -o /dev/null -w '%{http_code}' -u "$ADMIN_CREDS" "http://$REG/v2/")" 200
  same "$(curl -s -o /dev/null -w '%{http_code}' -u admin:wrong "http://$REG/v2/")" 401
}
check basic-credentials-on-v2 basic_v2

token_get() {
  curl -fsS -u "$ADMIN_CREDS" -o "$WORK/tok.json" \
    "http://$REG/token?service=berth&scope=repository:$NS/x:pull,push"
  cat "$WORK/tok.json"; echo
  jq -e '(.token | type == "string") and (.access_token | type == "string")
    and (.expires_in | type == "number") and (.issued_at | type == "string")' "$WORK/tok.json"
  same "$(jq -r .token "$WORK/tok.json")" "$(jq -r .access_token "$WORK/tok.json")"
  local t claims
  t=$(jq -r .token "$WORK/tok.json")
  claims=$(jwt_claims "$t")
  echo "$claims"
  jq -e --arg r "$NS/x" '(.sub | type == "string") and .aud == "berth" and (.exp | type == "number")
    and ([.access[] | select(.type == "repository" and .name == $r) | .actions[]] | contains(["pull", "push"]))' <<<"$claims"
  # The client then presents it as a bearer token.
  same "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" "http://$REG/v2/")" 200
}
check token-get-with-basic token_get
check token-get-wrong-password eval \
  'same "$(curl -s -o /dev/null -w "%{http_code}" -u admin:wrong "http://$REG/token?service=berth&scope=repository:$NS/x:pull")" 401'

token_post() {
  curl -fsS -o "$WORK/post.json" -d grant_type=password -d username=admin \
    --data-urlencode "password=$ADMIN_PASSWORD" -d service=berth -d client_id=interop \
    -d "scope=repository:$NS/x:pull" -d access_type=offline "http://$REG/token"
  cat "$WORK/post.json"; echo
  jq -e '(.access_token | type == "string") and (.refresh_token | type == "string")
    and (.expires_in | type == "number") and (.issued_at | type == "string")' "$WORK/post.json"
  curl -fsS -o "$WORK/refresh.json" -d grant_type=refresh_token \
    --data-urlencode "refresh_token=$(jq -r .refresh_token "$WORK/post.json")" \
    -d service=berth -d client_id=interop -d "scope=repository:$NS/x:pull" "http://$REG/token"
  cat "$WORK/refresh.json"; echo
  local t
  t=$(jq -r .access_token "$WORK/refresh.json")
  same "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" "http://$REG/v2/")" 200
}
check token-post-password-then-refresh token_post

# --- podman login / logout ------------------------------------------------------------------

login_logout() {
  local f=$WORK/podman-auth.json
  echo "{}" >"$f"
  AUTH_FILE=$f pod login -u admin --password-stdin "$REG" <<<"$ADMIN_PASSWORD"
  same "$(jq -r --arg r "$REG" '.auths[$r].auth' "$f" | base64 -d)" "$ADMIN_CREDS"
  AUTH_FILE=$f pod logout "$REG"
  same "$(jq -c --arg r "$REG" '.auths[$r]' "$f")" null
}
check podman-login-logout login_logout
wrong_login() {
  local f=$WORK/podman-wrong.json
  echo "{}" >"$f"
  AUTH_FILE=$f refused pod login -u admin --password-stdin "$REG" <<<"not-the-password"
  same "$(jq -c --arg r "$REG" '.auths[$r]' "$f")" null
}
check podman-login-wrong-password wrong_login

# --- Users: own namespace yes, others' no; private means invisible ------------------------

users() {
  berth user create alice --password-stdin <<<"$ALICE_PW"
  berth user create bob --password-stdin <<<"$BOB_PW"
}
check cli-user-create users

check alice-push-own-namespace sko copy --dest-creds "$ALICE" "$SRC" "$D/alice/app:v1"
check alice-inspect-own eval 'same "$(sko inspect --creds "$ALICE" "$D/alice/app:v1" | jq -r .Digest)" "$digest"'
check anonymous-inspect-private-refused anon refused sko inspect "$D/alice/app:v1"
check bob-inspect-alice-private-refused refused sko inspect --creds "$BOB" "$D/alice/app:v1"

# What the registry says about manifest $2 of repository $1 to caller $3 (curl args),
# with the repository name masked: it must not tell a private repository from a missing one.
answer() {
  curl -s -D "$WORK/a.h" -o "$WORK/a.body" -w '%{http_code}' -H "Accept: $MANIFEST_ACCEPT" \
    "${@:3}" "http://$REG/v2/$1/manifests/$2" >"$WORK/a.status"
  printf 'status %s\n' "$(cat "$WORK/a.status")"
  tr -d '\r' <"$WORK/a.h" | grep -i '^www-authenticate:' | sed "s#$1#REPO#g"
  jq -c '[.errors[]? | .code]' "$WORK/a.body" 2>/dev/null || cat "$WORK/a.body"
}
looks_missing() {
  local who
  for who in anonymous bob; do
    local auth=()
    [[ $who == bob ]] && auth=(-u "$BOB")
    same "$(answer alice/app v1 "${auth[@]}")" "$(answer alice/nothing-here v1 "${auth[@]}")"
    same "$(answer alice/app "$digest" "${auth[@]}")" "$(answer alice/nothing-here "$digest" "${auth[@]}")"
  done
}
check private-looks-missing looks_missing

anon_token() {
  curl -fsS -o "$WORK/anon.json" "http://$REG/token?service=berth&scope=repository:alice/app:pull"
  local t
  t=$(jq -r '.token // .access_token' "$WORK/anon.json")
  jwt_claims "$t" | tee "$WORK/anon.claims"; echo
  # Asking for more than allowed is not an error; the grant just leaves it out.
  jq -e '[(.access // [])[] | select(.name == "alice/app") | .actions[]] == []' "$WORK/anon.claims"
  same "$(answer alice/app v1 -H "Authorization: Bearer $t")" "$(answer alice/nothing-here v1 -H "Authorization: Bearer $t")"
}
check anonymous-token-grants-nothing-private anon_token

check alice-push-interop-refused refused sko copy --dest-creds "$ALICE" "$SRC" "$D/$NS/alice-was-here:v1"
check alice-push-into-bob-refused refused sko copy --dest-creds "$ALICE" "$SRC" "$D/bob/app:v1"
# Nothing was created by the refused pushes (the admin sees everything).
check refused-push-left-nothing eval 'refused sko inspect "$D/$NS/alice-was-here:v1" && refused sko inspect "$D/bob/app:v1"'

# --- library: a bare name is library/NAME, public; only the admin pushes there -------------

check library-admin-push-bare-name sko copy "$SRC" "$D/nginx:v1"
library_public() {
  same "$(anon sko inspect "$D/library/nginx:v1" | jq -r .Digest)" "$digest"
  same "$(anon sko inspect "$D/nginx:v1" | jq -r .Digest)" "$digest"
}
check library-anonymous-pull library_public
check alice-push-library-refused refused sko copy --dest-creds "$ALICE" "$SRC2" "$D/nginx:v2"

# --- podman as alice, through podman login ----------------------------------------------------

podman_alice() {
  local f=$WORK/alice-auth.json
  echo "{}" >"$f"
  (cd "$WORK" && pod pull oci:img:v1)
  pod tag "$(jq -r .images[0].config <<<"$one")" localhost/mine:v1
  AUTH_FILE=$f pod login -u alice --password-stdin "$REG" <<<"$ALICE_PW"
  AUTH_FILE=$f pod push localhost/mine:v1 "docker://$REG/alice/podman:v1"
  pod rmi -af >/dev/null
  AUTH_FILE=$f pod pull "$REG/alice/podman:v1"
  same "$(pod image inspect --format '{{.Id}}' "$REG/alice/podman:v1")" "$(jq -r .images[0].config <<<"$one" | cut -d: -f2)"
  pod rmi -af >/dev/null
  AUTH_FILE=$f pod logout "$REG"
  AUTH_FILE=$f refused pod pull "$REG/alice/podman:v1"
}
check podman-login-push-pull-as-alice podman_alice

# --- Personal access tokens ------------------------------------------------------------------

# pat FILE ARGS...: create a token for alice with the CLI, keep its secret in $WORK/FILE.
pat() {
  local f=$WORK/$1; shift
  berth token create alice "$@" >"$f"
  grep -Eq '^berth_pat_[^[:space:]]+$' "$f" || { echo "not a token secret:"; cat "$f"; return 1; }
}
tok() { echo "alice:$(cat "$WORK/$1")"; }

check pat-create pat write.pat --scope repo:write --name interop-write
pat_write() {
  sko copy --dest-creds "$(tok write.pat)" "$SRC" "$D/alice/tok:v1"
  same "$(sko inspect --creds "$(tok write.pat)" "$D/alice/tok:v1" | jq -r .Digest)" "$digest"
  sko copy --src-creds "$(tok write.pat)" "$D/alice/tok:v1" "oci:$WORK/tokout:v1"
  same "$(jq -r '.manifests[0].digest' "$WORK/tokout/index.json")" "$digest"
}
check pat-write-push-and-pull pat_write
# repo:write is read & write; deleting takes repo:admin.
check pat-write-cannot-delete refused sko delete --creds "$(tok write.pat)" "$D/alice/tok:v1"
pat_admin_delete() {
  pat admin.pat --scope repo:admin --name interop-admin
  sko copy --dest-creds "$(tok admin.pat)" "$SRC2" "$D/alice/tok:gone"
  sko delete --creds "$(tok admin.pat)" "$D/alice/tok:gone"
  refused sko inspect --creds "$ALICE" "$D/alice/tok:gone"
}
check pat-admin-can-delete pat_admin_delete

pat_read() {
  pat read.pat --scope repo:read --name interop-read
  same "$(sko inspect --creds "$(tok read.pat)" "$D/alice/tok:v1" | jq -r .Digest)" "$digest"
  refused sko copy --dest-creds "$(tok read.pat)" "$SRC2" "$D/alice/tok:v2"
  refused sko inspect --creds "$ALICE" "$D/alice/tok:v2"
}
check pat-read-pulls-but-cannot-push pat_read

pat_limited() {
  pat other.pat --scope repo:write --repo alice/other --name interop-other
  sko copy --dest-creds "$(tok other.pat)" "$SRC" "$D/alice/other:v1"
  refused sko inspect --creds "$(tok other.pat)" "$D/alice/app:v1"
  refused sko copy --dest-creds "$(tok other.pat)" "$SRC2" "$D/alice/app:v2"
}
check pat-repo-limited pat_limited

pat_public_read() {
  pat public.pat --scope repo:public_read --name interop-public
  same "$(sko inspect --creds "$(tok public.pat)" "$D/library/nginx:v1" | jq -r .Digest)" "$digest"
  refused sko inspect --creds "$(tok public.pat)" "$D/alice/tok:v1"
}
check pat-public-read-only-public pat_public_read

check pat-wrong-secret-refused refused sko inspect --creds "alice:berth_pat_not-a-real-token" "$D/alice/tok:v1"

# token_id LABEL <LIST: the id of the token labelled LABEL in `berth token list` output,
# whose lines begin `ID  "LABEL"  SCOPE ...`.
token_id() { awk -v l="\"$1\"" '$2 == l { print $1 }'; }
if berth token --help 2>/dev/null | grep -qw revoke; then
  revoke() {
    pat revoke.pat --scope repo:write --name interop-revoke
    sko inspect --creds "$(tok revoke.pat)" "$D/alice/tok:v1" >/dev/null
    berth token list alice | tee "$WORK/list.txt"
    local id
    id=$(token_id interop-revoke <"$WORK/list.txt")
    [[ -n $id ]] || { echo "no id for label interop-revoke in the list"; return 1; }
    berth token revoke alice "$id"
    refused sko inspect --creds "$(tok revoke.pat)" "$D/alice/tok:v1"
    # The other tokens still work.
    sko inspect --creds "$(tok write.pat)" "$D/alice/tok:v1" >/dev/null
  }
  check pat-revoked-refused revoke
else
  echo "SKIP $SUITE/pat-revoked-refused: this berth has no \`token revoke\`" | tee -a "$RESULTS"
fi

# --- oras-py with credentials -------------------------------------------------------------------

mkdir -p "$WORK/in"
python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(7).randbytes(100_000))' >"$WORK/in/blob.bin"
ART=application/vnd.example.auth.v1
oras_alice() {
  orasctl --creds "$ALICE" push "$REG/alice/files:v1" "$WORK/in/blob.bin" --artifact-type "$ART"
  orasctl --creds "$ALICE" pull "$REG/alice/files:v1" "$WORK/orasout"
  cmp "$WORK/in/blob.bin" "$WORK/orasout/blob.bin"
}
check oras-push-pull-with-password oras_alice
oras_pat() {
  orasctl --creds "$(tok write.pat)" push "$REG/alice/files:v2" "$WORK/in/blob.bin" --artifact-type "$ART" --chunked
  orasctl --creds "$(tok write.pat)" pull "$REG/alice/files:v2" "$WORK/orasout2"
  cmp "$WORK/in/blob.bin" "$WORK/orasout2/blob.bin"
}
check oras-push-pull-with-token oras_pat
check oras-anonymous-pull-private-refused refused orasctl pull "$REG/alice/files:v1" "$WORK/orasanon"
check oras-push-into-bob-refused refused orasctl --creds "$ALICE" push "$REG/bob/files:v1" "$WORK/in/blob.bin" --artifact-type "$ART"

# --- Making a repository public with the CLI ---------------------------------------------------

if berth repo --help >/dev/null 2>&1; then
  public() {
    berth repo visibility alice/app public
    same "$(anon sko inspect "$D/alice/app:v1" | jq -r .Digest)" "$digest"
    anon sko copy "$D/alice/app:v1" "oci:$WORK/pubout:v1"
    same "$(jq -r '.manifests[0].digest' "$WORK/pubout/index.json")" "$digest"
    same "$(sko inspect --creds "$BOB" "$D/alice/app:v1" | jq -r .Digest)" "$digest"
  }
  check repo-public-anonymous-pull public
  # Public is about reading: writing still takes alice (or the admin).
  check repo-public-anonymous-push-refused anon refused sko copy "$SRC2" "$D/alice/app:v2"
  check repo-public-bob-push-refused refused sko copy --dest-creds "$BOB" "$SRC2" "$D/alice/app:v2"
  private_again() {
    berth repo visibility alice/app private
    anon refused sko inspect "$D/alice/app:v1"
  }
  check repo-private-again private_again
else
  echo "SKIP $SUITE/repo-public-*: this berth has no \`repo visibility\`" | tee -a "$RESULTS"
fi

finish
