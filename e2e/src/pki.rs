//! A throw-away PKI for TLS tests: a CA, a server certificate for `localhost`/127.0.0.1 signed by
//! it (written as the PEM key store the broker reads: key and chain in one file), a client
//! certificate, and an unrelated CA, all in a temporary directory.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::error::{HarnessError, Result};

pub struct Pki {
    dir: tempfile::TempDir,
}

fn tls(e: rcgen::Error) -> HarnessError {
    HarnessError::Unexpected(format!("generate test certificates: {e}"))
}

impl Pki {
    /// Files: `keystore.pem` (server key + certificate), `ca.pem`, `client.pem`, `client.key`,
    /// `other-ca.pem`.
    pub fn generate() -> Result<Pki> {
        let dir = tempfile::Builder::new()
            .prefix("strait-pki-")
            .tempdir()
            .map_err(|e| HarnessError::io("create temp dir", e))?;
        let ca_key = KeyPair::generate().map_err(tls)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "strait e2e ca");
        let ca_cert = ca.self_signed(&ca_key).map_err(tls)?;
        let issuer = Issuer::new(ca, ca_key);

        // rcgen turns "127.0.0.1" into an IP address SAN, which host-name checks accept.
        let server_key = KeyPair::generate().map_err(tls)?;
        let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(tls)?
            .signed_by(&server_key, &issuer)
            .map_err(tls)?;
        let client_key = KeyPair::generate().map_err(tls)?;
        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        client.distinguished_name.push(DnType::CommonName, "app");
        let client = client.signed_by(&client_key, &issuer).map_err(tls)?;
        let other_key = KeyPair::generate().map_err(tls)?;
        let mut other = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = other.self_signed(&other_key).map_err(tls)?;

        let files = [
            (
                "keystore.pem",
                format!("{}{}", server_key.serialize_pem(), server.pem()),
            ),
            ("ca.pem", ca_cert.pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
            ("other-ca.pem", other.pem()),
        ];
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text)
                .map_err(|e| HarnessError::io("write test certificate", e))?;
        }
        Ok(Pki { dir })
    }

    /// The file `name` of this PKI.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The file `name` as a string, for config values and command lines.
    pub fn path_str(&self, name: &str) -> String {
        path_string(&self.path(name))
    }
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
