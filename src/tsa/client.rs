//! Asking other TSAs (`[tsa] urls`): RFC 3161 §3.4 queries through a
//! [`Transport`] the wiring supplies (`service::outbound` speaks HTTP/1.1;
//! this module knows no HTTP).
//!
//! The reply is checked as §2.4.2 asks of a requester: granted, a token
//! for this imprint, the nonce echoed. The token's signature and the TSA's
//! certificate path are for the validator (B-LT validation data), not here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};

use super::asn1::{MessageImprint, TimeStampReq, TimeStampResp, TstInfo, CT_TST_INFO};
use crate::{Error, ErrorKind};

/// Time one TSA gets for connecting and answering.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a transport's exchange returns: the reply's DER, or why there is
/// none, in words for the operator.
pub type Exchange<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

/// How a TimeStampReq reaches a TSA (RFC 3161 §3: the protocol leaves the
/// transport open; §3.4 is HTTP).
pub trait Transport: Send + Sync {
    /// Sends `query` (a DER TimeStampReq) to `url` and returns the reply
    /// (a DER TimeStampResp), or fails, within `timeout`; nothing of the
    /// exchange outlives the returned future.
    fn exchange<'a>(&'a self, url: &'a str, query: &'a [u8], timeout: Duration) -> Exchange<'a>;
}

/// The external TSAs of `[tsa] urls` and the transport that reaches them.
#[derive(Clone)]
pub struct ExternalTsas {
    urls: Vec<String>,
    transport: Arc<dyn Transport>,
}

impl ExternalTsas {
    pub fn new(urls: Vec<String>, transport: Arc<dyn Transport>) -> Self {
        Self { urls, transport }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Asks each URL in order for a token on `imprint` (with a fresh nonce
    /// and certReq true) and returns the first granted one, DER. When all
    /// fail: [`ErrorKind::Unavailable`] naming each URL's failure.
    pub async fn time_stamp(&self, imprint: &MessageImprint) -> Result<Vec<u8>, Error> {
        if self.urls.is_empty() {
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
        for url in &self.urls {
            let reply = self.transport.exchange(url, &query, EXCHANGE_TIMEOUT).await;
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
