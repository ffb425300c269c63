"""What the validator scripts of this directory share: trust anchors and
pyHanko's validation policy (no fetching; the given revocation checking)."""
from pathlib import Path

from asn1crypto import pem, x509
from pyhanko.sign.validation.policy_decl import (LocalKnowledge, RevinfoOnlineFetchingRule,
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


def validation_spec(roots, revocation, local_knowledge=None):
    """`roots` (paths) as the only trust anchors; `revocation`: pyHanko's
    legacy mode name (soft-fail, hard-fail, require); nothing fetched."""
    return SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=[load_cert(r) for r in roots]),
            revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy(revocation))),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
        local_knowledge=local_knowledge or LocalKnowledge())
