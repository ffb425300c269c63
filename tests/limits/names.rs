//! Names with bidirectional, zero-width or control characters make a bad
//! token; names are NFC in the certificate (UAX #15); the signature fields
//! of SignPdf are bounded.

use qsign::proto;
use tonic::Code;

use super::FIRST;
use crate::detached::{digest, request};
use crate::support::{env, sign_pdf_request, Server, Who};

fn who(given: &'static str, family: &'static str) -> Who {
    Who {
        given,
        family,
        ..Who::jens()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bidi_and_zero_width_names_are_refused_and_names_are_nfc() {
    let label = "limits-names";
    let server = Server::start(env().core(label, |_| {})).await;
    let mut client = server.client_from(Some(FIRST)).await;
    let d = [30u8; 32];
    for (given, family) in [
        ("Jens", "Hansen\u{202E}nesnaH"),
        ("\u{2067}Jens", "Hansen"),
        ("Je\u{200B}ns", "Hansen"),
        ("Jens", "Han\u{200F}sen"),
    ] {
        let token = env().token(&who(given, family), &[d]);
        let status = client
            .sign_detached(request(vec![digest(d)], token, ""))
            .await
            .expect_err("a name with invisible characters");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("U+"), "{status:?}");
    }
    // A decomposed "Å" (A + U+030A COMBINING RING ABOVE) in the token.
    let token = env().token(&who("A\u{30A}se", "Hansen"), &[d]);
    let certificate = client
        .sign_detached(request(vec![digest(d)], token, ""))
        .await
        .expect("signed")
        .into_inner()
        .certificate;
    let contains = |needle: &str| {
        certificate
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    assert!(contains("\u{C5}se"), "the composed form is certified");
    assert!(!contains("A\u{30A}se"), "not the decomposed one");
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_or_invisible_signature_fields_are_refused() {
    let server = Server::start(env().core("limits-reason", |_| {})).await;
    let mut client = server.client().await;
    let pdf = b"%PDF-1.7 not needed: the fields are checked first".to_vec();
    let mut long = sign_pdf_request(pdf.clone(), &Who::jens(), "", proto::Level::BB);
    long.reason = Some("x".repeat(257));
    let status = client.sign_pdf(long).await.expect_err("too long");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("reason"), "{status:?}");
    let mut bidi = sign_pdf_request(pdf, &Who::jens(), "", proto::Level::BB);
    bidi.location = Some("K\u{F8}benhavn\u{202E}".into());
    let status = client.sign_pdf(bidi).await.expect_err("bidi control");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("location"), "{status:?}");
}
