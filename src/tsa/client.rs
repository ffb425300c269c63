//! Asking other TSAs (`[tsa] urls`): RFC 3161 §3.4 over plain HTTP/1.1.
//! https is not supported: a token is signed, so the transport adds no
//! integrity; an https-only TSA needs a local forwarder.
//!
//! The reply is checked as §2.4.2 asks of a requester: granted, a token
//! for this imprint, the nonce echoed. The token's signature and the TSA's
//! certificate path are for the validator (B-LT validation data), not here.

use std::time::Duration;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::asn1::{MessageImprint, TimeStampReq, TimeStampResp, TstInfo, CT_TST_INFO};
use super::protocol::{QUERY_CONTENT_TYPE, REPLY_CONTENT_TYPE};
use crate::{Error, ErrorKind};

/// Time one TSA gets for connecting and answering.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest reply read (a token with a certificate chain is a few KiB).
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Asks each `urls` entry in order for a token on `imprint` (with a fresh
/// nonce and certReq true) and returns the first granted one, DER. When
/// all fail: [`ErrorKind::Unavailable`] naming each URL's failure.
pub async fn request_external(urls: &[String], imprint: &MessageImprint) -> Result<Vec<u8>, Error> {
    if urls.is_empty() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "no external time-stamping authority is configured: set [tsa] urls",
        ));
    }
    let nonce = super::random_nonce()?;
    let query = TimeStampReq {
        version: 1,
        message_imprint: imprint.clone(),
        req_policy: None,
        nonce: Some(nonce.clone()),
        cert_req: Some(true),
        extensions: None,
    }
    .to_der()
    .map_err(|e| Error::internal("TimeStampReq encoding failed").with_source(e))?;
    let mut failures = Vec::new();
    for url in urls {
        let reply = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(url, &query))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {EXCHANGE_TIMEOUT:?}")));
        match reply.and_then(|reply| granted_token(&reply, imprint, &nonce)) {
            Ok(token) => return Ok(token),
            Err(reason) => {
                tracing::warn!(url, reason, "time-stamping authority failed");
                failures.push(format!("{url}: {reason}"));
            }
        }
    }
    Err(Error::new(
        ErrorKind::Unavailable,
        format!(
            "no time-stamping authority issued a token ({}); check that [tsa] urls are \
             reachable http URLs of RFC 3161 TSAs, or try again later",
            failures.join("; ")
        ),
    ))
}

/// One POST of `query` to an http URL; the reply body.
async fn exchange(url: &str, query: &[u8]) -> Result<Vec<u8>, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("https is not supported; give an http URL".into()),
        _ => return Err("not an http URL".into()),
    }
    let authority = uri.authority().ok_or("the URL has no host")?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = TcpStream::connect((host, authority.port_u16().unwrap_or(80)))
        .await
        .map_err(|e| format!("cannot connect ({e})"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed ({e})"))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::new(Full::new(Bytes::copy_from_slice(query)));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = path.parse().map_err(|e| format!("bad path ({e})"))?;
    let headers = request.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(QUERY_CONTENT_TYPE));
    let body = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no HTTP response ({e})"))?;
        if response.status() != StatusCode::OK {
            return Err(format!("HTTP status {}", response.status()));
        }
        if !content_type_is(response.headers(), REPLY_CONTENT_TYPE) {
            return Err(format!("the reply is not {REPLY_CONTENT_TYPE}"));
        }
        Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .map_err(|e| format!("cannot read the reply ({e})"))
    }
    .await;
    driver.abort();
    body
}

/// §2.4.2: the token of a granted reply that is for `imprint` and echoes
/// `nonce`.
fn granted_token(reply: &[u8], imprint: &MessageImprint, nonce: &Int) -> Result<Vec<u8>, String> {
    let reply = TimeStampResp::from_der(reply).map_err(|e| format!("not a TimeStampResp ({e})"))?;
    if !reply.status.is_granted() {
        let text = reply.status.status_string.unwrap_or_default().join(" ");
        return Err(format!(
            "rejected (PKIStatus {}): {text}",
            reply.status.status
        ));
    }
    let token = reply
        .time_stamp_token
        .ok_or("granted, but no token")?
        .to_der()
        .map_err(|e| e.to_string())?;
    let info = tst_info(&token).map_err(|e| e.message().to_owned())?;
    let theirs = &info.message_imprint;
    if theirs.hash_algorithm.oid != imprint.hash_algorithm.oid
        || theirs.hashed_message != imprint.hashed_message
    {
        return Err("the token is for another message imprint".into());
    }
    if info.nonce.as_ref() != Some(nonce) {
        return Err("the token does not echo the request's nonce".into());
    }
    Ok(token)
}

/// The TSTInfo inside a TimeStampToken (RFC 3161 §2.4.2). Parses only;
/// does not verify the token's signature.
pub fn tst_info(token: &[u8]) -> Result<TstInfo, Error> {
    let invalid = |what: &'static str| {
        move |e: der::Error| {
            Error::invalid_argument(format!("not a time-stamp token: {what}")).with_source(e)
        }
    };
    let content_info = ContentInfo::from_der(token).map_err(invalid("ContentInfo"))?;
    if content_info.content_type != const_oid::db::rfc6268::ID_SIGNED_DATA {
        return Err(Error::invalid_argument(
            "not a time-stamp token: not SignedData",
        ));
    }
    let signed: SignedData = content_info
        .content
        .decode_as()
        .map_err(invalid("SignedData"))?;
    let encapsulated = signed.encap_content_info;
    let Some(content) = encapsulated.econtent else {
        return Err(Error::invalid_argument(
            "not a time-stamp token: no encapsulated TSTInfo",
        ));
    };
    if encapsulated.econtent_type != CT_TST_INFO {
        return Err(Error::invalid_argument(
            "not a time-stamp token: eContentType is not id-ct-TSTInfo",
        ));
    }
    let octets: OctetString = content.decode_as().map_err(invalid("eContent"))?;
    TstInfo::from_der(octets.as_bytes()).map_err(invalid("TSTInfo"))
}

/// Whether Content-Type names `expected`, ignoring case and parameters
/// (RFC 9110 §8.3.1).
fn content_type_is(headers: &hyper::header::HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}
