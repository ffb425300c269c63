#!/usr/bin/env python3
"""pyHanko's ETSI EN 319 102-1 §5.5 validation with time of a detached CAdES
signature, at the machine's current time (run it under faketime to validate
after the signing certificate expired). Prints a JSON verdict; exit 0 only
when the indication is PASSED.

ades_with_time.py SIG.p7s (CONTENT | --digest-hex HEX) --root ROOT.pem [--root ...]
    [--revocation soft-fail|hard-fail|require]

The shared validate_cms.py validates the certificate at the current time
without the signature time-stamp; this is the procedure that uses it, with
the CRLs and OCSP responses the SignedData carries (B-LT) as the only
revocation data (nothing is fetched). `--revocation require`: revocation
data must exist for every certificate of every path.
"""
import argparse
import asyncio
import hashlib
import json
import logging
import sys
from pathlib import Path

from asn1crypto import cms, ocsp
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.policy_decl import LocalKnowledge
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import validation_spec  # noqa: E402



def embedded_validation_data(signed_data):
    """CAdES B-LT (EN 319 122-1 §6.3): the CRLs and OCSP responses (RFC 5940
    id-ri-ocsp-response) in SignedData.crls, and its certificates."""
    crls, ocsps = [], []
    for choice in signed_data['crls'] or []:
        if choice.name == 'crl':
            crls.append(CRLContainer(crl_data=choice.chosen))
        elif choice.chosen['other_rev_info_format'].dotted == '1.3.6.1.5.5.7.16.2':
            response = ocsp.OCSPResponse.load(choice.chosen['other_rev_info'].dump())
            ocsps.extend(OCSPContainer.load_multi(response))
    certs = [c.chosen for c in signed_data['certificates'] or [] if c.name == 'certificate']
    return LocalKnowledge(known_crls=crls, known_ocsps=ocsps, known_certs=certs)


def main():
    logging.disable(logging.CRITICAL)  # pyHanko logs every failed path attempt
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('sig')
    ap.add_argument('content', nargs='?')
    ap.add_argument('--digest-hex')
    ap.add_argument('--root', action='append', required=True)
    ap.add_argument('--revocation', default='soft-fail', choices=['soft-fail', 'hard-fail', 'require'])
    a = ap.parse_args()
    if bool(a.content) == bool(a.digest_hex):
        ap.error('give exactly one of CONTENT or --digest-hex')
    signed_data = cms.ContentInfo.load(Path(a.sig).read_bytes())['content']
    algo = signed_data['signer_infos'][0]['digest_algorithm']['algorithm'].native
    digest = (bytes.fromhex(a.digest_hex) if a.digest_hex
              else hashlib.new(algo, Path(a.content).read_bytes()).digest())
    spec = validation_spec(a.root, a.revocation, embedded_validation_data(signed_data))
    result = asyncio.run(ades.ades_with_time_validation(signed_data, spec, raw_digest=digest))
    sub = result.ades_subindic
    knowledge = spec.local_knowledge
    verdict = {'procedure': 'EN 319 102-1 5.5 with time', 'revocation': a.revocation,
               'indication': sub.status.name, 'subindication': sub.standard_name,
               'failure': result.failure_msg, 'best_signature_time': str(result.best_signature_time),
               'embedded': {'crls': len(knowledge.known_crls), 'ocsps': len(knowledge.known_ocsps)}}
    print(json.dumps(verdict, indent=2))
    sys.exit(0 if sub.status.name == 'PASSED' else 1)


if __name__ == '__main__':
    main()
