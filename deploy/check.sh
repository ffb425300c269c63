#!/usr/bin/env bash
# Checks deploy/ without a container runtime (no base image can be pulled
# here): hadolint on the Dockerfiles, kubernetes-validate on the manifests,
# the compose file against the Compose specification's JSON schema, then
# the image's build step (deploy/build.sh) and run step (USER 10001, CMD
# `serve --config`) by the same commands on this host.
#
#   deploy/check.sh            build with QSIGN_PROFILE=dev (reuses `cargo test`'s build)
#   QSIGN_PROFILE=release deploy/check.sh    exactly the image's build
#
# The linters come from softhsm/setup.sh --verifiers (the validators' venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${QSIGN_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qsign-validate}
py=$venv/bin/python
tmp=$(mktemp -d); server=
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

echo "== hadolint"
"$venv/bin/hadolint" --config "$here/.hadolint.yaml" "$here/Dockerfile" "$here/hsm-dev.Dockerfile"

echo "== kubernetes-validate"
"$venv/bin/kubernetes-validate" --strict "$here"/k8s/*.yaml

echo "== compose schema"
"$py" "$here/check_compose.py" "$here/compose.yaml"

echo "== build step (QSIGN_PROFILE=${QSIGN_PROFILE:=dev})"
QSIGN_PROFILE=$QSIGN_PROFILE "$here/build.sh" "$tmp/bin/qsign"

echo "== run step (as uid 10001, serve --config)"
ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
read -r grpc http <<<"$ports"
state=$tmp/state
# The development state stands in for the operator's configuration and token.
timeout 60 "$tmp/bin/qsign" serve --state-dir "$state" --listen "127.0.0.1:$grpc" \
  --tsa-listen "127.0.0.1:$http" >"$tmp/init.log" 2>&1 &
server=$!
for _ in $(seq 60); do grep -q "qsign serving" "$tmp/init.log" && break; sleep 1; done
kill "$server"; wait "$server" 2>/dev/null || true; server=
as_user=()
if [ "$(id -u)" = 0 ]; then
  chown -R 10001:10001 "$state"; chmod 0755 "$tmp" "$tmp/bin"
  as_user=(setpriv --reuid=10001 --regid=10001 --clear-groups)
fi
QSIGN_LOG_FORMAT=json "${as_user[@]}" "$tmp/bin/qsign" serve --config "$state/qsign.toml" \
  --listen "127.0.0.1:$grpc" --tsa-listen "127.0.0.1:$http" >"$tmp/serve.log" 2>&1 &
server=$!
for _ in $(seq 60); do grep -q '"qsign serving"' "$tmp/serve.log" && break; sleep 1; done
grep -q '"qsign serving"' "$tmp/serve.log" || { cat "$tmp/serve.log"; exit 1; }
"$py" - "$http" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10) as r:
    assert r.status == 200 and b"qsign_hsm_sessions_busy" in r.read()
    assert r.headers["x-request-id"]
PY
echo "deploy: all checks passed"
