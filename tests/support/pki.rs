//! A throw-away TLS PKI, made at test time with the openssl CLI in a
//! temporary folder (P-256, one day):
//!
//! ```text
//! server-ca ── server      CN=localhost, SAN DNS:localhost, IP:127.0.0.1, serverAuth
//! client-ca ─┬ invoicing   CN=Invoicing,O=Acme A/S,C=DK, clientAuth
//!            └ payroll     CN=Payroll,O=Acme A/S,C=DK, clientAuth
//! rogue-ca  ── rogue       the invoicing subject again, from a CA nobody trusts
//! ```

use std::path::PathBuf;
use std::process::Command;

pub struct TestPki {
    dir: tempfile::TempDir,
}

/// The subjects of the client certificates, as openssl `-subj` takes them.
pub const INVOICING: &str = "/C=DK/O=Acme A\\/S/CN=Invoicing";
pub const PAYROLL: &str = "/C=DK/O=Acme A\\/S/CN=Payroll";

impl TestPki {
    /// Makes every key and certificate; needs openssl on PATH.
    pub fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().expect("temporary folder"),
        };
        for ca in ["server-ca", "client-ca", "rogue-ca"] {
            pki.ca(ca);
        }
        let server = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
        pki.leaf("server", "/CN=localhost", "server-ca", server);
        let client = "extendedKeyUsage=clientAuth\n";
        pki.leaf("invoicing", INVOICING, "client-ca", client);
        pki.leaf("payroll", PAYROLL, "client-ca", client);
        pki.leaf("rogue", INVOICING, "rogue-ca", client);
        pki
    }

    /// `NAME.pem` (a certificate) or `NAME.key` in the folder.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// `[tls]` with the server certificate; with `mtls`, client-ca.pem as
    /// `client_ca` (client certificates required).
    pub fn tls_config(&self, mtls: bool) -> qsign::config::TlsConfig {
        qsign::config::TlsConfig {
            certificate: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: mtls.then(|| self.path("client-ca.pem")),
            client_auth: qsign::config::ClientAuth::Required,
        }
    }

    /// The SHA-256 fingerprint of `NAME.pem` as openssl prints it
    /// (`AB:CD:...`), an independent computation of what qsign matches.
    pub fn fingerprint(&self, name: &str) -> String {
        let out = self.openssl(&[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            &format!("{name}.pem"),
        ]);
        out.trim()
            .split_once('=')
            .map(|(_, hex)| hex.to_owned())
            .expect("openssl prints NAME Fingerprint=HEX")
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN=qsign test {name}"),
            "-days",
            "1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    fn leaf(&self, name: &str, subject: &str, ca: &str, extensions: &str) {
        let (key, csr, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.cnf"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        std::fs::write(self.path(&ext), extensions).expect("write extensions");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// Runs openssl in the folder; its stdout.
    fn openssl(&self, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
