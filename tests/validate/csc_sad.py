"""Development-only SAD minting for the CSC tests: an activation token
(SPEC §3) for given hashes, signed ES256 with the development IdP's key
(STATE_DIR/dev-idp-key.pem), the claims of src/auth/dev.rs. A real
deployment gets the SAD from its IdP after the signer approved the hashes."""
import base64
import json
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


class DevIdp:
    def __init__(self, state_dir, claims: dict):
        state = Path(state_dir)
        self.key = serialization.load_pem_private_key(
            (state / 'dev-idp-key.pem').read_bytes(), password=None)
        jwks = json.loads((state / 'dev-idp-jwks.json').read_text())
        self.kid = jwks['keys'][0]['kid']
        # iss, aud, sub, names, org, seal_profiles: who approves.
        self.claims = claims

    def sad(self, hash_b64s, lifetime=300) -> str:
        """A token whose digests are exactly these (standard base64) hashes."""
        return self.token(digests=[b64url(base64.b64decode(h)) for h in hash_b64s],
                          lifetime=lifetime)

    def bearer(self, lifetime=300) -> str:
        """A bearer for the CSC API: aud qsign-csc, no digests (SPEC §13)."""
        return self.token(aud='qsign-csc', lifetime=lifetime)

    def token(self, lifetime=300, **extra) -> str:
        now = int(time.time())
        claims = dict(self.claims, iat=now, exp=now + lifetime, jti=str(uuid.uuid4()), **extra)
        header = {'alg': 'ES256', 'typ': 'JWT', 'kid': self.kid}
        signing_input = (b64url(json.dumps(header).encode()) + '.'
                         + b64url(json.dumps(claims).encode()))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + '.' + b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))


if __name__ == '__main__':
    # csc_sad.py STATE_DIR CLAIMS_JSON [HASH_B64 ...]: a SAD for the hashes,
    # or with no hash a bearer for the same person.
    import sys
    idp = DevIdp(sys.argv[1], json.loads(sys.argv[2]))
    print(idp.sad(sys.argv[3:]) if sys.argv[3:] else idp.bearer())
