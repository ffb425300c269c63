//! The front doors: the only module that knows tonic and hyper's server.
//! gRPC here: protobuf messages become [`SigningCore`] calls and errors
//! statuses (`status::status`), with health and reflection beside it;
//! `http` is the HTTP front door (RFC 3161, CRLs, OCSP, CA certificates,
//! metrics, audit, CSC (SPEC §13), lookup); `tls` holds the TLS set-up both
//! share. `outbound` is the one way out: the RFC 3161 client behind
//! [`crate::tsa::Transport`].

pub mod administration;
pub mod codec;
pub mod csc;
mod guard;
pub mod http;
pub mod lookup;
pub mod observe;
pub mod outbound;
mod status;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tonic::server::NamedService;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::auth::CallingSystem;
use crate::hsm::{Health, KeyAlgorithm};
use crate::limits::{Accept, Guarded};
use crate::proto::administration_service_server::AdministrationServiceServer;
use crate::proto::signing_service_server::{SigningService, SigningServiceServer};
use crate::proto::{self, document};
use crate::signing::{Authorization, Document, Level, PdfOptions, SigningCore};
use crate::Error;
use guard::Guard;
use observe::Observe;
pub use status::status;
pub use tls::Tls;

/// SigningService over a [`SigningCore`].
pub struct Service {
    core: Arc<SigningCore>,
}

impl Service {
    pub fn new(core: Arc<SigningCore>) -> Self {
        Self { core }
    }
}

#[tonic::async_trait]
impl SigningService for Service {
    async fn sign_pdf(
        &self,
        request: Request<proto::SignPdfRequest>,
    ) -> Result<Response<proto::SignPdfResponse>, Status> {
        let client = calling_system(&request).map_err(status)?;
        let caller = caller_name(&request, client.as_ref());
        let request = request.into_inner();
        let authorization = match authorization(
            request.activation_token,
            request.seal_profile,
            request.level,
            request.key_algorithm,
            client,
            caller.clone(),
        ) {
            Ok(authorization) => authorization,
            Err(e) => return Err(status(self.core.refuse(caller, e).await)),
        };
        let options = PdfOptions {
            reason: request.reason,
            location: request.location,
            contact_info: request.contact_info,
            visible: request
                .appearance
                .map(|a| (a.page, [a.x, a.y, a.width, a.height])),
            field_name: request.field_name,
            language: request.language,
            time_zone: request.time_zone,
        };
        let signed = self
            .core
            .sign_pdf(request.pdf, options, authorization)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SignPdfResponse {
            signed_pdf: signed.signed_pdf,
            certificate: signed.certificate,
            signature_id: signed.signature_id,
            repaired: signed.repaired,
        }))
    }

    async fn sign_pdf_digest(
        &self,
        request: Request<proto::SignPdfDigestRequest>,
    ) -> Result<Response<proto::SignPdfDigestResponse>, Status> {
        let client = calling_system(&request).map_err(status)?;
        let caller = caller_name(&request, client.as_ref());
        let request = request.into_inner();
        let authorization = match authorization(
            request.activation_token,
            request.seal_profile,
            request.level,
            request.key_algorithm,
            client,
            caller.clone(),
        ) {
            Ok(authorization) => authorization,
            Err(e) => return Err(status(self.core.refuse(caller, e).await)),
        };
        let mut signed = self
            .core
            .sign_pdf_digest(
                &request.byte_range_digest,
                &request.document_digest,
                authorization,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SignPdfDigestResponse {
            cms: signed.signature.cms.pop().unwrap_or_default(),
            certificate: signed.signature.certificate,
            signature_id: signed.signature.signature_id,
            validation_certificates: signed.validation_certificates,
            crls: signed.crls,
            ocsps: signed.ocsps,
        }))
    }

    async fn time_stamp(
        &self,
        request: Request<proto::TimeStampRequest>,
    ) -> Result<Response<proto::TimeStampResponse>, Status> {
        let digest = request.into_inner().sha256_digest;
        let token = self
            .core
            .anonymous_time_stamp(&digest)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::TimeStampResponse {
            time_stamp_token: token,
        }))
    }

    async fn sign_detached(
        &self,
        request: Request<proto::SignDetachedRequest>,
    ) -> Result<Response<proto::SignDetachedResponse>, Status> {
        let client = calling_system(&request).map_err(status)?;
        let caller = caller_name(&request, client.as_ref());
        let request = request.into_inner();
        let authorization = match authorization(
            request.activation_token,
            request.seal_profile,
            request.level,
            request.key_algorithm,
            client,
            caller.clone(),
        ) {
            Ok(authorization) => authorization,
            Err(e) => return Err(status(self.core.refuse(caller, e).await)),
        };
        let documents = request
            .documents
            .into_iter()
            .enumerate()
            .map(|(i, d)| match d.data {
                Some(document::Data::Content(c)) => Ok(Document::Content(c)),
                Some(document::Data::Sha256Digest(d)) => Ok(Document::Digest(d)),
                None => Err(Error::invalid_argument(format!(
                    "document {i} has neither content nor sha256_digest"
                ))),
            })
            .collect::<Result<Vec<_>, _>>();
        let documents = match documents {
            Ok(documents) => documents,
            Err(e) => {
                let calling_system = authorization.calling_system.clone();
                return Err(status(self.core.refuse(calling_system, e).await));
            }
        };
        let signed = self
            .core
            .sign_detached(documents, authorization)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SignDetachedResponse {
            cms: signed.cms,
            certificate: signed.certificate,
            signature_id: signed.signature_id,
        }))
    }

    async fn get_trust_chain(
        &self,
        _request: Request<proto::GetTrustChainRequest>,
    ) -> Result<Response<proto::GetTrustChainResponse>, Status> {
        Ok(Response::new(proto::GetTrustChainResponse {
            certificates: self.core.trust_chain.clone(),
            tsa_certificate: self
                .core
                .tsa
                .as_ref()
                .map(|tsa| tsa.certificate_der().to_vec())
                .unwrap_or_default(),
        }))
    }
}

/// Who calls, for the audit record (SPEC §11): the peer address for now;
/// the mTLS client certificate's name replaces it once it is known.
/// The calling system as the audit log records it (SPEC §11): its client
/// certificate when it has one, else its address.
fn caller_name<T>(request: &Request<T>, client: Option<&CallingSystem>) -> Option<String> {
    client
        .map(CallingSystem::to_string)
        .or_else(|| request.remote_addr().map(|a| a.ip().to_string()))
}

/// The common request fields (SPEC §2), checked.
fn authorization(
    activation_token: String,
    seal_profile: String,
    level: i32,
    key_algorithm: i32,
    client: Option<CallingSystem>,
    calling_system: Option<String>,
) -> Result<Authorization, Error> {
    Ok(Authorization {
        calling_system,
        level: level_of(level)?,
        activation_token,
        seal_profile: Some(seal_profile).filter(|p| !p.is_empty()),
        key_algorithm: key_algorithm_of(key_algorithm)?,
        client,
    })
}

/// The verified client certificate of the connection (RFC 8446 §4.4.2:
/// the end-entity certificate comes first); none without mTLS.
fn calling_system<T>(request: &Request<T>) -> Result<Option<CallingSystem>, Error> {
    let certificates = request.peer_certs();
    let Some(certificate) = certificates.as_deref().and_then(|c| c.first()) else {
        return Ok(None);
    };
    Ok(Some(CallingSystem::from_der(certificate)?))
}

fn key_algorithm_of(value: i32) -> Result<KeyAlgorithm, Error> {
    use proto::KeyAlgorithm as P;
    match P::try_from(value) {
        Ok(P::Unspecified | P::EcP256) => Ok(KeyAlgorithm::EcP256),
        Ok(P::EcP384) => Ok(KeyAlgorithm::EcP384),
        Ok(P::Rsa2048) => Ok(KeyAlgorithm::Rsa2048),
        Ok(P::Rsa3072) => Ok(KeyAlgorithm::Rsa3072),
        Err(_) => Err(Error::invalid_argument(format!(
            "unknown key_algorithm {value}; use EC_P256, EC_P384, RSA_2048 or RSA_3072"
        ))),
    }
}

/// SPEC §6 levels; unspecified is the server's default.
fn level_of(value: i32) -> Result<Option<Level>, Error> {
    use proto::Level as P;
    match P::try_from(value) {
        Ok(P::Unspecified) => Ok(None),
        Ok(P::BB) => Ok(Some(Level::BB)),
        Ok(P::BT) => Ok(Some(Level::BT)),
        Ok(P::BLt) => Ok(Some(Level::BLt)),
        Ok(P::BLta) => Ok(Some(Level::BLta)),
        Err(_) => Err(Error::invalid_argument(format!("unknown level {value}"))),
    }
}

/// Serves SigningService, grpc.health.v1 and reflection on `listener`
/// until `shutdown` completes; over TLS (HTTP/2 by ALPN) with `tls`.
pub async fn serve(
    core: Arc<SigningCore>,
    listener: TcpListener,
    tls: Option<&Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    // Twice the document limit: a message above it is still decoded, so that
    // the handler can answer RESOURCE_EXHAUSTED with advice (SPEC §7).
    let max_message = core
        .limits
        .max_document_bytes
        .saturating_mul(2)
        .saturating_add(1 << 20);
    let limiter = core.limiter.clone();
    let mut hsm_health = core.hsm.health();
    let signing = SigningServiceServer::new(Service::new(core.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let signing = Observe::new(Guard::new(signing, limiter.clone(), max_message));
    let (health_reporter, health) = tonic_health::server::health_reporter();
    report(&mut hsm_health, &health_reporter).await;
    let follower = tokio::spawn(follow_hsm(hsm_health, health_reporter));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::internal("reflection service").with_source(e))?;
    // SPEC §9: the registry's administration beside signing, and its
    // periodic contact mails; behind the same per-caller limits (§12).
    let administration = core.registry.clone().map(|registry| {
        registry.spawn_expiry_notices();
        let server = AdministrationServiceServer::new(administration::Administration::new(
            core.clone(),
            registry,
        ));
        Observe::new(Guard::new(server, limiter.clone(), max_message))
    });
    let config = &limiter.config;
    // RFC 9113 §6.7 PING: a peer that does not answer within the interval
    // is gone; idle and over-cap connections are closed by `Accept`.
    let keepalive = Some(std::time::Duration::from_secs(config.keepalive_seconds));
    let router = Server::builder()
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(keepalive)
        // No max_connection_age_grace: tonic 0.14 then skips the graceful
        // close; requests in progress end by the guard's deadline anyway.
        .max_connection_age(config.max_connection_age())
        .add_service(Observe::new(health))
        .add_service(reflection)
        .add_service(signing)
        .add_optional_service(administration);
    let incoming = Accept::new(listener, limiter.connections(), config.idle_timeout());
    let served = match tls {
        Some(tls) => {
            let incoming = tls::incoming(incoming, tls.acceptor(tls::ALPN_GRPC));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    follower.abort();
    served.map_err(|e| Error::internal("gRPC server failed").with_source(e))
}

/// SPEC §12: health is NOT_SERVING while the token is unreachable.
async fn follow_hsm(
    mut hsm: tokio::sync::watch::Receiver<Health>,
    reporter: tonic_health::server::HealthReporter,
) {
    while hsm.changed().await.is_ok() {
        report(&mut hsm, &reporter).await;
    }
}

/// The token's health as the status of the service and of the server as a
/// whole ("").
async fn report(
    hsm: &mut tokio::sync::watch::Receiver<Health>,
    reporter: &tonic_health::server::HealthReporter,
) {
    let status = match *hsm.borrow_and_update() {
        Health::Up => tonic_health::ServingStatus::Serving,
        Health::Down => tonic_health::ServingStatus::NotServing,
    };
    reporter
        .set_service_status(SigningServiceServer::<Service>::NAME, status)
        .await;
    reporter.set_service_status("", status).await;
}

/// tonic learns the peer address through this (`Request::remote_addr`).
impl Connected for Guarded<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.get_ref().connect_info()
    }
}
