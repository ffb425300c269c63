//! SPEC §10 public certificate lookup on the HTTP listener: `GET /lookup`
//! (HTML, Danish, `?lang=en` for English; plain GET forms, no JavaScript)
//! and `GET /api/v1/certificates` (JSON). What may be shown is decided by
//! `registry::lookup`; this module only parses, renders and answers.
//!
//! | path | answer |
//! | --- | --- |
//! | `/lookup?q=&page_token=&lang=` | search form and a page of results |
//! | `/lookup/{id}` | one certificate |
//! | `/lookup/{id}.cer`, `.pem` | RFC 2585 §4.1 DER, RFC 7468 PEM |
//! | `/api/v1/certificates?q=&page_token=` | `{"certificates": [...], "next_page_token": ""}` |
//! | `/api/v1/certificates/{id}` | one object, 404 unless published |

mod json;
mod pages;

use std::net::IpAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use crate::registry::lookup::{Lookup, PublicCertificate};
use crate::ErrorKind;

type Reply = Response<Full<Bytes>>;

pub const PAGE_PATH: &str = "/lookup";
pub const API_PATH: &str = "/api/v1/certificates";
/// A URL query longer than this is refused before it is decoded.
const MAX_URL_QUERY_BYTES: usize = 2048;

/// Whether `path` is the lookup's, for the listener's router.
pub fn serves(path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under(PAGE_PATH) || under(API_PATH)
}

/// Language of the pages: Danish unless `lang=en`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Da,
    En,
}

/// The parsed URL query.
#[derive(Default)]
struct Params {
    q: String,
    page_token: String,
    lang: Option<String>,
}

/// Answers one lookup request from `peer` (rate-limited per address).
pub async fn handle(request: Request<Incoming>, lookup: &Lookup, peer: IpAddr) -> Reply {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "the lookup answers GET");
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    let _admission = match lookup.admit(peer) {
        Ok(admission) => admission,
        Err(_) => return too_many(),
    };
    let raw = request.uri().query().unwrap_or("");
    if raw.len() > MAX_URL_QUERY_BYTES {
        return plain(StatusCode::BAD_REQUEST, "the query is too long");
    }
    let params = params(raw);
    let path = request.uri().path();
    if let Some(rest) = path.strip_prefix(API_PATH) {
        return api(lookup, rest, &params).await;
    }
    let lang = match params.lang.as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Da,
    };
    let rest = path.strip_prefix(PAGE_PATH).unwrap_or_default();
    match rest.strip_prefix('/') {
        None | Some("") => search_page(lookup, &params, lang).await,
        Some(file) => detail(lookup, file, lang).await,
    }
}

async fn api(lookup: &Lookup, rest: &str, params: &Params) -> Reply {
    match rest.strip_prefix('/') {
        None | Some("") => match lookup.search(&params.q, &params.page_token).await {
            Ok(page) => json_reply(json::page(&page)),
            Err(e) => error(&e),
        },
        Some(id) => match lookup.get(id).await {
            Ok(certificate) => json_reply(json::certificate(&certificate)),
            Err(e) => error(&e),
        },
    }
}

async fn search_page(lookup: &Lookup, params: &Params, lang: Lang) -> Reply {
    let found = lookup.search(&params.q, &params.page_token).await;
    let status = match &found {
        Err(e) if e.kind() == ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        Ok(_) => StatusCode::OK,
    };
    let body = pages::search(lang, &params.q, found.as_ref().map_err(|_| ()));
    html(status, body)
}

/// `{id}`, `{id}.cer` or `{id}.pem`.
async fn detail(lookup: &Lookup, file: &str, lang: Lang) -> Reply {
    let (id, extension) = match file.rsplit_once('.') {
        Some((id, ext)) => (id, Some(ext)),
        None => (file, None),
    };
    let certificate = match lookup.get(id).await {
        Ok(certificate) => certificate,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return html(StatusCode::NOT_FOUND, pages::not_found(lang))
        }
        Err(e) => return error(&e),
    };
    match extension {
        None => html(
            StatusCode::OK,
            pages::detail(lang, &certificate, &lookup.chain()),
        ),
        Some("cer") => download(&certificate, "cer", certificate.der.clone()),
        Some("pem") => match crate::registry::lookup::pem(&certificate.der) {
            Ok(pem) => download(&certificate, "pem", pem.into_bytes()),
            Err(e) => error(&e),
        },
        Some(_) => html(StatusCode::NOT_FOUND, pages::not_found(lang)),
    }
}

/// RFC 2585 §4.1 `application/pkix-cert` (DER) or RFC 7468 PEM, as an
/// attachment named by the serial (RFC 6266).
fn download(certificate: &PublicCertificate, extension: &str, body: Vec<u8>) -> Reply {
    let content_type = if extension == "cer" {
        "application/pkix-cert"
    } else {
        "application/x-pem-file"
    };
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The serial is hex: nothing in it needs quoting.
    let disposition = format!(
        "attachment; filename=\"{}.{extension}\"",
        certificate.serial
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    reply
}

fn params(raw: &str) -> Params {
    let mut params = Params::default();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "q" => params.q = value.into_owned(),
            "page_token" => params.page_token = value.into_owned(),
            "lang" => params.lang = Some(value.into_owned()),
            _ => {}
        }
    }
    params
}

fn error(e: &crate::Error) -> Reply {
    match e.kind() {
        ErrorKind::InvalidArgument => plain(StatusCode::BAD_REQUEST, "bad query or page_token"),
        ErrorKind::NotFound => plain(
            StatusCode::NOT_FOUND,
            "no published certificate has this id",
        ),
        _ => {
            tracing::error!(error = %e, "lookup failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}

/// RFC 6585 §4 with RFC 9110 §10.2.3 Retry-After: the address's rate is
/// refilled within a second.
fn too_many() -> Reply {
    let mut reply = plain(
        StatusCode::TOO_MANY_REQUESTS,
        "too many lookups from this address; retry after the Retry-After seconds",
    );
    reply
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    reply
}

/// The page, with a Content-Security-Policy that allows nothing but its
/// inline style and same-origin links and forms: no script can run even if
/// escaping failed (CSP Level 3); no MIME sniffing (Fetch §X-Content-Type-Options).
fn html(status: StatusCode, body: String) -> Reply {
    let mut reply = with_type(status, body, "text/html; charset=utf-8");
    let headers = reply.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    reply
}

fn json_reply(body: String) -> Reply {
    with_type(StatusCode::OK, body, "application/json")
}

fn plain(status: StatusCode, reason: &'static str) -> Reply {
    with_type(status, reason.to_owned(), "text/plain; charset=utf-8")
}

fn with_type(status: StatusCode, body: String, content_type: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}
