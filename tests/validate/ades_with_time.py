#!/usr/bin/env python3
"""pyHanko's ETSI EN 319 102-1 §5.5 validation with time of a detached CAdES
signature, at the machine's current time (run it under faketime to validate
after the signing certificate expired). Prints a JSON verdict; exit 0 only
when the indication is PASSED.

ades_with_time.py SIG.p7s (CONTENT | --digest-hex HEX) --root ROOT.pem [--root ...]

The shared validate_cms.py validates the certificate at the current time
without the signature time-stamp; this is the procedure that uses it.
"""
import argparse
import asyncio
import hashlib
import json
import logging
import sys
from pathlib import Path

from asn1crypto import cms, pem, x509
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.policy_decl import (RevinfoOnlineFetchingRule,
                                                 RevocationInfoGatheringSpec,
                                                 SignatureValidationSpec)
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager


def load_cert(path):
    data = Path(path).read_bytes()
    if pem.detect(data):
        data = pem.unarmor(data)[2]
    return x509.Certificate.load(data)


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
    spec = SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=[load_cert(r) for r in a.root]),
            revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy(a.revocation))),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY))
    result = asyncio.run(ades.ades_with_time_validation(signed_data, spec, raw_digest=digest))
    sub = result.ades_subindic
    verdict = {'procedure': 'EN 319 102-1 5.5 with time', 'indication': sub.status.name,
               'subindication': sub.standard_name, 'failure': result.failure_msg,
               'best_signature_time': str(result.best_signature_time)}
    print(json.dumps(verdict, indent=2))
    sys.exit(0 if sub.status.name == 'PASSED' else 1)


if __name__ == '__main__':
    main()
