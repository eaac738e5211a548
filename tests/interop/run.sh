#!/usr/bin/env bash
# Run the interop suites (default: all), each against its own fresh registry, and close
# with the one "N passed, N failed" line. See lib.sh for the environment it honours.
set -euo pipefail
here=$(dirname "$0")
results=$(mktemp)
trap 'rm -f "$results"' EXIT
export INTEROP_RESULTS=$results

suites=("$@")
((${#suites[@]})) || suites=(skopeo podman oras auth hub webhooks tls proxy immutable ratelimit mirror signatures replication builds build-flask)
for s in "${suites[@]}"; do
  echo "== $s (${REGISTRY_URL:-${INTEROP_REGISTRY:-berth}}${INTEROP_STORAGE:+ on $INTEROP_STORAGE}${INTEROP_CLUSTER:+, 3 nodes behind haproxy})"
  # Suites record their own failures, aborts included; this catches one that died
  # without getting to say so.
  if ! bash "$here/$s.sh" && ! grep -q "^FAIL $s/" "$results"; then
    echo "FAIL $s/(exited non-zero)" | tee -a "$results"
  fi
done

passed=$(grep -c '^PASS' "$results" || true)
failed=$(grep -c '^FAIL' "$results" || true)
echo "$passed passed, $failed failed"
((failed == 0 && passed > 0))
