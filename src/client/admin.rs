//! `qsign admin ...`: the administrator's client of SPEC §9
//! (AdministrationService). In development `--dev-admin SUB` mints the
//! administration token from the state directory's dev IdP key.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::{status_error, ClientError, Connection};
use crate::auth::dev::DevIdp;
use crate::proto::administration_service_client::AdministrationServiceClient;
use crate::proto::{self, issue_certificate_request as issue_key};
use crate::registry::model::{Kind, Reason, Retrieval, Status};
use crate::state;

#[derive(Args)]
pub struct AdminArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// CA certificate (PEM) of an https server.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The administration token (compact JWS from the IdP), in a file.
    #[arg(long, conflicts_with = "dev_admin")]
    pub token: Option<PathBuf>,
    /// DEVELOPMENT: mint the token from the state dir's dev IdP for this `sub`.
    #[arg(long)]
    pub dev_admin: Option<String>,
    /// With --dev-admin: the token's roles, comma-separated ("" = an employee).
    #[arg(long, default_value = "user_admin")]
    pub roles: String,
    /// With --dev-admin: the token's org_cvr.
    #[arg(long, default_value = state::DEV_CVR)]
    pub org_cvr: String,
    /// With --dev-admin: the token's aud ([registry] admin_audience).
    #[arg(long, default_value = crate::auth::admin::DEFAULT_AUDIENCE)]
    pub audience: String,
    #[arg(long, default_value = ".qsign")]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// List the organisation's profiles (TOML defaults marked read-only).
    ProfilesList,
    /// Create or change a profile of the organisation (SPEC §4).
    ProfilesPut {
        id: String,
        #[arg(long)]
        organization_name: String,
        /// sign and/or seal.
        #[arg(long, value_delimiter = ',', required = true)]
        allow: Vec<String>,
        #[arg(long)]
        allowed_client: Vec<String>,
    },
    ProfilesDelete {
        id: String,
    },
    /// Mail a one-time code to EMAIL.
    ValidateEmailStart {
        email: String,
    },
    /// Confirm EMAIL with the code from the mail.
    ValidateEmailConfirm {
        email: String,
        code: String,
    },
    /// Order a certificate; prints its id.
    Order(OrderArgs),
    /// Issue an ordered certificate; writes OUT.pem (and OUT.p12).
    Issue(IssueArgs),
    /// Renew a certificate (new key, new validity); as issue.
    Renew(IssueArgs),
    Revoke {
        id: String,
        #[arg(long, value_enum, default_value_t = Reason::Unspecified)]
        reason: Reason,
    },
    Get {
        id: String,
    },
    /// Certificates by id or part of a name or e-mail (SPEC §9), a page.
    Search {
        #[command(flatten)]
        select: SelectArgs,
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// The selection as CSV (RFC 4180) on stdout or into --output.
    Export {
        #[command(flatten)]
        select: SelectArgs,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct OrderArgs {
    #[arg(long, value_enum)]
    kind: Kind,
    #[arg(long)]
    name: String,
    #[arg(long)]
    contact_name: String,
    #[arg(long)]
    contact_email: String,
    #[arg(long, default_value = "")]
    certificate_email: String,
    #[arg(long, default_value = "")]
    system_name: String,
    #[arg(long, default_value = "")]
    user_sub: String,
    #[arg(long, value_enum, default_value_t = Retrieval::Api)]
    retrieval: Retrieval,
    #[arg(long)]
    publish: bool,
}

impl From<OrderArgs> for proto::OrderCertificateRequest {
    fn from(a: OrderArgs) -> Self {
        let retrieval = match a.retrieval {
            Retrieval::Browser => proto::Retrieval::Browser,
            Retrieval::Api => proto::Retrieval::Api,
        };
        Self {
            kind: wire_kind(a.kind).into(),
            name: a.name,
            contact_name: a.contact_name,
            contact_email: a.contact_email,
            certificate_email: a.certificate_email,
            system_name: a.system_name,
            user_sub: a.user_sub,
            retrieval: retrieval.into(),
            publish: a.publish,
        }
    }
}

/// SPEC §9 selection: query, kind, status.
#[derive(Args)]
pub struct SelectArgs {
    #[arg(default_value = "")]
    query: String,
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    #[arg(long, value_enum)]
    status: Option<Status>,
}

impl SelectArgs {
    fn wire(&self) -> (i32, i32) {
        (
            self.kind
                .map_or(proto::CertificateKind::Unspecified, wire_kind)
                .into(),
            self.status
                .map_or(proto::CertificateStatus::Unspecified, wire_status)
                .into(),
        )
    }
}

#[derive(Args)]
pub struct IssueArgs {
    pub id: String,
    /// A PKCS#10 request (PEM or DER): the key stays with you.
    #[arg(long, conflicts_with_all = ["pkcs12_password_file", "pkcs12_password_env"])]
    pub csr: Option<PathBuf>,
    /// A key made for you, returned in OUT.p12 under the password in this file.
    #[arg(long)]
    pub pkcs12_password_file: Option<PathBuf>,
    /// ... or in this environment variable.
    #[arg(long)]
    pub pkcs12_password_env: Option<String>,
    /// Output prefix: OUT.pem (certificate, then chain), OUT.p12.
    #[arg(short, long)]
    pub out: PathBuf,
}

/// Runs one admin command; what it prints goes to stdout.
pub async fn run(args: AdminArgs) -> Result<(), ClientError> {
    let token = token(&args)?;
    let connection = Connection {
        server: args.server.clone(),
        ca: args.ca.clone(),
        identity: None,
    };
    let client = AdministrationServiceClient::new(super::channel(&connection).await?);
    let mut admin = Admin { client, token };
    admin.command(args.command).await
}

struct Admin {
    client: AdministrationServiceClient<Channel>,
    token: String,
}

impl Admin {
    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ClientError> {
        let mut request = tonic::Request::new(message);
        let value: MetadataValue<_> = format!("Bearer {}", self.token).parse()?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    async fn command(&mut self, command: AdminCommand) -> Result<(), ClientError> {
        use AdminCommand as C;
        let c = &mut self.client.clone();
        match command {
            C::ProfilesList => {
                let list = c
                    .list_profiles(self.request(proto::ListProfilesRequest {})?)
                    .await
                    .map_err(status_error)?;
                for p in list.into_inner().profiles {
                    let ro = if p.read_only {
                        " (read-only, from the configuration)"
                    } else {
                        ""
                    };
                    println!(
                        "{}\t{}\t{}\t{}{ro}",
                        p.id,
                        p.cvr,
                        p.organization_name,
                        p.allow.join(",")
                    );
                }
            }
            C::ProfilesPut {
                id,
                organization_name,
                allow,
                allowed_client,
            } => {
                let profile = proto::Profile {
                    id,
                    organization_name,
                    cvr: String::new(),
                    allow,
                    allowed_clients: allowed_client,
                    read_only: false,
                };
                let mut p = profile;
                p.cvr = self.org_cvr()?;
                let saved = c
                    .put_profile(self.request(proto::PutProfileRequest { profile: Some(p) })?)
                    .await
                    .map_err(status_error)?;
                println!("{}", saved.into_inner().id);
            }
            C::ProfilesDelete { id } => {
                c.delete_profile(self.request(proto::DeleteProfileRequest { id })?)
                    .await
                    .map_err(status_error)?;
            }
            C::ValidateEmailStart { email } => {
                c.start_email_validation(
                    self.request(proto::StartEmailValidationRequest { email })?,
                )
                .await
                .map_err(status_error)?;
                eprintln!("a code was mailed; confirm it with validate-email-confirm");
            }
            C::ValidateEmailConfirm { email, code } => {
                c.confirm_email(self.request(proto::ConfirmEmailRequest { email, code })?)
                    .await
                    .map_err(status_error)?;
                eprintln!("validated");
            }
            C::Order(order) => {
                let request = proto::OrderCertificateRequest::from(order);
                let record = c
                    .order_certificate(self.request(request)?)
                    .await
                    .map_err(status_error)?;
                println!("{}", record.into_inner().id);
            }
            C::Issue(a) => self.issue(a, false).await?,
            C::Renew(a) => self.issue(a, true).await?,
            C::Revoke { id, reason } => {
                let request = proto::RevokeCertificateRequest {
                    id,
                    reason: reason.code() as i32,
                };
                let record = c
                    .revoke_certificate(self.request(request)?)
                    .await
                    .map_err(status_error)?;
                print_certificate(&record.into_inner());
            }
            C::Get { id } => {
                let record = c
                    .get_certificate(self.request(proto::GetCertificateRequest { id })?)
                    .await
                    .map_err(status_error)?;
                print_certificate(&record.into_inner());
            }
            C::Search {
                select,
                page_size,
                page_token,
            } => self.search(select, page_size, page_token).await?,
            C::Export { select, output } => self.export(select, output).await?,
        }
        Ok(())
    }

    async fn search(
        &mut self,
        select: SelectArgs,
        page_size: u32,
        page_token: String,
    ) -> Result<(), ClientError> {
        let (kind, status) = select.wire();
        let request = proto::SearchCertificatesRequest {
            query: select.query,
            kind,
            status,
            page_size,
            page_token,
        };
        let page = self
            .client
            .clone()
            .search_certificates(self.request(request)?)
            .await
            .map_err(status_error)?
            .into_inner();
        for r in &page.certificates {
            let (kind, status) = (kind_name(r.kind), status_name(r.status));
            println!("{}\t{kind}\t{}\t{status}\t{}", r.id, r.name, r.serial);
        }
        if !page.next_page_token.is_empty() {
            eprintln!("more: --page-token {}", page.next_page_token);
        }
        Ok(())
    }

    async fn export(
        &mut self,
        select: SelectArgs,
        output: Option<PathBuf>,
    ) -> Result<(), ClientError> {
        let (kind, status) = select.wire();
        let request = proto::ExportCertificatesRequest {
            query: select.query,
            kind,
            status,
        };
        let csv = self
            .client
            .clone()
            .export_certificates(self.request(request)?)
            .await
            .map_err(status_error)?
            .into_inner()
            .csv;
        match output {
            Some(path) => std::fs::write(&path, csv)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
            None => print!("{}", String::from_utf8_lossy(&csv)),
        }
        Ok(())
    }

    async fn issue(&mut self, a: IssueArgs, renew: bool) -> Result<(), ClientError> {
        let key = match (&a.csr, &a.pkcs12_password_file, &a.pkcs12_password_env) {
            (Some(csr), None, None) => issue_key::Key::Csr(
                std::fs::read(csr).map_err(|e| format!("cannot read {}: {e}", csr.display()))?,
            ),
            (None, Some(file), None) => issue_key::Key::Pkcs12Password(
                std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            (None, None, Some(var)) => issue_key::Key::Pkcs12Password(
                std::env::var(var).map_err(|_| format!("{var} is not set"))?,
            ),
            _ => {
                return Err(
                    "give one of --csr, --pkcs12-password-file, --pkcs12-password-env".into(),
                )
            }
        };
        let c = &mut self.client.clone();
        let reply = if renew {
            let key = match key {
                issue_key::Key::Csr(c) => proto::renew_certificate_request::Key::Csr(c),
                issue_key::Key::Pkcs12Password(p) => {
                    proto::renew_certificate_request::Key::Pkcs12Password(p)
                }
            };
            c.renew_certificate(self.request(proto::RenewCertificateRequest {
                id: a.id,
                key: Some(key),
            })?)
            .await
        } else {
            c.issue_certificate(self.request(proto::IssueCertificateRequest {
                id: a.id,
                key: Some(key),
            })?)
            .await
        }
        .map_err(status_error)?
        .into_inner();
        let mut pem = state::pem_certificate(&reply.certificate)?;
        for der in &reply.chain {
            pem.push_str(&state::pem_certificate(der)?);
        }
        let out = |ext: &str| PathBuf::from(format!("{}.{ext}", a.out.display()));
        std::fs::write(out("pem"), pem)?;
        println!("{}", out("pem").display());
        if !reply.pkcs12.is_empty() {
            write_private(&out("p12"), &reply.pkcs12)?;
            println!("{}", out("p12").display());
        }
        Ok(())
    }

    fn org_cvr(&self) -> Result<String, ClientError> {
        let payload = self
            .token
            .split('.')
            .nth(1)
            .ok_or("the token is not a compact JWS")?;
        use base64::Engine;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))?;
        let claims: serde_json::Value = serde_json::from_slice(&json)?;
        Ok(claims["org_cvr"].as_str().unwrap_or_default().to_owned())
    }
}

fn token(args: &AdminArgs) -> Result<String, ClientError> {
    match (&args.token, &args.dev_admin) {
        (Some(file), None) => Ok(std::fs::read_to_string(file)?.trim().to_owned()),
        (None, Some(sub)) => {
            let key_path = args.state_dir.join(state::DEV_IDP_KEY);
            let pem = std::fs::read_to_string(&key_path).map_err(|e| {
                format!(
                    "cannot read the dev IdP key {} ({e}); start `qsign serve` first",
                    key_path.display()
                )
            })?;
            let idp = DevIdp::from_pkcs8_pem(&pem)?;
            let roles: Vec<String> = args
                .roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(crate::auth::admin::mint_dev(
                &idp,
                state::DEV_ISSUER,
                &args.audience,
                (sub, &args.org_cvr, &roles),
                Duration::from_secs(300),
            )?)
        }
        _ => Err("give --token FILE or --dev-admin SUB".into()),
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

fn wire_kind(k: Kind) -> proto::CertificateKind {
    match k {
        Kind::Organization => proto::CertificateKind::Organization,
        Kind::System => proto::CertificateKind::System,
        Kind::User => proto::CertificateKind::User,
    }
}

fn wire_status(s: Status) -> proto::CertificateStatus {
    match s {
        Status::Pending => proto::CertificateStatus::Pending,
        Status::Valid => proto::CertificateStatus::Valid,
        Status::Revoked => proto::CertificateStatus::Revoked,
        Status::Expired => proto::CertificateStatus::Expired,
    }
}

fn kind_name(k: i32) -> &'static str {
    proto::CertificateKind::try_from(k).map_or("?", |k| k.as_str_name())
}

fn status_name(s: i32) -> &'static str {
    proto::CertificateStatus::try_from(s).map_or("?", |s| s.as_str_name())
}

fn print_certificate(r: &proto::Certificate) {
    use std::io::Write;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "id: {}\nkind: {}\nname: {}\nstatus: {}\nserial: {}\nsubject: {}\nnot_before: {}\nnot_after: {}\ncontact: {} <{}>\ncertificate_email: {}\nsystem_name: {}",
        r.id, kind_name(r.kind), r.name, status_name(r.status), r.serial, r.subject, r.not_before, r.not_after,
        r.contact_name, r.contact_email, r.certificate_email, r.system_name);
}
