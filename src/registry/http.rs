//! The registry on the HTTP listener (SPEC §9): the organisation CA's CRL
//! and certificate, and OCSP for its certificates in front of the
//! `[ocsp]` responder of the issuing CA; the public lookup (SPEC §10).

use std::sync::Arc;

use super::Registry;
use crate::hsm::Hsm;
use crate::tsa::http::{GetSource, OcspSource, Revocation};

/// `services` plus the organisation CA's routes.
pub fn extend(mut services: Revocation, registry: &Arc<Registry>, hsm: &Hsm) -> Revocation {
    let (r, h) = (registry.clone(), hsm.clone());
    let crl: GetSource = Arc::new(move || {
        let (r, h) = (r.clone(), h.clone());
        // RFC 2585 §4.2.
        Box::pin(async move { Ok((r.crl(&h).await?, "application/pkix-crl")) })
    });
    let certificate = registry.ca_certificate().to_vec();
    let ca: GetSource = Arc::new(move || {
        let der = certificate.clone();
        // RFC 2585 §4.1; RFC 5280 §4.2.2.1 caIssuers: one DER certificate.
        Box::pin(async move { Ok((der, "application/pkix-cert")) })
    });
    services.documents.push((super::CRL_PATH, crl));
    services.documents.push((super::CA_CERTIFICATE_PATH, ca));
    let inner = services.ocsp.take();
    let (r, h) = (registry.clone(), hsm.clone());
    let ocsp: OcspSource = Arc::new(move |request| {
        let (r, h, inner) = (r.clone(), h.clone(), inner.clone());
        Box::pin(async move {
            if let Some(answer) = r.ocsp_answer(&h, &request).await {
                return answer;
            }
            match inner {
                Some(inner) => inner(request).await,
                // RFC 6960 §2.3: not a request, or not a CA this server
                // answers for.
                None if crate::pki::ocsp::parse_request(&request).is_none() => {
                    crate::pki::ocsp::malformed_request()
                }
                None => der::Encode::to_der(&x509_ocsp::OcspResponse::unauthorized())
                    .map_err(crate::pki::encoding),
            }
        })
    });
    services.ocsp = Some(ocsp);
    services.lookup = Some(Arc::new(super::lookup::Lookup::new(registry.clone())));
    services
}
