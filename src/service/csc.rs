//! The CSC API over HTTP/JSON (SPEC §13): `/csc/v1/...` with the field
//! names of CSC v1.0.4.0 (as pyHanko's `csc_signer` sends them) and
//! `/csc/v2/...` with CSC v2.0's, plus v2's `signatures/signDoc`. Decodes
//! the JSON, calls the flow ([`Csc`]), encodes its answer or a CSC error
//! (v1.0.4.0 §10.1, v2.0 §10.1: `error`, `error_description`).

mod wire;

use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::signing::csc::{Csc, CscError, CscErrorKind};
use wire::Version;

/// The prefix of every CSC path.
pub const PREFIX: &str = "/csc/";
/// How long a client may take to send its body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

type Reply = Response<Full<Bytes>>;

/// Answers one request under `/csc/`.
pub async fn handle(request: Request<Incoming>, csc: &Csc) -> Reply {
    match dispatch(request, csc).await {
        Ok(value) => json(StatusCode::OK, &value),
        Err(e) => error(&e),
    }
}

async fn dispatch(request: Request<Incoming>, csc: &Csc) -> Result<Value, CscError> {
    let path = request.uri().path().to_owned();
    let (version, method) = path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(v, m)| Some((Version::parse(v)?, m)))
        .ok_or_else(|| not_found(&path))?;
    // CSC v1.0.4.0 §11.1: info needs no authorisation and may be a GET.
    if method == "info" {
        return Ok(wire::info(version, csc));
    }
    if request.method() != Method::POST {
        return Err(CscError::invalid_request(
            "CSC methods are called with POST",
        ));
    }
    let bearer = bearer(&request);
    let user = csc.authenticate(bearer.as_deref())?;
    let body = body(request, csc.max_request_bytes()).await?;
    match method {
        "credentials/list" => Ok(wire::list(version, &csc.credentials(&user).await?)),
        "credentials/info" => {
            let request: wire::InfoRequest = parse(&body)?;
            let info = csc.prepare(&user, &request.credential_id).await?;
            Ok(wire::credential_info(version, &request, &info))
        }
        "credentials/authorize" => {
            let request: wire::AuthorizeRequest = parse(&body)?;
            let hashes = wire::hashes(request.hashes.as_deref())?;
            let token = request.activation_token()?;
            let sad = csc
                .authorize(&user, &request.credential_id, &hashes, token)
                .await?;
            Ok(wire::sad(&sad))
        }
        "signatures/signHash" => {
            let request: wire::SignHashRequest = parse(&body)?;
            request.check_algorithms(csc)?;
            let hashes = wire::hashes(request.hashes.as_deref())?;
            let signatures = csc
                .sign_hash(&user, &request.credential_id, &request.sad, &hashes)
                .await?;
            Ok(wire::signatures(&signatures))
        }
        "signatures/signDoc" if version == Version::V2 => {
            let request: wire::SignDocRequest = parse(&body)?;
            let (documents, level) = request.documents()?;
            let signed = csc
                .sign_doc(
                    &user,
                    &request.credential_id,
                    &request.sad,
                    documents,
                    level,
                )
                .await?;
            Ok(wire::signed_documents(&signed))
        }
        _ => Err(not_found(&path)),
    }
}

fn not_found(path: &str) -> CscError {
    CscError::new(
        CscErrorKind::NotFound,
        format!("{path} is not a CSC method here: /csc/v1/... or /csc/v2/..."),
    )
}

/// RFC 6750 §2.1: `Authorization: Bearer <token>`.
fn bearer(request: &Request<Incoming>) -> Option<String> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

async fn body(request: Request<Incoming>, limit: usize) -> Result<Bytes, CscError> {
    let collected = Limited::new(request.into_body(), limit).collect();
    match tokio::time::timeout(READ_TIMEOUT, collected).await {
        Err(_) => Err(CscError::invalid_request("the body did not arrive in time")),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(CscError::new(
            CscErrorKind::TooLarge,
            format!("a request is at most {limit} bytes: sign big PDFs by hash (signHash)"),
        )),
        Ok(Err(_)) => Err(CscError::invalid_request("the body could not be read")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The JSON body; an empty body is `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, CscError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| CscError::invalid_request(format!("invalid JSON request: {e}")))
}

/// CSC v1.0.4.0 §10.1, v2.0 §10.1: the status of each error code.
fn error(e: &CscError) -> Reply {
    let status = match e.kind {
        CscErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        CscErrorKind::InvalidToken => StatusCode::UNAUTHORIZED,
        CscErrorKind::AccessDenied => StatusCode::FORBIDDEN,
        CscErrorKind::NotFound => StatusCode::NOT_FOUND,
        CscErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        CscErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        CscErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        CscErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    let code = e.kind.code();
    let body = serde_json::json!({ "error": code, "error_description": e.description });
    let mut reply = json(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6750 §3.
        reply.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    reply
}

fn json(status: StatusCode, value: &Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(value.to_string())));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}
