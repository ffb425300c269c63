#!/usr/bin/env python3
"""A second, independent CSC client: plain HTTP calls written from the CSC
API v2.0 specification (§11: info, credentials/list, credentials/info,
credentials/authorize, signatures/signHash, signatures/signDoc), no pyHanko.

csc_client.py URL BEARER CREDENTIAL STATE_DIR CLAIMS_JSON IN.pdf OUTDIR

Writes OUTDIR/signdoc.pdf (PAdES B-T), OUTDIR/signdoc.p7s over
OUTDIR/content.bin (CAdES B-T, detached); checks the signHash signatures
against the credential's certificate itself. Prints a JSON verdict; exits
non-zero on the first failure."""
import base64
import hashlib
import json
import sys
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from csc_sad import DevIdp

SHA256 = '2.16.840.1.101.3.4.2.1'
ECDSA_SHA256 = '1.2.840.10045.4.3.2'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode('ascii')


class Client:
    def __init__(self, url, bearer):
        self.base = f'{url}/csc/v2/'
        self.headers = {'Authorization': f'Bearer {bearer}'}

    def call(self, method, body):
        response = requests.post(self.base + method, json=body, headers=self.headers, timeout=60)
        answer = response.json()
        if response.status_code != 200:
            raise SystemExit(json.dumps({'failed': method, 'status': response.status_code,
                                         'answer': answer}))
        return answer


def sign_hash(client, credential, idp, certificate):
    """§11.6 credentials/authorize (SCAL 2, hashes bound), §11.10 signHash."""
    digests = [hashlib.sha256(text).digest() for text in (b'first', b'second')]
    hashes_b64 = [b64(d) for d in digests]
    sad = client.call('credentials/authorize', {
        'credentialID': credential, 'numSignatures': 2, 'hashes': hashes_b64,
        'hashAlgorithmOID': SHA256,
        'authData': [{'id': 'activation_token', 'value': idp.sad(hashes_b64)}],
    })['SAD']
    signatures = client.call('signatures/signHash', {
        'credentialID': credential, 'SAD': sad, 'hashes': hashes_b64,
        'hashAlgorithmOID': SHA256, 'signAlgo': ECDSA_SHA256, 'operationMode': 'S',
    })['signatures']
    assert len(signatures) == 2, signatures
    key = certificate.public_key()
    for digest, signature in zip(digests, signatures):
        key.verify(base64.b64decode(signature), digest,
                   ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def sign_doc(client, credential, idp, pdf, out):
    """§11.11 signDoc: a PAdES of the PDF, then a detached CAdES."""
    sad = idp.sad([b64(hashlib.sha256(pdf).digest())])
    answer = client.call('signatures/signDoc', {
        'credentialID': credential, 'SAD': sad,
        'documents': [{'document': b64(pdf), 'signature_format': 'P',
                       'conformance_level': 'Ades-B-T', 'signAlgo': ECDSA_SHA256,
                       'signed_envelope_property': 'Certification'}],
    })
    (out / 'signdoc.pdf').write_bytes(base64.b64decode(answer['DocumentWithSignature'][0]))
    content = b'CSC signDoc, detached CAdES\n'
    sad = idp.sad([b64(hashlib.sha256(content).digest())])
    answer = client.call('signatures/signDoc', {
        'credentialID': credential, 'SAD': sad,
        'documents': [{'document': b64(content), 'signature_format': 'C',
                       'conformance_level': 'Ades-B-T', 'signAlgo': ECDSA_SHA256,
                       'signed_envelope_property': 'Detached'}],
    })
    (out / 'content.bin').write_bytes(content)
    (out / 'signdoc.p7s').write_bytes(base64.b64decode(answer['SignatureObject'][0]))


def main(url, bearer, credential, state_dir, claims, source, outdir):
    client = Client(url, bearer)
    info = requests.get(client.base + 'info', timeout=30).json()
    assert info['specs'].startswith('2.'), info
    assert 'signatures/signDoc' in info['methods'], info
    listed = client.call('credentials/list', {})['credentialIDs']
    assert credential in listed, listed
    details = client.call('credentials/info', {'credentialID': credential,
                                               'certificates': 'chain', 'certInfo': True,
                                               'authInfo': True})
    assert details['SCAL'] == '2' and ECDSA_SHA256 in details['key']['algo'], details
    certificate = x509.load_der_x509_certificate(
        base64.b64decode(details['cert']['certificates'][0]))
    idp = DevIdp(state_dir, json.loads(claims))
    sign_hash(client, credential, idp, certificate)
    sign_doc(client, credential, idp, Path(source).read_bytes(), Path(outdir))
    print(json.dumps({'credential': credential, 'subject': certificate.subject.rfc4514_string()}))


if __name__ == '__main__':
    main(*sys.argv[1:8])
