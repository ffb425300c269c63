//! PAdES B-LT and B-LTA from the primitives: a B-T signature from the
//! service, then a /DSS update with the chain, the TSA certificate and CRLs
//! of both CAs (`pades::append_dss_bytes`), then a document time-stamp from
//! the built-in TSA (`pades::prepare_document_timestamp_bytes`). pyHanko
//! (`validate_pdf.py --level B-LT/B-LTA`), qpdf and pdfsig judge the files.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use qsign::pades;
use qsign::pki::crl::issue_crl;
use qsign::pki::Issuer;
use qsign::proto;
use qsign::signing::SigningCore;
use qsign::state;
use qsign::tsa::MessageImprint;
use sha2::{Digest, Sha256};

use crate::pades::judge_at_level;
use crate::support::{corpus_file, env, server, sign_pdf_request, tools, Who};

/// CRLs of the issuing CA and of the root, signed in the token.
pub fn crls(core: &SigningCore) -> Vec<Vec<u8>> {
    let now = SystemTime::now();
    let next = now + Duration::from_secs(86_400);
    let chain = core.trust_chain.clone();
    core.hsm
        .run_blocking(move |session| {
            let issuing = Issuer::from_der(chain[0].clone())?;
            let root = Issuer::from_der(chain[1].clone())?;
            let ca = session.issuing_ca()?;
            let root_key = session.persistent_signer(state::ROOT_KEY_LABEL)?;
            Ok(vec![
                issue_crl(&issuing, &ca, now, next, 1)?,
                issue_crl(&root, &root_key, now, next, 1)?,
            ])
        })
        .expect("CRLs")
}

/// `pdf` with a document time-stamp from the core's built-in TSA.
fn document_time_stamp(core: &Arc<SigningCore>, pdf: &[u8]) -> Vec<u8> {
    let mut prepared = pades::prepare_document_timestamp_bytes(pdf, 8192).expect("prepare");
    let digest = prepared.digest(Sha256::new_with_prefix(pdf));
    let tsa = core.tsa.clone().expect("built-in TSA");
    let token = core
        .hsm
        .run_blocking(move |session| {
            let imprint = MessageImprint::sha256(digest);
            let signer = session.session_signer(tsa.key_label())?;
            tsa.time_stamp(&signer, &imprint, None, true, SystemTime::now())
        })
        .expect("time-stamp");
    prepared.embed(&token).expect("embed");
    [pdf, prepared.update()].concat()
}

#[tokio::test(flavor = "multi_thread")]
async fn pades_b_lt_and_b_lta_from_the_primitives() {
    let server = server("ltv-primitives").await;
    let mut client = server.client().await;
    let dir = tempfile::tempdir().unwrap();
    let crls = crls(&server.core);
    for (name, who, seal, expect) in [
        ("reportlab_simple.pdf", Who::jens(), "", "person"),
        ("qpdf_object_streams.pdf", Who::sealer(), "dev", "seal"),
    ] {
        let Some((original, pdf)) = corpus_file(name) else {
            return;
        };
        let response = client
            .sign_pdf(sign_pdf_request(pdf, &who, seal, proto::Level::BT))
            .await
            .expect("signed")
            .into_inner();
        let tsa = server.core.tsa.as_ref().expect("built-in TSA");
        let mut certificates = vec![response.certificate.clone()];
        certificates.extend(server.core.trust_chain.iter().cloned());
        certificates.push(tsa.certificate_der().to_vec());
        let signed = response.signed_pdf;
        let dss = pades::append_dss_bytes(&signed, &certificates, &crls, &[]).expect("DSS");
        let lt = [&signed[..], &dss].concat();
        let lt_path = dir.path().join(format!("lt-{name}"));
        std::fs::write(&lt_path, &lt).unwrap();
        judge_at_level(&lt_path, &original, expect, "B-LT", "tst");

        let lta = document_time_stamp(&server.core, &lt);
        let lta_path = dir.path().join(format!("lta-{name}"));
        std::fs::write(&lta_path, &lta).unwrap();
        judge_at_level(&lta_path, &original, expect, "B-LTA", "tst");
    }
}

#[test]
fn a_second_dss_update_merges_with_the_first() {
    let Ok(pdf) = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/incremental_updates.pdf"),
    ) else {
        assert!(
            !tools::in_ci(),
            "the shared corpus is required under CI=true"
        );
        return;
    };
    let root = state::read_certificates(&env().root_ca()).unwrap();
    let issuing = state::read_certificates(&env().dir.join(state::ISSUING_CA)).unwrap();
    let first = pades::append_dss_bytes(&pdf, &root, &[], &[]).expect("first DSS");
    let once = [&pdf[..], &first].concat();
    // The root again (not duplicated within one update) and the issuing CA.
    let both = [issuing.clone(), root.clone(), issuing].concat();
    let second = pades::append_dss_bytes(&once, &both, &[b"crl".to_vec()], &[]).expect("second");
    let twice = [&once[..], &second].concat();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dss-twice.pdf");
    std::fs::write(&path, &twice).unwrap();
    if !tools::require("qpdf") {
        return;
    }
    let out = std::process::Command::new("qpdf")
        .args(["--check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let json = std::process::Command::new("qpdf")
        .args(["--json", "--json-key=qpdf", "--json-stream-data=none"])
        .arg(&path)
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("qpdf JSON");
    let objects = &value["qpdf"][1];
    let trailer = &objects["trailer"]["value"];
    let root_ref = trailer["/Root"].as_str().expect("/Root");
    let catalog = &objects[format!("obj:{root_ref}")]["value"];
    let dss_ref = catalog["/DSS"].as_str().expect("/DSS is indirect");
    let dss = &objects[format!("obj:{dss_ref}")]["value"];
    let count = |key: &str| dss[key].as_array().map_or(0, Vec::len);
    assert_eq!(count("/Certs"), 3, "root, then root and issuing: {dss}");
    assert_eq!(count("/CRLs"), 1, "{dss}");
    assert_eq!(count("/OCSPs"), 0, "{dss}");
}
