#!/usr/bin/env bash
# The Hub through real clients: `podman search` against Berth's /v1/search (anonymous
# callers find the public repository and never the private one), a description set through
# the JSON API showing in podman's results, registry credentials on /v1/search, and a
# podman pull counted in the repository's pull count once the pull recorder has flushed.
# Berth only: Distribution has no search.
# shellcheck disable=SC2016,SC2034  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"
if [[ -n ${REGISTRY_URL:-} || ${INTEROP_REGISTRY:-berth} != berth ]]; then
  echo "skipped: the hub suite needs a Berth it starts itself"
  FINISHED=1
  exit 0
fi
start_registry
anon() { AUTH_FILE=$NOAUTH "$@"; }

IMG=$WORK/img
python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed hub-1 --tag v1 >/dev/null
PUBLIC=$NS/findable-public
PRIVATE=$NS/findable-private
DESCRIPTION="Found by podman search"

check push-public sko copy "oci:$IMG:v1" "docker://$REG/$PUBLIC:v1"
check push-private sko copy "oci:$IMG:v1" "docker://$REG/$PRIVATE:v1"

# api METHOD PATH [JSON]: the JSON API as the site admin.
api() {
  acurl -fsS -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "http://$REG/api/v1/$2"
}
publish() {
  api PATCH "repositories/$PUBLIC" "{\"is_private\": false, \"description\": \"$DESCRIPTION\"}" |
    jq -e '.is_private == false'
  api GET "repositories/$PRIVATE" | jq -e '.is_private == true'
}
check make-one-public publish

# podman asks /v1/search without credentials, so what it lists is what anyone may read.
search_anonymous() {
  anon pod search --tls-verify=false --format '{{.Name}}' "$REG/findable" >"$WORK/found"
  cat "$WORK/found"
  grep -Fx "$REG/$PUBLIC" "$WORK/found"
  ! grep -F "findable-private" "$WORK/found"
}
check podman-search-shows-public-only search_anonymous

search_json() {
  anon pod search --tls-verify=false --format json "$REG/findable-public" >"$WORK/found.json"
  cat "$WORK/found.json"
  jq -e --arg name "$REG/$PUBLIC" --arg d "$DESCRIPTION" \
    'length == 1 and .[0].Name == $name and .[0].Description == $d and .[0].Stars == 0' \
    "$WORK/found.json"
}
check podman-search-json search_json

search_limit() {
  anon pod search --tls-verify=false --limit 1 --format '{{.Name}}' "$REG/$NS" >"$WORK/limited"
  cat "$WORK/limited"
  same "$(wc -l <"$WORK/limited")" 1
}
check podman-search-limit search_limit

search_nothing() {
  anon pod search --tls-verify=false --format '{{.Name}}' "$REG/no-such-thing" >"$WORK/none"
  same "$(cat "$WORK/none")" ""
}
check podman-search-no-match search_nothing

# The same endpoint with registry credentials: the admin also finds the private one.
search_signed_in() {
  acurl -fsS "http://$REG/v1/search?q=findable&n=10" >"$WORK/v1.json"
  cat "$WORK/v1.json"
  jq -e '.num_results == 2 and .page_size == 10 and .page == 1 and .query == "findable"
    and ([.results[].name] | sort) == (["findable-private", "findable-public"] | map("'"$NS"'/" + .))
    and all(.results[]; .is_automated == false and (.star_count | type == "number"))' "$WORK/v1.json"
  same "$(curl -s -o /dev/null -w '%{http_code}' -u admin:wrong "http://$REG/v1/search?q=x")" 401
  same "$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v1/search?q=x&n=101")" 400
}
check v1-search-with-credentials search_signed_in

# Pulls are written in batches every few seconds; the count shows up after the next one.
pull_counted() {
  anon pod pull --quiet "$REG/$PUBLIC:v1" >/dev/null
  local count i
  for i in $(seq 40); do
    count=$(api GET "repositories/$PUBLIC" | jq -r .pull_count)
    ((count >= 1)) && break
    sleep 0.25
  done
  same "$count" 1
  api GET "repositories/$PUBLIC" | jq -e '.last_pulled | type == "string"'
}
check podman-pull-counted pull_counted

# Pulls still in memory when the server stops are written on the way out: pull, stop at
# once (well before the next periodic flush), start again on the same data.
anon pod pull --quiet "$REG/$PUBLIC:v1" >/dev/null
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
BERTH_ADMIN_PASSWORD=$ADMIN_PASSWORD \
  "$BERTH" serve --listen "$REG" --data-dir "$DATA" >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  case $(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/") in 200 | 401) break ;; esac
  sleep 0.2
done
check pulls-written-at-shutdown eval 'same "$(api GET "repositories/$PUBLIC" | jq -r .pull_count)" 2'

finish
