#!/usr/bin/env bash
# Behind a reverse proxy: Debian's nginx (run as this user from a temp prefix) in front of
# berth, which trusts only the proxy's address. skopeo and podman push (a large blob
# included) and pull through it, and the audit log and the sign-in throttle see the client
# nginx forwards for, not nginx; a client's own X-Forwarded-For changes nothing.
# Berth only: it starts its own server.
# shellcheck disable=SC2016,SC2034  # `check NAME eval '...'` expands its text when it runs
source "$(dirname "$0")/lib.sh"

if [[ -n ${REGISTRY_URL:-} || ${INTEROP_REGISTRY:-berth} != berth ]]; then
  echo "skipped: the proxy suite starts its own berth"
  FINISHED=1
  exit 0
fi

# nginx connects to berth from 127.0.0.2, and clients reach nginx on 127.0.0.1 (or an address
# of their choosing): the address berth records tells which one it believed.
PROXY_ADDR=127.0.0.2
REGISTRY_ENV=(BERTH_TRUSTED_PROXIES=$PROXY_ADDR/32)
start_registry
BERTH_REG=$REG

N=$WORK/nginx
mkdir -p "$N"
PROXY_PORT=$(free_port)
run_as=
# As root, nginx would hand its workers to `nobody`, who cannot read this temp dir.
((EUID == 0)) && run_as="user root root;"
cat >"$N/nginx.conf" <<EOF
$run_as
worker_processes 1;
pid $N/nginx.pid;
error_log $N/error.log info;
events { worker_connections 256; }
http {
  access_log $N/access.log;
  client_body_temp_path $N/client_body;
  proxy_temp_path $N/proxy;
  fastcgi_temp_path $N/fastcgi;
  uwsgi_temp_path $N/uwsgi;
  scgi_temp_path $N/scgi;
  upstream berth {
    server $BERTH_REG;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    client_max_body_size 0;
    location / {
      proxy_pass http://berth;
      proxy_bind $PROXY_ADDR;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 900s;
      proxy_send_timeout 900s;
    }
  }
}
EOF
nginx -p "$N" -c "$N/nginx.conf" -e "$N/error.log" -g 'daemon off;' >"$N/stdout.log" 2>&1 &
HELPER_PIDS+=($!)
REG=127.0.0.1:$PROXY_PORT
for i in $(seq 100); do
  case $(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/") in 401) break ;; esac
  ((i < 100)) || { echo "nginx not ready:"; cat "$N/error.log"; exit 1; }
  sleep 0.1
done
# Clients now go through nginx: their configuration and credentials name the proxy.
setup_containers_env

# audit_address ACTION NAME: the address of the newest audit entry of ACTION on NAME, read
# from berth directly.
audit_address() {
  acurl -fsS "http://$BERTH_REG/api/v1/auditlogs?limit=100" |
    jq -r --arg a "$1" --arg n "$2" '[.logs[] | select(.action == $a and .name == $n)][0].address'
}

IMG=$WORK/img
# 32 MiB layers: far past nginx's default 1 MiB body limit and its buffers.
one=$(python3 "$INTEROP_DIR/mkimage.py" "$IMG" --seed proxy-1 --tag v1 --layer-size 33554432)
digest=$(jq -r .digest <<<"$one")
config=$(jq -r .images[0].config <<<"$one")
R=docker://$REG/$NS/proxied

check realm-names-the-proxy eval 'curl -sS -D "$WORK/h" -o /dev/null "http://$REG/v2/" && has_header "$WORK/h" "www-authenticate: Bearer realm=\"http://$REG/token\",service=\"berth\""'
check skopeo-push-big-blob sko copy "oci:$IMG:v1" "$R:v1"
skopeo_pull() {
  sko copy "$R:v1" "oci:$WORK/out:v1"
  same "$(jq -r '.manifests[0].digest' "$WORK/out/index.json")" "$digest"
  for f in "$WORK/out/blobs/sha256/"*; do cmp "$f" "$IMG/blobs/sha256/${f##*/}"; done
}
check skopeo-pull-identical skopeo_pull
podman_round_trip() {
  pod pull "$R:v1"
  same "$(pod image inspect --format '{{.Id}}' "$REG/$NS/proxied:v1")" "${config#sha256:}"
  pod push "$REG/$NS/proxied:v1" "$R:from-podman"
  pod rmi -af >/dev/null
  pod pull "$R:from-podman"
  same "$(pod image inspect --format '{{.Id}}' "$REG/$NS/proxied:from-podman")" "${config#sha256:}"
}
check podman-pull-push-through-proxy podman_round_trip

# skopeo reaches nginx from 127.0.0.1 and nginx reaches berth from 127.0.0.2.
delete_audited() {
  sko delete "$R:from-podman"
  local recorded
  recorded=$(acurl -fsS "http://$BERTH_REG/api/v1/auditlogs?limit=100" |
    jq -r --arg n "$NS/proxied" '[.logs[] | select((.action | endswith(".delete")) and (.name | startswith($n)))][0].address')
  same "$recorded" 127.0.0.1
}
check audit-records-forwarded-client delete_audited

# A client on 127.0.0.9 that sends its own X-Forwarded-For: nginx appends the address it
# saw, and berth takes that one, the right-most that is not the proxy.
spoofed_login() {
  curl -sS --interface 127.0.0.9 -H 'X-Forwarded-For: 203.0.113.66' -u 'mallory-proxy:wrong' \
    -o /dev/null "http://$REG/token?service=berth"
  same "$(audit_address login.failure mallory-proxy)" 127.0.0.9
}
check spoofed-forwarded-for-is-not-believed spoofed_login

# Six wrong passwords from one client through nginx: the sixth is held back (the throttle
# keys on the client), while another client behind the same nginx signs in at once.
throttled() {
  local i start took
  for i in 1 2 3 4 5; do
    curl -s --interface 127.0.0.10 -u admin:wrong -o /dev/null "http://$REG/token?service=berth"
  done
  start=$(date +%s%N)
  curl -s --interface 127.0.0.10 -u admin:wrong -o /dev/null "http://$REG/token?service=berth"
  took=$((($(date +%s%N) - start) / 1000000))
  ((took >= 900)) || { echo "sixth failure answered in ${took}ms"; return 1; }
  start=$(date +%s%N)
  same "$(curl -s --interface 127.0.0.11 -u "$ADMIN_CREDS" -o /dev/null -w '%{http_code}' "http://$REG/token?service=berth")" 200
  took=$((($(date +%s%N) - start) / 1000000))
  ((took < 900)) || { echo "another client was held ${took}ms"; return 1; }
}
check throttle-per-forwarded-client throttled

# Straight to berth from an address it does not trust, the same header changes nothing.
direct_spoof() {
  curl -sS --interface 127.0.0.12 -H 'X-Forwarded-For: 203.0.113.67' -u 'mallory-direct:wrong' \
    -o /dev/null "http://$BERTH_REG/token?service=berth"
  same "$(audit_address login.failure mallory-direct)" 127.0.0.12
}
check direct-forwarded-for-ignored direct_spoof

finish
