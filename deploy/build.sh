#!/usr/bin/env bash
# The image's build step, shared with the host check (deploy/check.sh):
# builds the qsign binary from the locked dependencies and installs it as
# OUT (default /usr/local/bin/qsign). QSIGN_PROFILE=dev builds the debug
# binary instead (the host check's default, to reuse `cargo test`'s build).
set -euo pipefail
out=${1:-/usr/local/bin/qsign}
profile=${QSIGN_PROFILE:-release}
cd "$(dirname "$0")/.."
cargo build --locked --profile "$profile" --bin qsign
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
install -D -m 0755 "target/$dir/qsign" "$out"
