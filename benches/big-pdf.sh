#!/usr/bin/env bash
# The CLI on a big PDF: peak RSS and speed of `qsign sign-pdf` (hash-only,
# streaming) against `openssl dgst -sha256` of the same file, in one run.
# Prints figures and the ratio; asserts nothing.
#
#   benches/big-pdf.sh [SIZE_MB [LEVEL]]   (default 1024, the server's level)
#
# LEVEL (b-b, b-t, b-lt, b-lta) is passed to sign-pdf: b-lt and b-lta add the
# client-written /DSS and document time-stamp updates.
#
# The PDF is one page with an image XObject of SIZE_MB megabytes. The
# signed output is checked with pdfsig when poppler is installed.
set -euo pipefail
size_mb=${1:-1024}
level=(); [ -n "${2:-}" ] && level=(--level "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); server=; trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
qsign="$here/target/release/qsign"

python3 - "$work/big.pdf" "$size_mb" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
n = mb << 20
chunk = bytes(range(256)) * 4096
with open(path, 'wb') as f:
    offsets = []
    f.write(b'%PDF-1.7\n%\xe2\xe3\xcf\xd3\n')
    def obj(body):
        offsets.append(f.tell())
        f.write(b'%d 0 obj\n' % len(offsets) + body + b'\nendobj\n')
    obj(b'<< /Type /Catalog /Pages 2 0 R >>')
    obj(b'<< /Type /Pages /Kids [3 0 R] /Count 1 >>')
    obj(b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>')
    content = b'q 595 0 0 842 0 0 cm /Im1 Do Q'
    obj(b'<< /Length %d >>\nstream\n' % len(content) + content + b'\nendstream')
    side = int((n / 3) ** 0.5)
    length = side * side * 3
    offsets.append(f.tell())
    f.write(b'5 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length %d >>\nstream\n' % (side, side, length))
    left = length
    while left:
        k = min(left, len(chunk)); f.write(chunk[:k]); left -= k
    f.write(b'\nendstream\nendobj\n')
    xref = f.tell()
    f.write(b'xref\n0 %d\n0000000000 65535 f \n' % (len(offsets) + 1))
    for o in offsets: f.write(b'%010d 00000 n \n' % o)
    f.write(b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(offsets) + 1, xref))
PY
bytes=$(stat -c %s "$work/big.pdf")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tsa_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$qsign" serve --state-dir "$work/state" --listen "127.0.0.1:$port" --tsa-listen "127.0.0.1:$tsa_port" 2>/dev/null & server=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

cat "$work/big.pdf" > /dev/null   # both runs read from the page cache
best() { sort -n | head -1; }
openssl_s=$(for _ in 1 2 3; do /usr/bin/time -f %e openssl dgst -sha256 "$work/big.pdf" 2>&1 >/dev/null; done | best)
run_qsign() {  # extra flags; prints "seconds max-rss-kb" per run
  for _ in 1 2 3; do
    rm -f "$work/out.pdf"
    /usr/bin/time -f '%e %M' "$qsign" sign-pdf "$work/big.pdf" -o "$work/out.pdf" "${level[@]}" "$@" \
        --server "http://127.0.0.1:$port" --dev-identity "Bench Marker" --state-dir "$work/state" 2>&1 >/dev/null | tail -1
  done
}
durable_s=$(run_qsign --durable | awk '{print $1}' | best)
qsign_runs=$(run_qsign)
[ -s "$work/out.pdf" ] || { echo "qsign sign-pdf failed: $qsign_runs" >&2; exit 1; }
qsign_s=$(echo "$qsign_runs" | awk '{print $1}' | best)
rss_kb=$(echo "$qsign_runs" | awk '{print $2}' | sort -n | tail -1)
awk -v b="$bytes" -v o="$openssl_s" -v q="$qsign_s" -v r="$rss_kb" -v d="$durable_s" 'BEGIN {
  mib = b / 1048576
  printf "file: %.0f MiB\n", mib
  printf "openssl dgst -sha256: %.2f s (%.0f MiB/s)\n", o, mib / o
  printf "qsign sign-pdf:       %.2f s (%.0f MiB/s), peak RSS %.1f MB\n", q, mib / q, r / 1024
  printf "speed ratio qsign/openssl: %.2f (target >= 0.80); best of 3 each\n", o / q
  printf "with --durable (fsync of the 1 GiB output): %.2f s, ratio %.2f\n", d, o / d
}'
if command -v pdfsig >/dev/null; then
  allow=(); [ "${2:-}" = b-lta ] && allow=(--allow-doc-timestamps)
  bash "$here/../shared/validate/pdfsig_check.sh" "${allow[@]}" "$work/out.pdf" "$work/state/root-ca.pem" | tail -1
fi
