//! The JSON of `GET /api/v1/certificates` (SPEC §10): RFC 3339 times,
//! lowercase hex serials, RFC 5280 reason names.

use serde_json::{json, Value};

use crate::registry::lookup::{Page, PublicCertificate};
use crate::registry::model::rfc3339;

pub fn page(page: &Page) -> String {
    let list: Vec<Value> = page.certificates.iter().map(object).collect();
    json!({ "certificates": list, "next_page_token": page.next }).to_string()
}

pub fn certificate(certificate: &PublicCertificate) -> String {
    object(certificate).to_string()
}

fn object(c: &PublicCertificate) -> Value {
    json!({
        "id": c.id,
        "kind": c.kind.as_str(),
        "name": c.name,
        "system_name": c.system_name,
        "certificate_email": c.certificate_email,
        "status": c.status.as_str(),
        "serial": c.serial,
        "subject": c.subject,
        "issuer": c.issuer,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
        "revoked_at": c.revoked_at.map(rfc3339),
        "revocation_reason": c.revocation_reason.map(|r| r.name()),
        "key": c.key,
        "sha256_fingerprint": c.sha256,
    })
}
