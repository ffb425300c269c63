#!/usr/bin/env bash
# benches/pg-commit.sh: the commit latency of a throw-away PostgreSQL (as benches/service.sh makes it) at
# the rate of the service's half-maximum row: two single-row commits a signature.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir=$(mktemp -d /tmp/qsign-pgb-XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres "$pgdir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$bin/initdb" -D "$pgdir/data" -U postgres -A trust >/dev/null
as_pg "$bin/pg_ctl" -D "$pgdir/data" -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null; rm -rf "$pgdir"' EXIT
psql -q -h 127.0.0.1 -p $port -U postgres -c "CREATE TABLE t (id bigserial primary key, v bytea)"
echo "INSERT INTO t (v) VALUES (decode(repeat('ab', 300), 'hex'));" > "$pgdir/one.sql"
cd "$pgdir"
for rate in 20 1888; do
  pgbench -n -h 127.0.0.1 -p $port -U postgres -f one.sql -c 8 -j 2 -R $rate -T 10 -l --log-prefix=lat$rate postgres >/dev/null 2>&1 || true
  cat lat$rate.* | awk '{print $3/1000}' | sort -n | awk -v r=$rate '{a[NR]=$1} END {printf "rate %s/s: %d commits, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", r, NR, a[int(NR*0.5)], a[int(NR*0.99)], a[NR]}'
done
