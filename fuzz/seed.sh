#!/usr/bin/env bash
# Fills fuzz/corpus/TARGET/ (git-ignored) for `cargo fuzz run TARGET`: the
# PDFs of ../shared/corpus for pdf_reader, fuzz/seeds/TARGET/ for the others
# (made by make-seeds.sh), and every earlier finding in fuzz/regressions/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${QSIGN_SHARED_CORPUS:-$here/../../shared/corpus}
for target in pdf_reader activation_token timestamp_request ocsp_request; do
  mkdir -p "$here/corpus/$target"
  [ -d "$here/seeds/$target" ] && cp -n "$here/seeds/$target"/* "$here/corpus/$target/"
  [ -d "$here/regressions/$target" ] && cp -n "$here/regressions/$target"/* "$here/corpus/$target/"
done
cp -n "$shared"/*.pdf "$here/corpus/pdf_reader/"
ls "$here/corpus"/* | wc -l | xargs echo "seed files:"
