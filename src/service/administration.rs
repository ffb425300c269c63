//! `qsign.v1.AdministrationService` (SPEC §9) over the [`Registry`]: the
//! bearer from `authorization` metadata, one `From` per wire enum, errors
//! through `status`.

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::status;
use crate::audit::{Event, EventKind, Outcome};
use crate::auth::admin::{self, Administrator};
use crate::proto::administration_service_server::AdministrationService;
use crate::proto::{self, issue_certificate_request, renew_certificate_request};
use crate::registry::model::{self, Order, Reason, Record, Selection};
use crate::registry::{KeySource, Registry};
use crate::signing::SigningCore;
use crate::store::registry::ProfileRow;
use crate::{Error, ErrorKind};

pub struct Administration {
    core: Arc<SigningCore>,
    registry: Arc<Registry>,
}

impl Administration {
    pub fn new(core: Arc<SigningCore>, registry: Arc<Registry>) -> Self {
        Self { core, registry }
    }

    /// SPEC §9: `authorization: Bearer <JWS>` of the trusted IdP; a
    /// refused bearer is recorded (SPEC §11) as a refusal of `call`.
    async fn caller<T>(
        &self,
        call: &'static str,
        request: &Request<T>,
    ) -> Result<Administrator, Status> {
        let verified = self.verify_bearer(request);
        self.checked(call, None, verified).await
    }

    fn verify_bearer<T>(&self, request: &Request<T>) -> Result<Administrator, Error> {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "send `authorization: Bearer <administration token>` metadata",
                )
            })?;
        admin::verify(
            &self.core.verifier,
            bearer,
            &self.registry.settings().admin_audience,
            SystemTime::now(),
        )
    }

    /// Writes `event` to the audit log (if on) before the answer leaves;
    /// a log that cannot be written fails the call with UNAVAILABLE.
    async fn record(&self, event: Event) -> Result<(), Status> {
        let Some(log) = &self.core.audit else {
            return Ok(());
        };
        log.record(event).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "the audit log could not be written");
            status(Error::new(
                ErrorKind::Unavailable,
                "the audit log cannot be written; try again",
            ))
        })
    }

    /// `result` as the answer; an error is first recorded as a refusal of
    /// `call` with its gRPC code (never the message: it may name a person).
    async fn checked<T>(
        &self,
        call: &'static str,
        who: Option<&Administrator>,
        result: Result<T, Error>,
    ) -> Result<T, Status> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => {
                let mut event = event(new_id(), EventKind::Refusal, who);
                event.outcome = Outcome::Refused;
                event.error_code = Some(e.kind().grpc_code_name().to_owned());
                event.detail = Some(call.to_owned());
                self.record(event).await?;
                Err(status(e))
            }
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AdministrationService for Administration {
    async fn put_profile(
        &self,
        request: Request<proto::PutProfileRequest>,
    ) -> Reply<proto::Profile> {
        let who = self.caller("PutProfile", &request).await?;
        let p = request.into_inner().profile.unwrap_or_default();
        let row = ProfileRow {
            id: p.id,
            cvr: p.cvr,
            organization_name: p.organization_name,
            allow: p.allow,
            allowed_clients: p.allowed_clients,
        };
        let saved = self.registry.put_profile(&who, row).await;
        let saved = self.checked("PutProfile", Some(&who), saved).await?;
        let mut done = event(new_id(), EventKind::Administration, Some(&who));
        done.profile = Some(saved.id.to_string());
        done.detail = Some("PutProfile".into());
        self.record(done).await?;
        Ok(Response::new(profile(
            crate::registry::profiles::row(&saved),
            false,
        )))
    }

    async fn list_profiles(
        &self,
        request: Request<proto::ListProfilesRequest>,
    ) -> Reply<proto::ListProfilesResponse> {
        let who = self.caller("ListProfiles", &request).await?;
        let list = self.registry.list_profiles(&who).await;
        let list = self.checked("ListProfiles", Some(&who), list).await?;
        Ok(Response::new(proto::ListProfilesResponse {
            profiles: list.into_iter().map(|(row, ro)| profile(row, ro)).collect(),
        }))
    }

    async fn delete_profile(
        &self,
        request: Request<proto::DeleteProfileRequest>,
    ) -> Reply<proto::DeleteProfileResponse> {
        let who = self.caller("DeleteProfile", &request).await?;
        let id = request.into_inner().id;
        let deleted = self.registry.delete_profile(&who, &id).await;
        self.checked("DeleteProfile", Some(&who), deleted).await?;
        let mut done = event(new_id(), EventKind::Administration, Some(&who));
        done.profile = Some(id);
        done.detail = Some("DeleteProfile".into());
        self.record(done).await?;
        Ok(Response::new(proto::DeleteProfileResponse {}))
    }

    async fn start_email_validation(
        &self,
        request: Request<proto::StartEmailValidationRequest>,
    ) -> Reply<proto::StartEmailValidationResponse> {
        let who = self.caller("StartEmailValidation", &request).await?;
        let email = request.into_inner().email;
        let started = self.registry.start_email_validation(&who, &email).await;
        self.checked("StartEmailValidation", Some(&who), started)
            .await?;
        Ok(Response::new(proto::StartEmailValidationResponse {}))
    }

    async fn confirm_email(
        &self,
        request: Request<proto::ConfirmEmailRequest>,
    ) -> Reply<proto::ConfirmEmailResponse> {
        let who = self.caller("ConfirmEmail", &request).await?;
        let r = request.into_inner();
        let confirmed = self.registry.confirm_email(&who, &r.email, &r.code).await;
        self.checked("ConfirmEmail", Some(&who), confirmed).await?;
        // The address is the contact person's personal data and the code a
        // secret: the record keeps only the address's SHA-256, enough to
        // match a later question about one address, not to read it.
        let mut done = event(new_id(), EventKind::Administration, Some(&who));
        done.detail = Some(format!(
            "ConfirmEmail email_sha256={}",
            hex::encode(Sha256::digest(r.email.trim().to_lowercase().as_bytes()))
        ));
        self.record(done).await?;
        Ok(Response::new(proto::ConfirmEmailResponse {}))
    }

    async fn order_certificate(
        &self,
        request: Request<proto::OrderCertificateRequest>,
    ) -> Reply<proto::Certificate> {
        let who = self.caller("OrderCertificate", &request).await?;
        let r = request.into_inner();
        let retrieval = match r.retrieval() {
            proto::Retrieval::Browser => Some(model::Retrieval::Browser),
            proto::Retrieval::Api => Some(model::Retrieval::Api),
            proto::Retrieval::Unspecified => None,
        };
        let order = Order {
            kind: kind(r.kind()),
            name: r.name,
            contact_name: r.contact_name,
            contact_email: r.contact_email,
            certificate_email: r.certificate_email,
            system_name: r.system_name,
            user_sub: r.user_sub,
            retrieval,
            publish: r.publish,
        };
        let record = self.registry.order(&who, order).await;
        let record = self.checked("OrderCertificate", Some(&who), record).await?;
        let mut done = event(new_id(), EventKind::Administration, Some(&who));
        done.detail = Some(format!(
            "OrderCertificate certificate={} kind={}",
            record.id,
            kind_name(record.kind)
        ));
        self.record(done).await?;
        Ok(Response::new(certificate(&record)))
    }

    async fn issue_certificate(
        &self,
        request: Request<proto::IssueCertificateRequest>,
    ) -> Reply<proto::IssueCertificateResponse> {
        let who = self.caller("IssueCertificate", &request).await?;
        let r = request.into_inner();
        let key = match r.key {
            Some(issue_certificate_request::Key::Csr(csr)) => Some(KeySource::Csr(csr)),
            Some(issue_certificate_request::Key::Pkcs12Password(p)) => {
                Some(KeySource::Generate(p.into()))
            }
            None => None,
        };
        self.issue(&who, &r.id, false, key).await
    }

    async fn renew_certificate(
        &self,
        request: Request<proto::RenewCertificateRequest>,
    ) -> Reply<proto::IssueCertificateResponse> {
        let who = self.caller("RenewCertificate", &request).await?;
        let r = request.into_inner();
        let key = match r.key {
            Some(renew_certificate_request::Key::Csr(csr)) => Some(KeySource::Csr(csr)),
            Some(renew_certificate_request::Key::Pkcs12Password(p)) => {
                Some(KeySource::Generate(p.into()))
            }
            None => None,
        };
        self.issue(&who, &r.id, true, key).await
    }

    async fn revoke_certificate(
        &self,
        request: Request<proto::RevokeCertificateRequest>,
    ) -> Reply<proto::Certificate> {
        let who = self.caller("RevokeCertificate", &request).await?;
        let r = request.into_inner();
        let reason = Reason::from_code(i64::from(r.reason)).ok_or_else(|| {
            Error::invalid_argument("reason is not an RFC 5280 CRLReason qsign offers")
        });
        let reason = self
            .checked("RevokeCertificate", Some(&who), reason)
            .await?;
        let record = self.registry.revoke(&who, &r.id, reason).await;
        let record = self
            .checked("RevokeCertificate", Some(&who), record)
            .await?;
        // Record ids are unique: the certificate's id goes in the detail.
        let mut done = event(new_id(), EventKind::Revocation, Some(&who));
        if !record.der.is_empty() {
            done.certificate(&serial_of(&record.der), &record.der);
        }
        done.detail = Some(format!(
            "RevokeCertificate certificate={} reason={}",
            record.id,
            reason.name()
        ));
        self.record(done).await?;
        Ok(Response::new(certificate(&record)))
    }

    async fn get_certificate(
        &self,
        request: Request<proto::GetCertificateRequest>,
    ) -> Reply<proto::Certificate> {
        let who = self.caller("GetCertificate", &request).await?;
        let id = request.into_inner().id;
        let record = self.registry.get(&who, &id).await;
        let record = self.checked("GetCertificate", Some(&who), record).await?;
        Ok(Response::new(certificate(&record)))
    }

    async fn search_certificates(
        &self,
        request: Request<proto::SearchCertificatesRequest>,
    ) -> Reply<proto::SearchCertificatesResponse> {
        let who = self.caller("SearchCertificates", &request).await?;
        let r = request.into_inner();
        let selection = Selection {
            kind: kind(r.kind()),
            status: status_filter(r.status()),
            query: r.query,
        };
        let found = self
            .registry
            .search(&who, selection, (r.page_size, &r.page_token))
            .await;
        let (page, next) = self
            .checked("SearchCertificates", Some(&who), found)
            .await?;
        Ok(Response::new(proto::SearchCertificatesResponse {
            certificates: page.iter().map(certificate).collect(),
            next_page_token: next,
        }))
    }

    async fn export_certificates(
        &self,
        request: Request<proto::ExportCertificatesRequest>,
    ) -> Reply<proto::ExportCertificatesResponse> {
        let who = self.caller("ExportCertificates", &request).await?;
        let r = request.into_inner();
        let selection = Selection {
            kind: kind(r.kind()),
            status: status_filter(r.status()),
            query: r.query,
        };
        let csv = self.registry.export(&who, selection).await;
        let csv = self.checked("ExportCertificates", Some(&who), csv).await?;
        Ok(Response::new(proto::ExportCertificatesResponse {
            csv: csv.into_bytes(),
        }))
    }
}

impl Administration {
    async fn issue(
        &self,
        who: &Administrator,
        id: &str,
        renew: bool,
        key: Option<KeySource>,
    ) -> Reply<proto::IssueCertificateResponse> {
        let call = if renew {
            "RenewCertificate"
        } else {
            "IssueCertificate"
        };
        let key = key.ok_or_else(|| Error::invalid_argument("give csr or pkcs12_password"));
        let key = self.checked(call, Some(who), key).await?;
        let issued = self
            .registry
            .issue(&self.core.hsm, who, (id, renew), key)
            .await;
        let issued = self.checked(call, Some(who), issued).await?;
        // The issuance is recorded before the certificate (or PKCS#12)
        // leaves. If the log cannot be written the call fails UNAVAILABLE
        // and nothing is returned, although the certificate's row already
        // exists (VALID): the administrator sees it with GetCertificate and
        // can revoke it; the record keeps serial and fingerprint only.
        let mut done = event(new_id(), EventKind::Issuance, Some(who));
        done.certificate(&serial_of(&issued.certificate), &issued.certificate);
        done.detail = Some(format!("{call} certificate={id}"));
        self.record(done).await?;
        Ok(Response::new(proto::IssueCertificateResponse {
            certificate: issued.certificate,
            chain: issued.chain,
            pkcs12: issued.pkcs12.unwrap_or_default(),
        }))
    }
}

/// A record of an administration call by `who` (None: no valid bearer).
fn event(id: String, kind: EventKind, who: Option<&Administrator>) -> Event {
    let mut event = Event::new(id, kind, Outcome::Success);
    event.calling_system = Some(match who {
        Some(who) => format!("administration cvr={}", who.org_cvr.as_str()),
        None => "administration".into(),
    });
    event.sub = who.map(|w| w.sub.clone());
    event
}

/// The id of a record that is not about one certificate.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The serial number of a DER certificate (empty if it does not parse).
fn serial_of(der: &[u8]) -> Vec<u8> {
    <x509_cert::Certificate as der::Decode>::from_der(der)
        .map(|c| c.tbs_certificate.serial_number.as_bytes().to_vec())
        .unwrap_or_default()
}

fn kind_name(k: model::Kind) -> &'static str {
    match k {
        model::Kind::Organization => "organization",
        model::Kind::System => "system",
        model::Kind::User => "user",
    }
}

fn kind(k: proto::CertificateKind) -> Option<model::Kind> {
    match k {
        proto::CertificateKind::Organization => Some(model::Kind::Organization),
        proto::CertificateKind::System => Some(model::Kind::System),
        proto::CertificateKind::User => Some(model::Kind::User),
        proto::CertificateKind::Unspecified => None,
    }
}

fn status_filter(s: proto::CertificateStatus) -> Option<model::Status> {
    match s {
        proto::CertificateStatus::Pending => Some(model::Status::Pending),
        proto::CertificateStatus::Valid => Some(model::Status::Valid),
        proto::CertificateStatus::Revoked => Some(model::Status::Revoked),
        proto::CertificateStatus::Expired => Some(model::Status::Expired),
        proto::CertificateStatus::Unspecified => None,
    }
}

impl From<model::Kind> for proto::CertificateKind {
    fn from(k: model::Kind) -> Self {
        match k {
            model::Kind::Organization => Self::Organization,
            model::Kind::System => Self::System,
            model::Kind::User => Self::User,
        }
    }
}

impl From<model::Status> for proto::CertificateStatus {
    fn from(s: model::Status) -> Self {
        match s {
            model::Status::Pending => Self::Pending,
            model::Status::Valid => Self::Valid,
            model::Status::Revoked => Self::Revoked,
            model::Status::Expired => Self::Expired,
        }
    }
}

fn certificate(r: &Record) -> proto::Certificate {
    let now = model::unix(SystemTime::now());
    let time = |t: Option<i64>| t.map(model::rfc3339).unwrap_or_default();
    proto::Certificate {
        id: r.id.to_string(),
        kind: proto::CertificateKind::from(r.kind).into(),
        name: r.name.clone(),
        status: proto::CertificateStatus::from(r.status(now)).into(),
        serial: r.serial.clone(),
        subject: r.subject.clone(),
        not_before: time(r.not_before),
        not_after: time(r.not_after),
        contact_name: r.contact_name.clone(),
        contact_email: r.contact_email.clone(),
        certificate_email: r.certificate_email.clone(),
        system_name: r.system_name.clone(),
        publish: r.publish,
        der: r.der.clone(),
    }
}

fn profile(row: ProfileRow, read_only: bool) -> proto::Profile {
    proto::Profile {
        id: row.id,
        organization_name: row.organization_name,
        cvr: row.cvr,
        allow: row.allow,
        allowed_clients: row.allowed_clients,
        read_only,
    }
}
