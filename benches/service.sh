#!/usr/bin/env bash
# The service as deployed, in one run: a release `qsign serve` (development
# configuration: SQLite, audit log and replay cache on) and a load generator
# in another process (benches/service.rs, release). Prints the HSM ceiling,
# then every service figure as a ratio of it. Asserts nothing; long (~2-3
# min), so it is not part of `cargo test`.
#
#   benches/service.sh [SECONDS_PER_ROW [CONCURRENCIES]]   (default 5, 1,4,16)
#   QSIGN_BENCH_OPS=bb,bt,pdf,open,rsa: which rows (default all); the rsa
#   rows run again against a server with `[hsm.key_pool] rsa2048 = 8`;
#   QSIGN_BENCH_POSTGRES=1: the same rows again against a throw-away
#   PostgreSQL (initdb/pg_ctl as in tests/support/postgres.rs; needs them).
#
# Only the per-caller rate and concurrency limits of the generated
# configuration are raised (the load comes from one address).
set -euo pipefail
seconds=${1:-5}
conc=${2:-1,4,16}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); server=; pg=; tsa_port=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [ -n "$pg" ] && $pg
  rm -rf "$work"
}
trap cleanup EXIT
cd "$here"
cargo build --release --quiet --bin qsign
cargo bench --quiet --bench service --no-run 2>/dev/null
qsign="$here/target/release/qsign"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {  # state dir; sets $server, $addr, $tsa_port
  local port
  port=$(free_port); tsa_port=$(free_port); addr="127.0.0.1:$port"
  "$qsign" serve --state-dir "$1" --listen "$addr" --tsa-listen "127.0.0.1:$tsa_port" \
      2>"$1.log" & server=$!
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "server did not start:" >&2; cat "$1.log" >&2; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }

state="$work/state"
start "$state"; stop     # first start makes the state directory
sed -i -e 's/^requests_per_second_per_caller = .*/requests_per_second_per_caller = 1000000/' \
       -e 's/^concurrent_requests_per_caller = .*/concurrent_requests_per_caller = 1024/' \
       "$state/qsign.toml"
start "$state"
echo "qsign service benchmark, $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --quiet --bench service -- --addr "$addr" --pid "$server" --state "$state" \
    --seconds "$seconds" --conc "$conc" --label sqlite ${QSIGN_BENCH_OPS:+--ops "$QSIGN_BENCH_OPS"}
stop

if [ -z "${QSIGN_BENCH_OPS:-}" ] || [[ ",$QSIGN_BENCH_OPS," == *,rsa,* ]]; then
  pool=8
  sed -i "s/^rsa2048 = 0\$/rsa2048 = $pool/" "$state/qsign.toml"
  grep -q "^rsa2048 = $pool\$" "$state/qsign.toml" || { echo "no [hsm.key_pool] in qsign.toml" >&2; exit 1; }
  start "$state"
  cargo bench --quiet --bench service -- --addr "$addr" --pid "$server" --state "$state" \
      --seconds "$seconds" --conc "$conc" --label pooled --no-loop --ops rsa \
      --key-pool "$pool" --metrics "http://127.0.0.1:$tsa_port/metrics"
  stop
  sed -i "s/^rsa2048 = $pool\$/rsa2048 = 0/" "$state/qsign.toml"
fi

if [ -n "${QSIGN_BENCH_POSTGRES:-}" ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pgdir=$(mktemp -d /tmp/qsign-bench-pg-XXXXXX); pgport=$(free_port)
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  [ "$(id -u)" = 0 ] && chown postgres "$pgdir"
  as_pg "$bin/initdb" -D "$pgdir/data" -U postgres -A trust >/dev/null
  as_pg "$bin/pg_ctl" -D "$pgdir/data" -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" \
      -l "$pgdir/log" -w start >/dev/null
  pg="pgstop"
  pgstop() { as_pg "$bin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null 2>&1; rm -rf "$pgdir"; }
  sed -i "s|^url = \"sqlite://qsign.db\"|url = \"postgres://postgres@127.0.0.1:$pgport/postgres\"|" "$state/qsign.toml"
  start "$state"
  cargo bench --quiet --bench service -- --addr "$addr" --pid "$server" --state "$state" \
      --seconds "$seconds" --conc "$conc" --label postgres --no-loop ${QSIGN_BENCH_OPS:+--ops "$QSIGN_BENCH_OPS"}
  stop
fi
