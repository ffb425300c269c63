#!/usr/bin/env python3
"""Independent check of CAdES B-LTA archive-time-stamp-v3 attributes.

    ats_v3.py SIG.p7s (CONTENT | --digest-hex HEX) --root ROOT.pem

For every SignerInfo of a detached CMS SignedData, recomputes what ETSI EN
319 122-1 V1.3.1 asks of its archive-time-stamp-v3 (OID 0.4.0.1733.2.4),
with asn1crypto and none of qsign's code:

- §5.5.3: exactly one value, a TimeStampToken whose SignerInfo carries
  exactly one ats-hash-index-v3 (0.4.0.19122.1.5) with exactly one value;
- §5.5.2: that ATSHashIndexV3 is DER, names SHA-256 in hashIndAlgorithm
  (present: Annex D gives it no DEFAULT), and lists exactly the SHA-256 of
  every CertificateChoices of SignedData.certificates, of every
  RevocationInfoChoice of SignedData.crls, and of attrType || AttributeValue
  for every value of every other unsigned attribute of the SignerInfo;
- §5.5.3: the token's messageImprint is SHA-256 over eContentType, the
  content's SHA-256, the SignerInfo's version, sid, digestAlgorithm,
  signedAttrs ([0] IMPLICIT), signatureAlgorithm and signature TLVs, and
  the index's DER;
- the token's signature and its TSA certificate's path to ROOT, by
  `openssl ts -verify -digest <imprint> -token_in -CAfile ROOT`.

Prints a JSON verdict; exits 0 only when every check passes.
"""
import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from asn1crypto import algos, cms, core, tsp  # noqa: F401 - tsp registers TSTInfo

ARCHIVE_TIME_STAMP_V3 = '0.4.0.1733.2.4'
ATS_HASH_INDEX_V3 = '0.4.0.19122.1.5'
SIGNATURE_TIME_STAMP = '1.2.840.113549.1.9.16.2.14'
MESSAGE_DIGEST = '1.2.840.113549.1.9.4'


class OctetStrings(core.SequenceOf):
    _child_spec = core.OctetString


class ATSHashIndexV3(core.Sequence):
    """EN 319 122-1 V1.3.1 §5.5.2 / Annex D."""
    _fields = [
        ('hash_ind_algorithm', algos.DigestAlgorithm),
        ('certificates_hash_index', OctetStrings),
        ('crls_hash_index', OctetStrings),
        ('unsigned_attr_values_hash_index', OctetStrings),
    ]


def sha256(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


class Verdict:
    def __init__(self):
        self.checks = []

    def check(self, name, ok, detail=''):
        self.checks.append({'name': name, 'ok': bool(ok), 'detail': detail})
        return bool(ok)

    @property
    def ok(self):
        return bool(self.checks) and all(c['ok'] for c in self.checks)


def attributes(signer_info, field, oid):
    return [a for a in present(signer_info[field]) if a['type'].dotted == oid]


def present(field):
    """An optional SET OF's elements; none when the field is absent."""
    return [] if isinstance(field, core.Void) else list(field)


def expected_index(signed_data, signer_info, archive_attr):
    """§5.5.2 from the SignedData as it was before `archive_attr` was added."""
    certs, crls = signed_data['certificates'], signed_data['crls']
    values = []
    for attr in present(signer_info['unsigned_attrs']):
        if attr.dump() == archive_attr.dump():
            continue
        attr_type = attr['type'].dump()
        values.extend(sha256(attr_type, v.dump()) for v in attr['values'])
    return {
        'certificates_hash_index': [sha256(c.dump()) for c in present(certs)],
        'crls_hash_index': [sha256(c.dump()) for c in present(crls)],
        'unsigned_attr_values_hash_index': values,
    }


def signed_fields(signer_info):
    """§5.5.3 3): the six fields' TLVs as they appear in the SignerInfo."""
    signed_attrs = signer_info['signed_attrs'].dump()
    fields = [signer_info[name].dump() for name in ('version', 'sid', 'digest_algorithm')]
    fields += [signed_attrs]
    fields += [signer_info[name].dump() for name in ('signature_algorithm', 'signature')]
    return b''.join(fields), signed_attrs[:1] == b'\xa0'


def openssl_ts_verify(token, imprint, root):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'tst.der'
        path.write_bytes(token)
        out = subprocess.run(
            ['openssl', 'ts', '-verify', '-digest', imprint.hex(), '-in', str(path),
             '-token_in', '-CAfile', root], capture_output=True, text=True)
    return out.returncode == 0, (out.stdout + out.stderr).strip()


def check_archive(v, n, signed_data, signer_info, content_digest, root):
    p = f'signer{n}.'
    digests = attributes(signer_info, 'signed_attrs', MESSAGE_DIGEST)
    v.check(p + 'message_digest_is_the_content', len(digests) == 1
            and digests[0]['values'][0].native == content_digest)
    archives = attributes(signer_info, 'unsigned_attrs', ARCHIVE_TIME_STAMP_V3)
    if not v.check(p + 'one_archive_time_stamp_v3', len(archives) == 1, f'{len(archives)} found'):
        return
    archive = archives[0]
    if not v.check(p + 'archive.one_value', len(archive['values']) == 1):
        return
    token = archive['values'][0].dump()
    token_data = cms.ContentInfo.load(token)['content']
    tst_info = token_data['encap_content_info']['content'].parsed
    indices = attributes(token_data['signer_infos'][0], 'unsigned_attrs', ATS_HASH_INDEX_V3)
    if not v.check(p + 'token.one_ats_hash_index_v3', len(token_data['signer_infos']) == 1
                   and len(indices) == 1 and len(indices[0]['values']) == 1):
        return
    index_der = indices[0]['values'][0].dump()
    try:
        index = ATSHashIndexV3.load(index_der)
        index.native
    except Exception as e:  # noqa: BLE001 - any parse failure is the verdict
        v.check(p + 'index.parses', False, f'{type(e).__name__}: {e}')
        return
    v.check(p + 'index.der', ATSHashIndexV3.load(index_der).dump(force=True) == index_der)
    v.check(p + 'index.sha256', index['hash_ind_algorithm']['algorithm'].native == 'sha256',
            index['hash_ind_algorithm']['algorithm'].native)
    expected = expected_index(signed_data, signer_info, archive)
    for field, hashes in expected.items():
        got = sorted(o.native for o in index[field])
        v.check(f'{p}index.{field}', got == sorted(hashes),
                f'{len(got)} in the index, {len(hashes)} in the signature')
    fields, implicit = signed_fields(signer_info)
    v.check(p + 'signed_attrs_tagged_a0', implicit)
    imprint = sha256(signed_data['encap_content_info']['content_type'].dump(),
                     content_digest, fields, index_der)
    stamped = tst_info['message_imprint']
    v.check(p + 'imprint.sha256', stamped['hash_algorithm']['algorithm'].native == 'sha256')
    v.check(p + 'imprint.matches', stamped['hashed_message'].native == imprint,
            f"token {stamped['hashed_message'].native.hex()}, recomputed {imprint.hex()}")
    ok, detail = openssl_ts_verify(token, imprint, root)
    v.check(p + 'token.openssl_ts_verify', ok, detail)
    signature_stamps = attributes(signer_info, 'unsigned_attrs', SIGNATURE_TIME_STAMP)
    if v.check(p + 'signature_time_stamp_present', len(signature_stamps) == 1):
        earlier = signature_stamps[0]['values'][0]['content']['encap_content_info']['content']
        v.check(p + 'archive_not_before_signature_time_stamp',
                tst_info['gen_time'].native >= earlier.parsed['gen_time'].native)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('sig')
    ap.add_argument('content', nargs='?')
    ap.add_argument('--digest-hex')
    ap.add_argument('--root', required=True)
    a = ap.parse_args()
    if (a.content is None) == (a.digest_hex is None):
        ap.error('give CONTENT or --digest-hex')
    digest = (bytes.fromhex(a.digest_hex) if a.digest_hex
              else hashlib.sha256(Path(a.content).read_bytes()).digest())
    v = Verdict()
    try:
        signed_data = cms.ContentInfo.load(Path(a.sig).read_bytes())['content']
        signer_infos = list(signed_data['signer_infos'])
        v.check('detached', signed_data['encap_content_info']['content'].native is None)
        v.check('signers', len(signer_infos) > 0)
        for n, signer_info in enumerate(signer_infos):
            check_archive(v, n, signed_data, signer_info, digest, a.root)
    except Exception as e:  # noqa: BLE001 - a malformed input is a failed verdict
        v.check('parses', False, f'{type(e).__name__}: {e}')
    print(json.dumps({'ok': v.ok, 'checks': v.checks}, indent=1))
    return 0 if v.ok else 1


if __name__ == '__main__':
    sys.exit(main())
