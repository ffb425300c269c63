#!/usr/bin/env python3
"""pyHanko's ETSI EN 319 102-1 §5.6.3 long-term validation (LTA) of the last
/Sig signature of a PDF, with revocation data REQUIRED for every certificate
of every path and nothing fetched: only the /DSS and the signature's own data
count — the validator that "insists on revocation data for every
certificate". At the machine's current time (run it under faketime to
validate after the certificate expired). Prints a JSON verdict; exit 0 only
when the indication is PASSED.

pades_lta_strict.py SIGNED.pdf --root ROOT.pem [--root ...]
"""
import argparse
import asyncio
import io
import json
import logging
import sys
from pathlib import Path

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.policy_decl import PdfSignatureValidationSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import validation_spec  # noqa: E402



def main():
    logging.disable(logging.CRITICAL)  # pyHanko logs every failed path attempt
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('signed')
    ap.add_argument('--root', action='append', required=True)
    a = ap.parse_args()
    reader = PdfFileReader(io.BytesIO(Path(a.signed).read_bytes()), strict=False)
    signature = [s for s in reader.embedded_signatures if s.sig_object_type == '/Sig'][-1]
    spec = validation_spec(a.root, 'require')
    result = asyncio.run(ades.ades_lta_validation(signature, PdfSignatureValidationSpec(spec)))
    sub = result.ades_subindic
    verdict = {'procedure': 'EN 319 102-1 5.6.3 LTA', 'revocation': 'require',
               'indication': sub.status.name, 'subindication': sub.standard_name,
               'failure': result.failure_msg}
    print(json.dumps(verdict, indent=2))
    sys.exit(0 if sub.status.name == 'PASSED' else 1)


if __name__ == '__main__':
    main()
