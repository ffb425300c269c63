//! pkilint, an independent linter of ETSI EN 319 412 and RFC 5280, on every
//! certificate qsign makes: the one-time person and seal certificates in
//! both revocation variants, and the root, issuing CA, TSA and OCSP
//! responder certificates; and the caIssuers URL resolves on the HTTP
//! listener.

use std::collections::BTreeSet;

use der::Decode;
use qsign::config::Config;
use qsign::proto;
use qsign::state;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};
use x509_cert::Certificate;

use crate::detached::sign_one;
use crate::support::tools::{self, Finding, Linter};
use crate::support::{env, Server, Who};
use crate::tsa::{http, TsaServer};

/// pkilint flags hosts outside the public suffix list (`127.0.0.1` of the
/// development defaults, `*.example`) as `etsi.internal_domain_name`; a
/// deployment names public hosts, here RFC 2606's example.com.
const CA_ISSUERS: &str = "http://pki.example.com/ca/issuing-ca.cer";
const REGISTRATION_AUTHORITY: &str = "https://pki.example.com/identifiers";
const OCSP: &str = "http://pki.example.com/ocsp";

/// EN 319 412-2 asks for a CRL DP (GEN-4.3.11-2) or, without one, an OCSP
/// responder (GEN-4.4.1-8): the same rule seen from both extensions. A
/// noRevAvail certificate has neither, on purpose (RFC 9608 §3; EN 319
/// 412-1 §5.2 short-term certificates), so both findings stay.
const NO_REV_AVAIL_FINDINGS: [&str; 2] = [
    "etsi.en_319_412_2.gen-4.3.11-2.crldp_extension_missing",
    "etsi.en_319_412_2.gen-4.4.1-8.ocsp_aia_access_method_absent",
];

fn deployment(config: &mut Config) {
    config.certificate.ca_issuers_url = CA_ISSUERS.into();
    config.certificate.name_registration_authority = REGISTRATION_AUTHORITY.into();
}

/// The person's and the seal's certificate from a server made by `tweak`.
async fn one_time_certificates(label: &str, tweak: impl FnOnce(&mut Config)) -> [Vec<u8>; 2] {
    let server = Server::start(env().core(label, tweak)).await;
    let data = b"lint me".to_vec();
    let person = sign_one(&server, &data, &Who::jens(), "", proto::Level::BB).await;
    let seal = sign_one(&server, &data, &Who::sealer(), "dev", proto::Level::BB).await;
    [person.certificate, seal.certificate]
}

/// The FATAL, ERROR and WARNING findings of `linter` on `der` (NOTICE and
/// INFO, e.g. "UI is a national scheme", are not problems); `None` where
/// pkilint is missing outside CI.
fn problems(der: &[u8], linter: Linter<'_>) -> Option<Vec<Finding>> {
    let findings = tools::pkilint(der, linter).expect("pkilint runs")?;
    Some(
        findings
            .into_iter()
            .filter(|f| f.is_error() || f.severity == "WARNING")
            .collect(),
    )
}

fn read(file: &str) -> Vec<u8> {
    state::read_certificates(&env().dir.join(file))
        .unwrap()
        .remove(0)
}

fn codes(findings: &[Finding]) -> BTreeSet<&str> {
    findings.iter().map(|f| f.code.as_str()).collect()
}

fn show(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("\n  {f}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_rev_avail_certificates_keep_only_the_missing_revocation_pointer() {
    let certificates = one_time_certificates("lint-norevavail", deployment).await;
    for (name, der) in ["person", "seal"].iter().zip(&certificates) {
        let Some(errors) = problems(der, Linter::EtsiDetect) else {
            return;
        };
        assert_eq!(
            codes(&errors),
            BTreeSet::from(NO_REV_AVAIL_FINDINGS),
            "{name}:{}",
            show(&errors)
        );
        let chain = problems(der, Linter::IssuedBy(&read(state::ISSUING_CA)));
        assert_eq!(chain, Some(Vec::new()), "{name} under the issuing CA");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_certificates_have_no_error() {
    let certificates = one_time_certificates("lint-ocsp", |config| {
        deployment(config);
        config.ocsp = Some(env().ocsp_config(OCSP));
    })
    .await;
    for (name, der) in ["person", "seal"].iter().zip(&certificates) {
        let Some(errors) = problems(der, Linter::EtsiDetect) else {
            return;
        };
        assert!(errors.is_empty(), "{name}:{}", show(&errors));
    }
    // pkilint detects the person's type from QCP-n-qscd and QcType esign.
    let person = problems(
        &certificates[0],
        Linter::Etsi("QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE"),
    );
    assert_eq!(person.map(|e| e.is_empty()), Some(true));
}

/// The URL of the single CRL distribution point (RFC 5280 §4.2.1.13).
fn crl_url(certificate: &Certificate) -> String {
    let (_, points) = certificate
        .tbs_certificate
        .get::<CrlDistributionPoints>()
        .expect("decodes")
        .expect("a CRL distribution point");
    let [point] = points.0.as_slice() else {
        panic!("one distribution point: {points:?}");
    };
    match &point.distribution_point {
        Some(DistributionPointName::FullName(names)) => match names.as_slice() {
            [GeneralName::UniformResourceIdentifier(uri)] => uri.to_string(),
            other => panic!("one URI: {other:?}"),
        },
        other => panic!("a fullName: {other:?}"),
    }
}

#[test]
fn ca_tsa_and_ocsp_certificates_have_no_error_and_name_their_issuers_crl() {
    let (root_crl, issuing_crl) = (
        qsign::config::DEV_ROOT_CRL_URL,
        qsign::config::DEV_ISSUING_CRL_URL,
    );
    for (file, issuer, crl) in [
        // Self-signed: the chain linter does not apply (it asks for an AKI,
        // which RFC 5280 §4.2.1.1 lets a self-signed certificate omit).
        (state::ROOT_CA, None, None),
        (state::ISSUING_CA, Some(state::ROOT_CA), Some(root_crl)),
        (state::TSA_CERTIFICATE, Some(state::ROOT_CA), Some(root_crl)),
        // Issued by the issuing CA, so its CRL (RFC 5280 §4.2.1.13).
        (
            state::OCSP_CERTIFICATE,
            Some(state::ISSUING_CA),
            Some(issuing_crl),
        ),
    ] {
        let der = read(file);
        let certificate = Certificate::from_der(&der).unwrap();
        match crl {
            Some(url) => assert_eq!(crl_url(&certificate), url, "{file}"),
            None => assert!(
                certificate
                    .tbs_certificate
                    .get::<CrlDistributionPoints>()
                    .unwrap()
                    .is_none(),
                "{file}: a trust anchor names no CRL of its own"
            ),
        }
        let Some(errors) = problems(&der, Linter::Pkix) else {
            return;
        };
        assert!(errors.is_empty(), "{file}:{}", show(&errors));
        if let Some(issuer) = issuer {
            let chain = problems(&der, Linter::IssuedBy(&read(issuer))).unwrap();
            assert!(chain.is_empty(), "{file} under {issuer}:{}", show(&chain));
        }
    }
}

/// EN 319 412-2 §4.4.1: the caIssuers URL of a development certificate
/// points at the HTTP listener, which serves the CA certificates as RFC
/// 2585 §4.1 `application/pkix-cert` DER.
#[tokio::test(flavor = "multi_thread")]
async fn the_http_listener_serves_the_ca_certificates() {
    let endpoint = TsaServer::start_with("lint-ca-issuers", false).await;
    let server = Server::start(endpoint.core.clone()).await;
    let data = b"where is my issuer".to_vec();
    let signed = sign_one(&server, &data, &Who::jens(), "", proto::Level::BB).await;
    let certificate = Certificate::from_der(&signed.certificate).unwrap();
    let (_, aia) = certificate
        .tbs_certificate
        .get::<AuthorityInfoAccessSyntax>()
        .unwrap()
        .expect("authorityInfoAccess");
    let ca_issuers: Vec<String> = aia
        .0
        .iter()
        .filter(|d| d.access_method == const_oid::db::rfc5280::ID_AD_CA_ISSUERS)
        .map(|d| match &d.access_location {
            GeneralName::UniformResourceIdentifier(uri) => uri.to_string(),
            other => panic!("not a URI: {other:?}"),
        })
        .collect();
    assert_eq!(ca_issuers, [qsign::config::DEV_CA_ISSUERS_URL]);
    let path = ca_issuers[0]
        .strip_prefix("http://127.0.0.1:50052")
        .expect("the development listener");
    for (path, file) in [
        (path, state::ISSUING_CA),
        (qsign::service::http::ROOT_CA_CERT_PATH, state::ROOT_CA),
    ] {
        let head = format!("GET {path} HTTP/1.1\r\n");
        let (status, content_type, body) = http(endpoint.address, &head, b"").await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/pkix-cert")
        );
        assert_eq!(body, read(file), "{path} is {file}");
    }
}

/// Issue 9 point 6: the registry's organisation and system certificates
/// (EN 319 412-3 legal person, NCP) and user certificate (EN 319 412-2
/// natural person, NCP) have no pkilint ERROR, and each chains to the
/// organisation CA (RFC 5280 names, AKI/SKI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_certificates_have_no_error() {
    use crate::registry::{issue_csr, order, ordered, put_profile, validate};
    use crate::support::admin::{self, admin, token, with, Replica, CVR};

    let dir = tempfile::tempdir().unwrap();
    let core = admin::core_with("lint-registry", None, dir.path(), |registry| {
        // The config demands http:// (EN 319 412-2 GEN-4.3.11-4: an http or
        // ldap CRL URI); a public host, not an internal domain name.
        registry.base_url = "http://pki.example.com".into();
    });
    let replica = Replica::serve(core, dir).await;
    let keys = tempfile::tempdir().unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let mut c = replica.client().await;
    put_profile(&mut c, "acme-lint", &["seal"]).await;
    validate(&replica, &mut c, "web@acme.example.com").await;

    let mut request = order(proto::CertificateKind::Organization, "Acme web");
    request.certificate_email = "web@acme.example.com".into();
    let organization = ordered(&mut c, request).await;
    let system = ordered(
        &mut c,
        order(proto::CertificateKind::System, "Acme invoicing"),
    )
    .await;
    let mut request = order(proto::CertificateKind::User, "Karen Blixen");
    request.user_sub = "karen".into();
    let user = ordered(&mut c, request).await;

    let mut issued = Vec::new();
    for (id, who, name, kind) in [
        (
            &organization,
            admin(),
            "org",
            "NCP-LEGAL-PERSON-CERTIFICATE",
        ),
        (&system, admin(), "sys", "NCP-LEGAL-PERSON-CERTIFICATE"),
        (
            &user,
            token("karen", CVR, &[]),
            "user",
            "NCP-NATURAL-PERSON-CERTIFICATE",
        ),
    ] {
        let csr = admin::csr(keys.path(), name, &ec);
        let answer = c
            .issue_certificate(with(&who, issue_csr(id, csr)))
            .await
            .expect("issued")
            .into_inner();
        issued.push((name, kind, answer));
    }
    for (name, kind, answer) in &issued {
        let Some(findings) =
            tools::pkilint(&answer.certificate, Linter::Etsi(kind)).expect("pkilint runs")
        else {
            return;
        };
        let errors: Vec<Finding> = findings.into_iter().filter(Finding::is_error).collect();
        assert!(errors.is_empty(), "{name} ({kind}):{}", show(&errors));
        let chain = problems(&answer.certificate, Linter::IssuedBy(&answer.chain[0])).unwrap();
        let errors: Vec<&Finding> = chain.iter().filter(|f| f.is_error()).collect();
        assert!(errors.is_empty(), "{name} chain: {errors:?}");
    }
}
