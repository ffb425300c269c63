//! CRLs of the qsign CAs (RFC 5280 §5), signed in the token: they parse
//! back, carry the required extensions, and `openssl crl` verifies them
//! against the issuer's certificate.

use std::time::{Duration, SystemTime};

use der::Decode;
use qsign::pki::crl::issue_crl;
use qsign::pki::Issuer;
use qsign::state;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, SubjectKeyIdentifier};

use crate::support::{env, tools};

/// (CRL of the issuing CA, CRL of the root), issued in one HSM task.
fn issue_both(number: u64) -> (Vec<u8>, Vec<u8>) {
    let now = SystemTime::now();
    let next = now + Duration::from_secs(7 * 86_400);
    let issuing = state::read_certificates(&env().dir.join(state::ISSUING_CA))
        .unwrap()
        .remove(0);
    let root = state::read_certificates(&env().root_ca())
        .unwrap()
        .remove(0);
    env()
        .hsm
        .run_blocking(move |session| {
            let ca = session.issuing_ca()?;
            let issuing = issue_crl(&Issuer::from_der(issuing)?, &ca, now, next, number)?;
            let root_key = session.persistent_signer(state::ROOT_KEY_LABEL)?;
            let root = issue_crl(&Issuer::from_der(root)?, &root_key, now, next, number)?;
            Ok((issuing, root))
        })
        .unwrap()
}

fn extension<T: for<'a> Decode<'a> + const_oid::AssociatedOid>(crl: &CertificateList) -> T {
    let ext = crl
        .tbs_cert_list
        .crl_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == T::OID)
        .unwrap_or_else(|| panic!("CRL extension {} missing", T::OID));
    assert!(!ext.critical, "RFC 5280 §5.2.1, §5.2.3: non-critical");
    T::from_der(ext.extn_value.as_bytes()).unwrap()
}

#[test]
fn crls_parse_back_with_aki_and_number() {
    let (issuing_crl, root_crl) = issue_both(0x80_01);
    let issuing_path = env().dir.join(state::ISSUING_CA);
    for (der, ca) in [(&issuing_crl, issuing_path), (&root_crl, env().root_ca())] {
        let crl = CertificateList::from_der(der).expect("DER CertificateList");
        let ca =
            x509_cert::Certificate::from_der(&state::read_certificates(&ca).unwrap()[0]).unwrap();
        let tbs = &crl.tbs_cert_list;
        assert_eq!(tbs.version, x509_cert::Version::V2);
        assert_eq!(tbs.issuer, ca.tbs_certificate.subject);
        assert!(tbs.revoked_certificates.is_none());
        assert!(tbs.next_update.is_some());
        let number: CrlNumber = extension(&crl);
        assert_eq!(number.0.as_bytes(), &[0x80, 0x01]);
        let aki: AuthorityKeyIdentifier = extension(&crl);
        let ski = ca
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == <SubjectKeyIdentifier as const_oid::AssociatedOid>::OID)
            .map(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).unwrap())
            .expect("CA has an SKI");
        assert_eq!(aki.key_identifier, Some(ski.0));
    }
}

#[test]
fn openssl_verifies_the_crls() {
    if !tools::require("openssl") {
        return;
    }
    let (issuing_crl, root_crl) = issue_both(1);
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("cas.pem");
    let mut pem = std::fs::read(env().root_ca()).unwrap();
    pem.extend(std::fs::read(env().dir.join(state::ISSUING_CA)).unwrap());
    std::fs::write(&both, pem).unwrap();
    for (name, der) in [("issuing.crl", issuing_crl), ("root.crl", root_crl)] {
        let path = dir.path().join(name);
        std::fs::write(&path, der).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-in"])
            .arg(&path)
            .arg("-CAfile")
            .arg(&both)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(stderr.contains("verify OK"), "{name}: {stderr}");
    }
}

/// The issuing CA's CRL in a B-LT CAdES signature is fresh until the
/// signer's certificate expires (nextUpdate = notAfter) and issued no
/// earlier than the signature time-stamp (thisUpdate >= genTime, whole
/// seconds): what EN 319 102-1's time-slide and freshness checks need.
pub fn issuing_crl_is_fresh_for_the_signature(cms: &[u8], certificate: &[u8]) {
    let info = cms::content_info::ContentInfo::from_der(cms).expect("ContentInfo");
    let signed: cms::signed_data::SignedData = info.content.decode_as().expect("SignedData");
    let leaf = x509_cert::Certificate::from_der(certificate).unwrap();
    let crl = signed
        .crls
        .expect("B-LT has CRLs")
        .0
        .into_vec()
        .into_iter()
        .find_map(|choice| match choice {
            cms::revocation::RevocationInfoChoice::Crl(crl)
                if crl.tbs_cert_list.issuer == leaf.tbs_certificate.issuer =>
            {
                Some(crl)
            }
            _ => None,
        })
        .expect("the issuing CA's CRL");
    let tbs = crl.tbs_cert_list;
    assert_eq!(
        tbs.next_update.expect("nextUpdate").to_system_time(),
        leaf.tbs_certificate.validity.not_after.to_system_time()
    );
    let signer_info = signed.signer_infos.0.get(0).expect("a SignerInfo");
    let token = signer_info
        .unsigned_attrs
        .iter()
        .flat_map(|attributes| attributes.iter())
        .find(|a| a.oid == qsign::tsa::asn1::AA_SIGNATURE_TIME_STAMP_TOKEN)
        .and_then(|a| a.values.get(0))
        .expect("signature time-stamp");
    let gen_time: der::asn1::GeneralizedTime =
        qsign::tsa::tst_info(&der::Encode::to_der(token).unwrap())
            .unwrap()
            .gen_time
            .decode_as()
            .expect("GeneralizedTime");
    assert!(
        tbs.this_update.to_system_time() >= gen_time.to_system_time(),
        "thisUpdate {:?} before genTime {:?}",
        tbs.this_update,
        gen_time
    );
}

/// The root's CRL is signed with `[ca] root_key_label`, not a built-in
/// label: a core told of another label signs none (its key is not in the
/// token) but still the issuing CA's.
#[tokio::test(flavor = "multi_thread")]
async fn the_root_crl_key_comes_from_the_configuration() {
    use qsign::pki::crl::CrlOf;
    let core = env().core("crl-root-label", |c| {
        c.root_key_label = "not-in-token".into()
    });
    assert_eq!(core.root_key_label, "not-in-token");
    core.current_crl(CrlOf::IssuingCa)
        .await
        .expect("issuing CA CRL");
    let err = core
        .current_crl(CrlOf::Root)
        .await
        .expect_err("no such key");
    assert!(format!("{err:?}").contains("not-in-token"), "{err:?}");
    let core = env().core("crl-root-label-dev", |_| {});
    assert_eq!(core.root_key_label, state::ROOT_KEY_LABEL);
    core.current_crl(CrlOf::Root).await.expect("root CRL");
}
