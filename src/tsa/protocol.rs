//! RFC 3161 §2.4: from a DER TimeStampReq to a DER TimeStampResp, in two
//! halves around the signing (which the flow runs in the HSM): [`check`]
//! the request, then [`reply`] with the token or why there is none. Every
//! outcome is a TimeStampResp — granted with a token, or a rejection whose
//! failInfo and statusString say what to change; input never panics.

use der::{Any, Decode, Encode};

use super::asn1::{FailureInfo, PkiStatusInfo, TimeStampReq, TimeStampResp};
use super::TimeStampAuthority;
use crate::{Error, ErrorKind};

/// RFC 3161 §3.4 MIME types of a query and of its reply.
pub const QUERY_CONTENT_TYPE: &str = "application/timestamp-query";
pub const REPLY_CONTENT_TYPE: &str = "application/timestamp-reply";

/// §2.4.1: what a TSA must check before it signs anything; the rejection
/// to send otherwise (encode it with [`rejection`]).
pub fn check(tsa: &TimeStampAuthority, request: &[u8]) -> Result<TimeStampReq, PkiStatusInfo> {
    let reject = PkiStatusInfo::rejection;
    let request = TimeStampReq::from_der(request).map_err(|_| {
        reject(
            FailureInfo::BadDataFormat,
            "the body is not a DER TimeStampReq (RFC 3161 §2.4.1)",
        )
    })?;
    if request.version != 1 {
        return Err(reject(
            FailureInfo::BadRequest,
            "only TimeStampReq version 1 is supported",
        ));
    }
    if !request.message_imprint.is_sha256() {
        return Err(reject(
            FailureInfo::BadAlg,
            "only SHA-256 message imprints are accepted",
        ));
    }
    if request.message_imprint.sha256_digest().is_none() {
        return Err(reject(
            FailureInfo::BadDataFormat,
            "a SHA-256 message imprint has 32 octets",
        ));
    }
    // "If the TSA does not recognize the requested policy, it SHALL
    // return a failure (unacceptedPolicy)."
    if request.req_policy.is_some_and(|p| p != tsa.policy()) {
        return Err(reject(
            FailureInfo::UnacceptedPolicy,
            "this TSA issues tokens under one policy only; omit reqPolicy or ask for it",
        ));
    }
    // "If an extension ... is not recognized, the TSA SHALL NOT issue a
    // token and SHALL return a failure (unacceptedExtension)."
    if request.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(reject(
            FailureInfo::UnacceptedExtension,
            "this TSA supports no request extensions",
        ));
    }
    Ok(request)
}

/// The DER TimeStampResp of a request [`check`] refused.
pub fn rejection(status: PkiStatusInfo) -> Result<Vec<u8>, Error> {
    encode(TimeStampResp {
        status,
        time_stamp_token: None,
    })
}

/// The DER TimeStampResp for the outcome of signing a checked request: the
/// token granted, or a failure as a systemFailure rejection (the cause goes
/// to the log only).
pub fn reply(signed: Result<Vec<u8>, Error>) -> Result<Vec<u8>, Error> {
    let signed = signed.and_then(|token| {
        Any::from_der(&token).map_err(|e| Error::internal("token is not DER").with_source(e))
    });
    encode(match signed {
        Ok(token) => TimeStampResp {
            status: PkiStatusInfo::granted(),
            time_stamp_token: Some(token),
        },
        Err(e) => {
            tracing::error!(error = %e, "time-stamp request failed");
            let text = match e.kind() {
                ErrorKind::Unavailable => e.message().to_owned(),
                _ => "the TSA failed; try again later or ask the operator".to_owned(),
            };
            TimeStampResp {
                status: PkiStatusInfo::rejection(FailureInfo::SystemFailure, &text),
                time_stamp_token: None,
            }
        }
    })
}

fn encode(response: TimeStampResp) -> Result<Vec<u8>, Error> {
    response
        .to_der()
        .map_err(|e| Error::internal("TimeStampResp encoding failed").with_source(e))
}
