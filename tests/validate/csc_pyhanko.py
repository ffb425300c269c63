#!/usr/bin/env python3
"""pyHanko's own CSC client signs a PDF through qsign's CSC API (SPEC §13).

csc_pyhanko.py URL BEARER CREDENTIAL STATE_DIR CLAIMS_JSON IN.pdf OUT.pdf

CSCSigner is configured only with the service URL, the bearer and a SAD:
its authorization manager asks the development IdP (csc_sad.py) for an
activation token over the hashes pyHanko computed and trades it for the
SAD at credentials/authorize (SCAL 2). The signature is time-stamped by
qsign's own TSA on the same listener (B-T). Prints a JSON verdict."""
import asyncio
import json
import sys

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.csc_signer import (CSCAuthorizationManager, CSCServiceSessionInfo,
                                             CSCSigner, fetch_certs_in_csc_credential)
from pyhanko.sign.timestamps.aiohttp_client import AIOHttpTimeStamper

from csc_sad import DevIdp


class DevIdpAuthorizationManager(CSCAuthorizationManager):
    """SCAL 2: a fresh SAD for exactly the hashes about to be signed."""

    def __init__(self, session_info, credential_info, http, idp):
        super().__init__(session_info, credential_info)
        self.http = http
        self.idp = idp

    async def authorize_signature(self, hash_b64s):
        request = self.format_csc_auth_request(hash_b64s=hash_b64s, otp=self.idp.sad(hash_b64s))
        url = self.csc_session_info.endpoint_url('credentials/authorize')
        async with self.http.post(url, headers=self.auth_headers, json=request) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f'credentials/authorize: {response.status} {body}')
        return self.parse_csc_auth_response(body)


async def main(url, bearer, credential, state_dir, claims, source, target):
    info = CSCServiceSessionInfo(service_url=url, credential_id=credential,
                                 oauth_token=bearer, api_ver='v1')
    async with aiohttp.ClientSession() as http:
        credential_info = await fetch_certs_in_csc_credential(http, info)
        manager = DevIdpAuthorizationManager(info, credential_info, http,
                                             DevIdp(state_dir, json.loads(claims)))
        signer = CSCSigner(http, manager)
        pdf_signer = signers.PdfSigner(
            signers.PdfSignatureMetadata(field_name='Signature1',
                                         subfilter=fields.SigSeedSubFilter.PADES),
            signer=signer,
            timestamper=AIOHttpTimeStamper(f'{url}/tsa', session=http),
        )
        with open(source, 'rb') as inf, open(target, 'wb') as outf:
            await pdf_signer.async_sign_pdf(IncrementalPdfFileWriter(inf), output=outf)
    print(json.dumps({'signed': target, 'certificate_subject':
                      credential_info.signing_cert.subject.human_friendly}))


if __name__ == '__main__':
    asyncio.run(main(*sys.argv[1:8]))
