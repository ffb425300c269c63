#!/bin/sh
# Makes the token `qsign` once (user PIN from the hsm_pin secret), then
# serves it on /run/p11/hsm.sock (p11-kit server, foreground).
set -eu
module=$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -1)
if ! softhsm2-util --show-slots | grep -q 'Label:[[:space:]]*qsign[[:space:]]*$'; then
  softhsm2-util --init-token --free --label qsign \
    --so-pin "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    --pin "$(cat /run/secrets/hsm_pin)"
fi
exec p11-kit server --foreground --provider "$module" \
  --name /run/p11/hsm.sock "pkcs11:token=qsign"
