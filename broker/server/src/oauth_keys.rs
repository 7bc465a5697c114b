//! The JSON Web Key Set OAUTHBEARER access tokens are verified against
//! (`sasl.oauthbearer.jwks.endpoint.url`, a file): read at start, where a missing or unusable
//! file stops the broker, and read again every `sasl.oauthbearer.jwks.endpoint.refresh.ms` by
//! the maintenance task, so keys rotated into the file are used without a restart. Connections
//! take the current set ([`OAuthKeys::jwks`]) when a login starts. A refresh that cannot read or
//! parse the file, or finds no usable key in it, keeps the previous set and logs why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use strait_auth::oauth::{Jwks, OAuthServer, Validation};
use strait_config::OAuthSettings;
use tracing::{info, warn};

use crate::clock::now_ms;

/// The key set in use and how tokens are validated.
pub struct OAuthKeys {
    path: PathBuf,
    refresh: Duration,
    validation: Validation,
    current: RwLock<Arc<Jwks>>,
    /// The file's bytes the current set was parsed from: an unchanged file is not parsed (nor
    /// its skipped keys logged) again.
    read: Mutex<Vec<u8>>,
}

impl OAuthKeys {
    /// Reads the key set; `Err` says why the broker cannot serve OAUTHBEARER with it.
    pub fn load(settings: &OAuthSettings) -> anyhow::Result<OAuthKeys> {
        let path = settings.jwks_path.clone();
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the JSON Web Key Set {} (sasl.oauthbearer.jwks.endpoint.url): {e}",
                path.display()
            )
        })?;
        let jwks = parse(&path, &bytes).map_err(|why| {
            anyhow::anyhow!(
                "{why} (sasl.oauthbearer.jwks.endpoint.url); OAUTHBEARER cannot be served"
            )
        })?;
        info!(path = %path.display(), keys = jwks.len(), "OAUTHBEARER JSON Web Key Set loaded");
        Ok(OAuthKeys {
            path,
            refresh: Duration::from_millis(settings.refresh_ms.max(1)),
            validation: settings.validation.clone(),
            current: RwLock::new(Arc::new(jwks)),
            read: Mutex::new(bytes),
        })
    }

    /// How often [`OAuthKeys::refresh`] is due.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// The key set in use.
    pub fn jwks(&self) -> Arc<Jwks> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The server half of one OAUTHBEARER exchange, validating against the current keys now.
    pub fn server(&self) -> OAuthServer {
        OAuthServer::new(self.jwks(), self.validation.clone(), now_ms())
    }

    /// Reads the file again (blocking I/O: call it off the async workers). Returns whether the
    /// key set changed; a file that cannot be used keeps the previous set.
    pub fn refresh(&self) -> bool {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e,
                    "cannot read the OAUTHBEARER JSON Web Key Set; keeping the keys in use");
                return false;
            }
        };
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        if *read == bytes {
            return false;
        }
        match parse(&self.path, &bytes) {
            Ok(jwks) => {
                info!(path = %self.path.display(), keys = jwks.len(),
                    "OAUTHBEARER JSON Web Key Set reloaded");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(jwks);
                *read = bytes;
                true
            }
            Err(why) => {
                warn!(error = %why, "keeping the OAUTHBEARER keys in use");
                false
            }
        }
    }
}

/// A key set with at least one usable key; the keys skipped are logged.
fn parse(path: &Path, bytes: &[u8]) -> Result<Jwks, String> {
    let jwks = Jwks::parse(bytes)
        .map_err(|e| format!("the JSON Web Key Set {} is not usable: {e}", path.display()))?;
    for why in jwks.skipped() {
        warn!(path = %path.display(), key = %why, "JSON Web Key skipped");
    }
    if jwks.is_empty() {
        return Err(format!(
            "the JSON Web Key Set {} has no usable key (RSA of 2048 to 8192 bits, or EC on \
             P-256, P-384 or P-521, for signatures){}",
            path.display(),
            if jwks.skipped().is_empty() {
                String::new()
            } else {
                format!("; skipped: {}", jwks.skipped().join("; "))
            }
        ));
    }
    Ok(jwks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The modulus of a 2048-bit RSA public key (the private half was thrown away).
    const RSA_N: &str = "n0cQ0Br6ccPpjtLcTuzpm9KC3bGFROk8gj67xeHsBAVCebg49TjS2IUSJXbTkd3vtejXKg2Fh8ac-N3oJMCTg2tfMMvi--d-uj0jTuKpaTYRmjDJWPyzU0QKxxC-LmTFobNWX6SqC6cDxOHSggXF5vX2faEZr9f8QiJXSvGWU4F50Q9WQH4_kJgzGyblHQMxLd81JaPuRyJvOdkOJfP31o54TU0vw9zmR5curq8-bR2Exyn7sywAPkykuZa5agSHVz2gwAC6oF3Bw3MhCxpLUVeCxp3Qiii9xMa0o55y3D4mtamVE-85NUiE1LcuYfGmjTskgR2uQlbd23UM4tE_Ow";
    const RSA_E: &str = "AQAB";

    fn jwk(kid: &str) -> String {
        format!(r#"{{"kty":"RSA","kid":"{kid}","use":"sig","n":"{RSA_N}","e":"{RSA_E}"}}"#)
    }

    fn settings(path: &Path) -> OAuthSettings {
        OAuthSettings {
            jwks_path: path.to_path_buf(),
            refresh_ms: 1000,
            validation: Validation::default(),
        }
    }

    #[test]
    fn loads_refreshes_and_keeps_keys_a_bad_file_would_lose() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, format!(r#"{{"keys":[{}]}}"#, jwk("a"))).unwrap();
        let keys = OAuthKeys::load(&settings(&path)).unwrap();
        assert_eq!(keys.jwks().len(), 1);
        assert_eq!(keys.refresh_interval(), Duration::from_secs(1));
        // Unchanged: nothing to do.
        assert!(!keys.refresh());
        // A rotated set is picked up.
        std::fs::write(&path, format!(r#"{{"keys":[{},{}]}}"#, jwk("a"), jwk("b"))).unwrap();
        assert!(keys.refresh());
        assert_eq!(keys.jwks().len(), 2);
        // Broken, empty or missing files keep the keys in use.
        std::fs::write(&path, b"{not json").unwrap();
        assert!(!keys.refresh());
        std::fs::write(&path, br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        assert!(!keys.refresh());
        std::fs::remove_file(&path).unwrap();
        assert!(!keys.refresh());
        assert_eq!(keys.jwks().len(), 2);
    }

    #[test]
    fn a_missing_or_unusable_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let e = OAuthKeys::load(&settings(&path)).err().unwrap().to_string();
        assert!(e.contains("cannot read") && e.contains("jwks.json"), "{e}");
        std::fs::write(&path, b"[]").unwrap();
        let e = OAuthKeys::load(&settings(&path)).err().unwrap().to_string();
        assert!(e.contains("not usable"), "{e}");
        std::fs::write(&path, br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let e = OAuthKeys::load(&settings(&path)).err().unwrap().to_string();
        assert!(e.contains("no usable key") && e.contains("skipped"), "{e}");
    }
}
