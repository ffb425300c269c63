//! The registry's SMTP transport (SPEC §9) requires STARTTLS (RFC 3207): a
//! server that does not offer it gets no mail, nothing in plaintext.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use qsign::registry::mail::{Mail, Mailer};
use qsign::registry::settings::{MailSettings, MailTransport};

/// A plaintext SMTP server that never offers STARTTLS; what clients said.
fn plaintext_smtp() -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut said = Vec::new();
        out.write_all(b"220 fake ESMTP\r\n").unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let verb = line
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            said.push(verb.clone());
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-fake\r\n250 SIZE 100000\r\n",
                "QUIT" => b"221 bye\r\n",
                _ => b"250 ok\r\n",
            };
            if out.write_all(reply).is_err() || verb == "QUIT" {
                break;
            }
        }
        said
    });
    (port, serving)
}

#[tokio::test]
async fn smtp_without_starttls_sends_nothing() {
    let (port, server) = plaintext_smtp();
    let mailer = Mailer::new(MailSettings {
        from: "qsign <noreply@acme.example>".into(),
        transport: MailTransport::Smtp {
            host: "127.0.0.1".into(),
            port,
            user: None,
            password_env: None,
        },
    });
    let mail = Mail {
        to: "ida@acme.example".into(),
        subject: "test".into(),
        body: "Kode: 12345678\r\n".into(),
    };
    let refused = mailer.send(mail).await.expect_err("no STARTTLS, no mail");
    assert_eq!(refused.kind(), qsign::ErrorKind::Unavailable);
    drop(mailer);
    let said = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert!(
        !said.iter().any(|v| v == "MAIL" || v == "DATA"),
        "nothing sent in plaintext: {said:?}"
    );
}
