//! SPEC §10 public certificate lookup, as a person and a program see it:
//! in headless Chromium (search by CVR, detail, status, revocation at once,
//! the `.cer` download, screenshots at phone and desktop width) and through
//! the JSON API (the registry's data and nothing unpublished, hostile
//! queries, the per-address rate).

use std::path::PathBuf;
use std::time::Duration;

use qsign::proto;
use serde_json::Value;

use crate::registry::{issue_csr, order, ordered, put_profile, validate};
use crate::support::admin::{self, admin, with, Replica, CVR};
use crate::support::postgres::Postgres;
use crate::support::tools;
use crate::support::webdriver::Browser;

type Client =
    proto::administration_service_client::AdministrationServiceClient<tonic::transport::Channel>;

/// The certificates one test issues: two published, one not.
struct Issued {
    web: proto::IssueCertificateResponse,
    web_id: String,
    system_id: String,
    hidden_id: String,
    hidden_serial: String,
}

async fn issue(replica: &Replica, c: &mut Client, dir: &std::path::Path) -> Issued {
    put_profile(c, "acme-seal", &["seal"]).await;
    validate(replica, c, "web@acme.example").await;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let mut request = order(proto::CertificateKind::Organization, "Acme web");
    request.certificate_email = "web@acme.example".into();
    request.publish = true;
    let web_id = ordered(c, request).await;
    let csr = admin::csr(dir, "web", &ec);
    let web = c
        .issue_certificate(with(&admin(), issue_csr(&web_id, csr)))
        .await
        .expect("issued")
        .into_inner();
    let mut request = order(proto::CertificateKind::System, "Acme invoicing");
    request.publish = true;
    let system_id = ordered(c, request).await;
    let csr = admin::csr(dir, "system", &ec);
    c.issue_certificate(with(&admin(), issue_csr(&system_id, csr)))
        .await
        .expect("issued");
    let hidden_id = ordered(
        c,
        order(proto::CertificateKind::Organization, "Acme hidden"),
    )
    .await;
    let csr = admin::csr(dir, "hidden", &ec);
    c.issue_certificate(with(&admin(), issue_csr(&hidden_id, csr)))
        .await
        .expect("issued");
    let get = proto::GetCertificateRequest {
        id: hidden_id.clone(),
    };
    let hidden_serial = c
        .get_certificate(with(&admin(), get))
        .await
        .expect("got")
        .into_inner()
        .serial;
    Issued {
        web,
        web_id,
        system_id,
        hidden_id,
        hidden_serial,
    }
}

/// GET with curl: (status, body).
async fn get(url: &str) -> (u16, Vec<u8>) {
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-s", "-w", "%{stderr}%{http_code}", &url])
            .output()
    })
    .await
    .unwrap()
    .expect("curl");
    let status = String::from_utf8_lossy(&out.stderr)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, out.stdout)
}

/// [`get`], waiting out the per-address rate (the tests run many lookups).
async fn get_patiently(url: &str) -> (u16, Vec<u8>) {
    for _ in 0..20 {
        let answer = get(url).await;
        if answer.0 != 429 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{url}: still 429");
}

fn query(q: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("q", q)
        .finish()
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/lookup-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_in_a_browser() {
    if !tools::require("openssl") {
        return;
    }
    let replica = Replica::start("lookup-browser", None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = replica.client().await;
    let issued = issue(&replica, &mut c, dir.path()).await;
    let Some(browser) = tokio::task::block_in_place(Browser::start) else {
        return;
    };
    let shots = screenshots();
    let base = replica.http.clone();
    let web_id = issued.web_id.clone();
    let download = tokio::task::block_in_place(|| {
        // A person types the CVR into the form and submits it.
        browser.go(&format!("{base}/lookup"));
        browser.screenshot(390, 844, &shots.join("phone-search.png"));
        // WCAG 2.2 3.1.1 and 1.3.1: the page's language, a labelled field.
        assert_eq!(browser.property("html", "lang"), "da");
        assert!(browser.text("label[for=q]").contains("CVR"));
        browser.type_into("#q", CVR);
        browser.click("form.search button[type=submit]");
        let results = browser.text("ul.results");
        assert!(results.contains("Acme web"), "{results}");
        assert!(results.contains("Acme invoicing"), "{results}");
        assert!(
            !results.contains("Acme hidden"),
            "unpublished shown: {results}"
        );
        browser.screenshot(1280, 900, &shots.join("desktop-results.png"));
        browser.screenshot(390, 844, &shots.join("phone-results.png"));
        browser.click(&format!("a[href^='/lookup/{web_id}']"));
        assert!(browser.url().ends_with(&format!("/lookup/{web_id}")));
        assert_eq!(browser.text(".status .badge"), "✓ Gyldig");
        browser.screenshot(1280, 1000, &shots.join("desktop-detail.png"));
        browser.screenshot(390, 844, &shots.join("phone-detail.png"));
        browser.property("a[href$='.cer']", "href")
    });
    let (status, der) = get_patiently(&download).await;
    assert_eq!(status, 200);
    assert_eq!(
        der, issued.web.certificate,
        "the .cer is the issued certificate"
    );

    // Revoked through the administration API: the page shows it at once.
    let revoke = proto::RevokeCertificateRequest {
        id: issued.web_id.clone(),
        reason: proto::RevocationReason::KeyCompromise.into(),
    };
    c.revoke_certificate(with(&admin(), revoke))
        .await
        .expect("revoked");
    let today =
        qsign::registry::model::rfc3339(qsign::registry::model::unix(std::time::SystemTime::now()))
            [..10]
            .to_owned();
    tokio::task::block_in_place(|| {
        browser.go(&format!("{base}/lookup/{web_id}"));
        let status = browser.text(".status");
        assert!(status.contains("Spærret"), "{status}");
        assert!(
            status.contains(&today) && status.contains("UTC"),
            "{status}"
        );
        assert!(status.contains("nøglen er kompromitteret"), "{status}");
        browser.screenshot(390, 844, &shots.join("phone-revoked.png"));
        browser.go(&format!("{base}/lookup/{web_id}?lang=en"));
        let status = browser.text(".status");
        assert!(
            status.contains("Revoked") && status.contains("key compromise"),
            "{status}"
        );
        browser.screenshot(1280, 1000, &shots.join("desktop-revoked-en.png"));
    });
    // The unpublished certificate has no page.
    let (status, _) = get_patiently(&format!("{base}/lookup/{}", issued.hidden_id)).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_api_hostile_queries_and_rate() {
    let replica = Replica::start("lookup-api", None).await;
    json_api(&replica).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_api_on_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let replica = Replica::start("lookup-pg", Some(&pg.url)).await;
    json_api(&replica).await;
}

async fn json_api(replica: &Replica) {
    if !tools::require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = replica.client().await;
    let issued = issue(replica, &mut c, dir.path()).await;
    let api = format!("{}/api/v1/certificates", replica.http);

    // The API matches the registry, and shows nothing unpublished or private.
    let (status, body) = get_patiently(&format!("{api}?{}", query(CVR))).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for private in [
        "Ida Admin",
        "ida@acme.example",
        "Acme hidden",
        "pkcs12",
        "contact",
    ] {
        assert!(!text.contains(private), "{private} shown: {text}");
    }
    let page: Value = serde_json::from_str(&text).unwrap();
    let list = page["certificates"].as_array().unwrap();
    let mut ids: Vec<&str> = list.iter().map(|o| o["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = vec![issued.web_id.as_str(), issued.system_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for object in list {
        let id = object["id"].as_str().unwrap();
        let record = c
            .get_certificate(with(
                &admin(),
                proto::GetCertificateRequest { id: id.into() },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(object["serial"], record.serial.as_str());
        assert_eq!(object["subject"], record.subject.as_str());
        assert_eq!(object["status"], "VALID");
        assert_eq!(object["name"], record.name.as_str());
        assert!(object["not_after"].as_str().unwrap().ends_with('Z'));
        assert_eq!(object["sha256_fingerprint"].as_str().unwrap().len(), 95);
        let (status, one) = get_patiently(&format!("{api}/{id}")).await;
        assert_eq!(status, 200);
        let one: Value = serde_json::from_slice(&one).unwrap();
        assert_eq!(&one, object);
    }
    // By serial (hex, any case, with colons), by e-mail, by organisation name.
    let serial = list[0]["serial"].as_str().unwrap().to_uppercase();
    for q in [serial.as_str(), "web@acme.example", "acme a/s"] {
        let (_, body) = get_patiently(&format!("{api}?{}", query(q))).await;
        let found: Value = serde_json::from_slice(&body).unwrap();
        assert!(!found["certificates"].as_array().unwrap().is_empty(), "{q}");
    }
    // Never the unpublished one, by id or serial.
    let (status, _) = get_patiently(&format!("{api}/{}", issued.hidden_id)).await;
    assert_eq!(status, 404);
    for q in [&issued.hidden_id, &issued.hidden_serial] {
        let (_, body) = get_patiently(&format!("{api}?{}", query(q))).await;
        assert!(String::from_utf8_lossy(&body).contains("\"certificates\":[]"));
    }
    hostile(&replica.http).await;
    rate(&api).await;
}

/// Hostile input is data: escaped in HTML, bound in SQL, refused when too
/// long or with control characters.
async fn hostile(base: &str) {
    let page = |q: &str| format!("{base}/lookup?{}", query(q));
    let (status, body) = get_patiently(&page("<script>alert(1)</script>")).await;
    assert_eq!(status, 200);
    let html = String::from_utf8(body).unwrap();
    assert!(!html.contains("<script>alert"), "not escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for q in [
        "' OR '1'='1",
        "\" OR 1=1 --",
        "%",
        "_",
        "'; DROP TABLE certificates; --",
    ] {
        let (status, body) =
            get_patiently(&format!("{base}/api/v1/certificates?{}", query(q))).await;
        assert_eq!(status, 200, "{q}");
        assert!(
            String::from_utf8_lossy(&body).contains("\"certificates\":[]"),
            "{q}"
        );
    }
    let (status, _) = get_patiently(&format!("{base}/lookup?q=%00")).await;
    assert_eq!(status, 400);
    let long = "A".repeat(10 * 1024);
    for url in [page(&long), format!("{base}/api/v1/certificates?q={long}")] {
        let (status, _) = get_patiently(&url).await;
        assert_eq!(status, 400);
    }
    let (status, _) = get_patiently(&format!("{base}/api/v1/certificates/%27%20OR%201=1")).await;
    assert_eq!(status, 404);
    // The registry still answers: nothing was dropped.
    let (status, body) = get_patiently(&format!("{base}/api/v1/certificates?{}", query(CVR))).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("Acme web"));
}

/// Past the per-address rate: 429 with Retry-After (RFC 6585 §4).
async fn rate(api: &str) {
    let url = format!("{api}?{}", query(CVR));
    let out = tokio::task::spawn_blocking(move || {
        // In parallel: past the rate, or past the 4 at once, even on a
        // slow machine.
        let mut args: Vec<String> = ["-s", "-Z", "--parallel-max", "8"].map(String::from).into();
        for _ in 0..60 {
            args.extend(["-o", "/dev/null", "-D", "-"].map(String::from));
            args.push(url.clone());
        }
        std::process::Command::new("curl").args(&args).output()
    })
    .await
    .unwrap()
    .expect("curl");
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(headers.contains(" 429"), "no 429 in 60 quick requests");
    assert!(headers.contains("retry-after: 1"));
}
