//! Mail of the registry (SPEC §9): the e-mail validation code and the
//! contact person's notices. Development: RFC 5322 `.eml` files in the
//! outbox directory; production: SMTP submission with STARTTLS required
//! (RFC 3207), through lettre.

use std::time::SystemTime;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::settings::{MailSettings, MailTransport};
use crate::{Error, ErrorKind};

/// One plain-text mail.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Sends mail as configured.
#[derive(Clone, Debug)]
pub struct Mailer {
    settings: MailSettings,
}

impl Mailer {
    pub fn new(settings: MailSettings) -> Self {
        Self { settings }
    }

    /// Sends `mail`; UNAVAILABLE when it cannot leave.
    pub async fn send(&self, mail: Mail) -> Result<(), Error> {
        let message = Message::builder()
            .from(
                self.settings
                    .from
                    .parse()
                    .map_err(|e| Error::internal("[mail] from is not an address").with_source(e))?,
            )
            .to(mail.to.parse().map_err(|e| {
                Error::invalid_argument(format!("{:?} is not an e-mail address", mail.to))
                    .with_source(e)
            })?)
            .subject(mail.subject)
            .date(SystemTime::now())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|e| Error::internal("the mail cannot be built").with_source(e))?;
        match &self.settings.transport {
            MailTransport::Outbox(dir) => write_outbox(dir, &message.formatted()).await,
            MailTransport::Smtp {
                host,
                port,
                user,
                password_env,
            } => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    .map_err(unavailable)?
                    .port(*port);
                if let (Some(user), Some(env)) = (user, password_env) {
                    let password = std::env::var(env).map_err(|_| {
                        Error::new(
                            ErrorKind::Unavailable,
                            format!("environment variable {env} (SMTP password) is not set"),
                        )
                    })?;
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                builder
                    .build()
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(unavailable)
            }
        }
    }
}

/// One `.eml` per mail, written under a temporary name and renamed, so a
/// reader never sees half a file.
async fn write_outbox(dir: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |e: std::io::Error| {
        Error::new(ErrorKind::Unavailable, "the mail outbox cannot be written").with_source(e)
    };
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    // Nanoseconds first: the names sort in the order the mails were written.
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{nanos:020}-{}", uuid::Uuid::new_v4());
    let temporary = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&temporary, bytes).await.map_err(io)?;
    tokio::fs::rename(&temporary, dir.join(format!("{name}.eml")))
        .await
        .map_err(io)
}

fn unavailable(e: lettre::transport::smtp::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "the mail server did not take the mail",
    )
    .with_source(e)
}
