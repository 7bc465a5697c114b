//! SASL OAUTHBEARER (RFC 7628) as Kafka's broker speaks it (KIP-255), with the checks of KIP-768's
//! broker-side JWT validator: the client's initial response, the validation of a compact JWS
//! access token (RFC 7515, 7519) against a JSON Web Key Set (RFC 7517, 7518), and the server half
//! of the exchange (Kafka's OAuthBearerSaslServer). Fetching and refreshing the JWKS and reading
//! the clock are the caller's business: the current time is passed in.
//!
//! Everything here parses what a client sent: every failure is an error, never a panic, and
//! strings a client chose are quoted and truncated before they reach an error message.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::signature::{
    self, EcdsaVerificationAlgorithm, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

use crate::AuthError;
use crate::scram::ServerStep;

/// Kafka's mechanism name.
pub const MECHANISM: &str = "OAUTHBEARER";

/// The largest client message (and so the largest token) accepted.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// The challenge sent for a token that fails validation (RFC 7628 §3.2.2), as Kafka sends it.
pub const INVALID_TOKEN_CHALLENGE: &[u8] = br#"{"status":"invalid_token"}"#;

/// The byte a client sends to acknowledge an error challenge (RFC 7628 §3.2.3, `%x01`).
const CONTROL_A: u8 = 0x01;

/// RSA moduli outside this range are refused (the range aws-lc-rs verifies).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// JWK members are base64url; some key sets pad them, which is harmless there.
const JWK_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------------------------
// JSON Web Key Set

/// A JSON Web Key Set: the public keys tokens may be signed with. RSA keys (`"kty":"RSA"` with
/// `n`/`e`, 2048 to 8192 bits) and EC keys (`"kty":"EC"` with `crv` P-256, P-384 or P-521 and
/// `x`/`y`) are kept. Keys with a `use` other than `sig`, a `key_ops` without `verify`, an
/// unsupported `kty`, `crv` or `alg`, or members that do not form a key are skipped, not an
/// error (as jose4j, which Kafka uses, ignores a JWK it cannot process); [`Jwks::skipped`] says
/// which and why. A key without `kid` matches tokens without `kid`.
#[derive(Clone)]
pub struct Jwks {
    keys: Vec<Jwk>,
    skipped: Vec<String>,
}

#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    /// The JWK's own `alg`: when present the key verifies that algorithm only.
    alg: Option<Algorithm>,
    key: PublicKey,
}

#[derive(Clone)]
enum PublicKey {
    /// Big-endian, without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        curve: Curve,
        key: ParsedPublicKey,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Length of one coordinate, as RFC 7518 §6.2.1.2 requires it encoded.
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    fn verification(self) -> &'static EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
        }
    }
}

impl Jwks {
    /// Parses a JWKS document (`{"keys":[...]}`). Only a document that is not JSON, or has no
    /// `keys` array, is an error (`AuthError::Invalid`); keys that cannot be used are skipped.
    pub fn parse(json: &[u8]) -> Result<Jwks, AuthError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| AuthError::Invalid(format!("JWKS is not valid JSON: {e}")))?;
        let Some(entries) = value.get("keys").and_then(Value::as_array) else {
            return Err(AuthError::Invalid(
                "JWKS must be a JSON object with a \"keys\" array".to_owned(),
            ));
        };
        let mut jwks = Jwks {
            keys: Vec::new(),
            skipped: Vec::new(),
        };
        for (i, entry) in entries.iter().enumerate() {
            match parse_jwk(entry) {
                Ok(key) => jwks.keys.push(key),
                Err(reason) => {
                    let kid = match entry.get("kid").and_then(Value::as_str) {
                        Some(kid) => format!(" (kid {})", quote(kid)),
                        None => String::new(),
                    };
                    jwks.skipped.push(format!("key {i}{kid}: {reason}"));
                }
            }
        }
        Ok(jwks)
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// One line per key that was skipped, saying which and why: for the broker's log.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The keys a token with this `kid` and `alg` may have been signed with. A `kid` picks the
    /// keys with that `kid` or, when there are none, the keys without one (jose4j's rule); no
    /// `kid` picks the keys without one or, when there are none, the only key of the set.
    fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<&Jwk>, AuthError> {
        let without_kid = || self.keys.iter().filter(|k| k.kid.is_none());
        let mut matching: Vec<&Jwk> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => Vec::new(),
        };
        if matching.is_empty() {
            matching = without_kid().collect();
        }
        if matching.is_empty() && kid.is_none() && self.keys.len() == 1 {
            matching = self.keys.iter().collect();
        }
        if matching.is_empty() {
            return Err(AuthError::invalid_token(match kid {
                Some(kid) => format!("unknown kid {}: no key in the JWKS has it", quote(kid)),
                None => "the token has no kid and the JWKS has neither a key without kid nor \
                         exactly one key"
                    .to_owned(),
            }));
        }
        matching.retain(|k| k.verifies(alg));
        if matching.is_empty() {
            return Err(AuthError::invalid_token(format!(
                "no key in the JWKS {} can verify alg {}",
                match kid {
                    Some(kid) => format!("with kid {}", quote(kid)),
                    None => "without kid".to_owned(),
                },
                alg.name()
            )));
        }
        Ok(matching)
    }
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                let kind = match &k.key {
                    PublicKey::Rsa { n, .. } => format!("RSA-{}", bit_len(n)),
                    PublicKey::Ec { curve, .. } => format!("EC {}", curve.name()),
                };
                match &k.kid {
                    Some(kid) => format!("{kid:?}: {kind}"),
                    None => format!("(no kid): {kind}"),
                }
            })
            .collect();
        f.debug_struct("Jwks")
            .field("keys", &keys)
            .field("skipped", &self.skipped.len())
            .finish()
    }
}

impl Jwk {
    fn verifies(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg) && alg.fits(&self.key)
    }
}

/// One JWK, or why it is skipped.
fn parse_jwk(entry: &Value) -> Result<Jwk, String> {
    let Some(obj) = entry.as_object() else {
        return Err("not a JSON object".to_owned());
    };
    let text = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("\"{name}\" is not a string")),
        }
    };
    let kid = text("kid")?.map(str::to_owned);
    if let Some(usage) = text("use")?
        && usage != "sig"
    {
        return Err(format!("use {} is not \"sig\"", quote(usage)));
    }
    if let Some(ops) = obj.get("key_ops")
        && !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
    {
        return Err("key_ops does not include \"verify\"".to_owned());
    }
    let alg = match text("alg")? {
        None => None,
        Some(name) => Some(
            Algorithm::from_name(name).ok_or_else(|| format!("unsupported alg {}", quote(name)))?,
        ),
    };
    let Some(kty) = text("kty")? else {
        return Err("no \"kty\"".to_owned());
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let value = text(name)?.ok_or_else(|| format!("no \"{name}\""))?;
        JWK_BASE64
            .decode(value)
            .map_err(|_| format!("\"{name}\" is not base64url"))
    };
    let key = match kty {
        "RSA" => {
            let n = strip_leading_zeros(bytes("n")?);
            let e = strip_leading_zeros(bytes("e")?);
            let bits = bit_len(&n);
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err(format!(
                    "RSA modulus of {bits} bits is outside {RSA_MIN_BITS}..={RSA_MAX_BITS}"
                ));
            }
            let components = RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            };
            if components
                .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                .is_err()
            {
                return Err("n and e do not form an RSA public key".to_owned());
            }
            PublicKey::Rsa { n, e }
        }
        "EC" => {
            let crv = text("crv")?.ok_or_else(|| "no \"crv\"".to_owned())?;
            let curve =
                Curve::from_name(crv).ok_or_else(|| format!("unsupported crv {}", quote(crv)))?;
            let len = curve.coordinate_len();
            let mut point = vec![0x04];
            for name in ["x", "y"] {
                let coordinate = bytes(name)?;
                if coordinate.len() > len {
                    return Err(format!(
                        "\"{name}\" is {} bytes, longer than {len} for {}",
                        coordinate.len(),
                        curve.name()
                    ));
                }
                point.resize(point.len() + len - coordinate.len(), 0);
                point.extend_from_slice(&coordinate);
            }
            let key = ParsedPublicKey::new(curve.verification(), &point)
                .map_err(|_| format!("x and y are not a point on {}", curve.name()))?;
            PublicKey::Ec { curve, key }
        }
        other => return Err(format!("unsupported kty {}", quote(other))),
    };
    if let Some(alg) = alg
        && !alg.fits(&key)
    {
        return Err(format!("alg {} does not fit the key type", alg.name()));
    }
    Ok(Jwk { kid, alg, key })
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Bits of a big-endian number without leading zero bytes.
fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
    }
}

// ---------------------------------------------------------------------------------------------
// Signature algorithms

/// The JWS algorithms accepted. `none` and the HMAC family are not among them: a broker holds no
/// shared secret, and an unsigned token proves nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl Algorithm {
    const ALL: [Algorithm; 9] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
    ];

    fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
        }
    }

    /// Exact and case-sensitive (RFC 7515 §4.1.1).
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    fn rsa(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::Es256 | Algorithm::Es384 | Algorithm::Es512 => return None,
        })
    }

    fn curve(self) -> Option<Curve> {
        match self {
            Algorithm::Es256 => Some(Curve::P256),
            Algorithm::Es384 => Some(Curve::P384),
            Algorithm::Es512 => Some(Curve::P521),
            _ => None,
        }
    }

    /// Whether this algorithm can use `key` (RSA for RS*/PS*, the matching curve for ES*).
    fn fits(self, key: &PublicKey) -> bool {
        match key {
            PublicKey::Rsa { .. } => self.rsa().is_some(),
            PublicKey::Ec { curve, .. } => self.curve() == Some(*curve),
        }
    }

    fn verify(self, key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
        match key {
            PublicKey::Rsa { n, e } => self.rsa().is_some_and(|params| {
                RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .verify(params, message, sig)
                .is_ok()
            }),
            PublicKey::Ec { curve, key } => {
                self.curve() == Some(*curve) && key.verify_sig(message, sig).is_ok()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Token validation

/// What a token must satisfy, with Kafka's KIP-768 broker keys:
/// `sasl.oauthbearer.expected.audience` (if non-empty, the token's `aud`, a string or an array,
/// must contain one of them), `sasl.oauthbearer.expected.issuer` (if set, `iss` must equal it),
/// `sasl.oauthbearer.sub.claim.name` (default `sub`), `sasl.oauthbearer.scope.claim.name`
/// (default `scope`) and `sasl.oauthbearer.clock.skew.seconds` (default 30).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    pub expected_audience: Vec<String>,
    pub expected_issuer: Option<String>,
    pub sub_claim: String,
    pub scope_claim: String,
    pub clock_skew_seconds: u64,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            expected_audience: Vec::new(),
            expected_issuer: None,
            sub_claim: "sub".to_owned(),
            scope_claim: "scope".to_owned(),
            clock_skew_seconds: 30,
        }
    }
}

/// A validated token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidToken {
    /// The subject claim, trimmed as Kafka trims it.
    pub principal: String,
    /// The `exp` claim in milliseconds since the epoch (without the clock skew): when a
    /// KIP-368 re-authentication is due at the latest.
    pub expires_at_ms: i64,
    /// The scope claim: a space-separated string (RFC 8693 §4.2) or an array of strings, in
    /// order, without duplicates; empty when the claim is absent.
    pub scopes: Vec<String>,
}

/// Validates a compact JWS access token (`header.payload.signature`) against `jwks` at `now_ms`.
///
/// The header's `alg` must be RS256/384/512, PS256/384/512 or ES256/384/512 (`none` and HS* are
/// refused) and its `crit`, if any, empty; the key is chosen by `kid` (see [`Jwks`]) and the
/// signature checked before any claim is looked at. Claims: `exp` is required (a number of
/// seconds, not negative) and must be later than `now - skew`; `nbf` and `iat`, when present, no
/// later than `now + skew`; `iss` and `aud` as [`Validation`] says; the subject claim a non-empty
/// string. Every failure is `AuthError::InvalidToken` saying what was wrong.
pub fn validate(
    token: &str,
    jwks: &Jwks,
    validation: &Validation,
    now_ms: i64,
) -> Result<ValidToken, AuthError> {
    if token.len() > MAX_MESSAGE_LEN {
        return Err(bad(format!(
            "token of {} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit",
            token.len()
        )));
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = segments[..] else {
        return Err(bad(if segments.len() == 5 {
            "encrypted tokens (JWE) are not supported".to_owned()
        } else {
            format!(
                "expected 3 '.'-separated segments (header.payload.signature), got {}",
                segments.len()
            )
        }));
    };

    let header = json_object("header", header_b64)?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        Some(_) => return Err(bad("the header's alg is not a string")),
        None => return Err(bad("the header has no alg")),
    };
    let alg = match Algorithm::from_name(alg) {
        Some(alg) => alg,
        None if alg.eq_ignore_ascii_case("none") => {
            return Err(bad("alg none is refused: the token is not signed"));
        }
        None if alg.starts_with("HS") => {
            return Err(bad(format!(
                "alg {} is refused: shared-secret (HMAC) tokens are not accepted",
                quote(alg)
            )));
        }
        None => return Err(bad(format!("unsupported alg {}", quote(alg)))),
    };
    // RFC 7515 §4.1.11: extensions listed as critical must be understood, and none are.
    if header.contains_key("crit") {
        return Err(bad(
            "the header lists critical extensions (crit), none of which are supported",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(bad("the header's kid is not a string")),
    };

    let sig = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| bad("the signature is not base64url"))?;
    if sig.is_empty() {
        return Err(bad("the token has no signature"));
    }
    let keys = jwks.candidates(kid, alg)?;
    // The signing input is the two encoded segments as sent.
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    if !keys.iter().any(|k| alg.verify(&k.key, signing_input, &sig)) {
        return Err(bad(format!(
            "bad signature: the token's {} signature does not verify with the JWKS key{}",
            alg.name(),
            match kid {
                Some(kid) => format!(" for kid {}", quote(kid)),
                None => String::new(),
            }
        )));
    }

    let claims = json_object("payload", payload_b64)?;
    check_claims(&claims, validation, now_ms)
}

fn check_claims(
    claims: &Map<String, Value>,
    validation: &Validation,
    now_ms: i64,
) -> Result<ValidToken, AuthError> {
    let now = i128::from(now_ms);
    let skew = i128::from(validation.clock_skew_seconds) * 1000;

    let Some(exp) = numeric_date_ms(claims, "exp")? else {
        return Err(bad("the token has no exp claim, which is required"));
    };
    if i128::from(exp) + skew <= now {
        return Err(bad(format!(
            "the token expired at {exp} ms, at or before {now} ms (now) less the clock skew of \
             {} s",
            validation.clock_skew_seconds
        )));
    }
    for (name, what) in [("nbf", "not valid before"), ("iat", "issued at")] {
        if let Some(t) = numeric_date_ms(claims, name)?
            && i128::from(t) > now + skew
        {
            return Err(bad(format!(
                "the token is {what} {t} ms ({name}), later than {now} ms (now) plus the clock \
                 skew of {} s",
                validation.clock_skew_seconds
            )));
        }
    }

    if let Some(expected) = &validation.expected_issuer {
        match claims.get("iss") {
            Some(Value::String(iss)) if iss == expected => {}
            Some(Value::String(iss)) => {
                return Err(bad(format!(
                    "wrong issuer: iss is {}, expected {}",
                    quote(iss),
                    quote(expected)
                )));
            }
            Some(_) => return Err(bad("the iss claim is not a string")),
            None => {
                return Err(bad(format!(
                    "the token has no iss claim; expected {}",
                    quote(expected)
                )));
            }
        }
    }

    if !validation.expected_audience.is_empty() {
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds
                .iter()
                .map(Value::as_str)
                .collect::<Option<_>>()
                .ok_or_else(|| bad("the aud claim is an array with a non-string element"))?,
            Some(_) => return Err(bad("the aud claim is neither a string nor an array")),
            None => {
                return Err(bad(format!(
                    "the token has no aud claim; expected one of {}",
                    quote_list(&validation.expected_audience)
                )));
            }
        };
        if !audiences
            .iter()
            .any(|aud| validation.expected_audience.iter().any(|e| e == aud))
        {
            return Err(bad(format!(
                "wrong audience: aud {} contains none of the expected {}",
                quote_list(&audiences),
                quote_list(&validation.expected_audience)
            )));
        }
    }

    let sub_claim = &validation.sub_claim;
    let principal = match claims.get(sub_claim) {
        Some(Value::String(sub)) => java_trim(sub),
        Some(_) => {
            return Err(bad(format!(
                "the subject claim {} is not a string",
                quote(sub_claim)
            )));
        }
        None => {
            return Err(bad(format!(
                "the token has no subject claim {}",
                quote(sub_claim)
            )));
        }
    };
    if principal.is_empty() {
        return Err(bad(format!(
            "the subject claim {} is empty",
            quote(sub_claim)
        )));
    }

    let scope_claim = &validation.scope_claim;
    let raw_scopes: Vec<&str> = match claims.get(scope_claim) {
        None => Vec::new(),
        Some(Value::String(scope)) => scope.split(' ').collect(),
        Some(Value::Array(scopes)) => scopes
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| {
                bad(format!(
                    "the scope claim {} is an array with a non-string element",
                    quote(scope_claim)
                ))
            })?,
        Some(_) => {
            return Err(bad(format!(
                "the scope claim {} is neither a string nor an array",
                quote(scope_claim)
            )));
        }
    };
    let mut scopes: Vec<String> = Vec::with_capacity(raw_scopes.len());
    for scope in raw_scopes.into_iter().map(java_trim) {
        if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }

    Ok(ValidToken {
        principal: principal.to_owned(),
        expires_at_ms: exp,
        scopes,
    })
}

fn bad(detail: impl Into<String>) -> AuthError {
    AuthError::invalid_token(detail)
}

/// A base64url segment holding a JSON object.
fn json_object(what: &str, segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::invalid_token(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::invalid_token(format!(
            "the {what} is not a JSON object"
        ))),
        Err(e) => Err(AuthError::invalid_token(format!(
            "the {what} is not valid JSON: {e}"
        ))),
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional) in milliseconds.
/// Dates past `i64::MAX` ms are `i64::MAX`, so the i128 arithmetic on them cannot overflow.
fn numeric_date_ms(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let not_a_date =
        || AuthError::invalid_token(format!("the {name} claim is not a number of seconds"));
    let Value::Number(n) = value else {
        return Err(not_a_date());
    };
    let ms = if let Some(i) = n.as_i64() {
        i128::from(i) * 1000
    } else if let Some(u) = n.as_u64() {
        i128::from(u) * 1000
    } else {
        match n.as_f64() {
            // Saturating: a date past i128's range is as good as never.
            Some(f) if f.is_finite() => (f * 1000.0).floor() as i128,
            _ => return Err(not_a_date()),
        }
    };
    if ms < 0 {
        return Err(AuthError::invalid_token(format!(
            "the {name} claim is negative"
        )));
    }
    Ok(Some(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// `String.trim()` as Java has it (Kafka trims claim values): every char up to U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// A client-chosen string fit for an error message: escaped, at most 64 characters.
fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    let head: String = s.chars().take(MAX_CHARS).collect();
    if head.len() < s.len() {
        format!("{head:?}...")
    } else {
        format!("{head:?}")
    }
}

fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    const MAX_ITEMS: usize = 8;
    let mut out: Vec<String> = items
        .iter()
        .take(MAX_ITEMS)
        .map(|s| quote(s.as_ref()))
        .collect();
    if items.len() > MAX_ITEMS {
        out.push(format!("... ({} in all)", items.len()));
    }
    format!("[{}]", out.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Client initial response

/// RFC 7628's client initial response as Kafka's OAuthBearerClientInitialResponse parses it:
/// gs2 header `n,,` or `n,a=<authzid>,`, then `\x01`, then `key=value\x01` pairs, then `\x01`.
/// `auth=Bearer <token>` is required; the other pairs are SASL extensions.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientInitialResponse {
    pub token: String,
    /// The requested authorization id (`=2C` and `=3D` decoded); must equal the principal.
    pub authzid: Option<String>,
    pub extensions: BTreeMap<String, String>,
}

impl std::fmt::Debug for ClientInitialResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInitialResponse")
            .field("token", &"<redacted>")
            .field("authzid", &self.authzid)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// Parses a client initial response with Kafka's grammar: authzid characters `\x01`–`\x7F`
/// except `=` and `,` (or `=2C`, `=3D`); keys `[A-Za-z]+`; values `[\x21-\x7E \t\r\n]+`; `auth`
/// is `<scheme> SP+ <token>` with scheme `bearer` in any case and token `[-_.a-zA-Z0-9]+`.
/// Unlike Kafka (where the last one wins), a key given twice is refused. Everything else is
/// `Malformed`.
pub fn parse_client_response(message: &[u8]) -> Result<ClientInitialResponse, AuthError> {
    let bad = |detail: String| AuthError::malformed(MECHANISM, detail);
    if message.len() > MAX_MESSAGE_LEN {
        return Err(bad(format!(
            "message of {} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit",
            message.len()
        )));
    }
    let text = std::str::from_utf8(message).map_err(|_| bad("message is not UTF-8".to_owned()))?;
    let Some(rest) = text.strip_prefix("n,") else {
        return Err(bad(
            "message must start with the gs2 header \"n,\" (channel binding is not supported)"
                .to_owned(),
        ));
    };
    let Some((authzid, rest)) = rest.split_once(',') else {
        return Err(bad("gs2 header is not terminated by ','".to_owned()));
    };
    let authzid = match authzid {
        "" => None,
        a => Some(parse_saslname(a.strip_prefix("a=").ok_or_else(|| {
            bad("gs2 header: expected \"a=<authzid>\" or nothing between the commas".to_owned())
        })?)?),
    };
    // rest = \x01 (key=value \x01)* \x01
    let pairs = rest
        .strip_prefix('\x01')
        .and_then(|r| r.strip_suffix('\x01'))
        .ok_or_else(
            || bad("key-value pairs must be enclosed in \\x01 ... \\x01\\x01".to_owned()),
        )?;
    let mut properties = BTreeMap::new();
    if !pairs.is_empty() {
        let Some(pairs) = pairs.strip_suffix('\x01') else {
            return Err(bad("key-value pairs must each end with \\x01".to_owned()));
        };
        for pair in pairs.split('\x01') {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(bad("key-value pair without '='".to_owned()));
            };
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(bad(format!("invalid key {}", quote(key))));
            }
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| matches!(b, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n'))
            {
                return Err(bad(format!("invalid value for key {}", quote(key))));
            }
            if properties
                .insert(key.to_owned(), value.to_owned())
                .is_some()
            {
                return Err(bad(format!("key {} given twice", quote(key))));
            }
        }
    }
    let Some(auth) = properties.remove("auth") else {
        return Err(bad("'auth' not specified".to_owned()));
    };
    let token = parse_auth(&auth)
        .ok_or_else(|| bad("invalid 'auth' format: expected \"Bearer <token>\"".to_owned()))?;
    Ok(ClientInitialResponse {
        token: token.to_owned(),
        authzid,
        extensions: properties,
    })
}

/// RFC 5801's saslname with Kafka's ASCII restriction, decoded.
fn parse_saslname(name: &str) -> Result<String, AuthError> {
    let bad = || AuthError::malformed(MECHANISM, "invalid authzid in the gs2 header");
    if name.is_empty() {
        return Err(bad());
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("=2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("=3D") {
            out.push('=');
            rest = after;
        } else if matches!(c, '\x01'..='\x7f') && c != '=' && c != ',' {
            out.push(c);
            rest = &rest[1..];
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// `<scheme> SP+ <token>` with scheme `bearer` (any case): the token.
fn parse_auth(auth: &str) -> Option<&str> {
    let (scheme, token) = auth.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    let token_ok = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (scheme.eq_ignore_ascii_case("bearer") && token_ok).then_some(token)
}

/// The client initial response for `token`, with no authzid, as Kafka's client sends it. The
/// extensions are not checked: the server refuses names outside `[A-Za-z]+`, `auth`, and values
/// outside RFC 7628's characters.
pub fn client_response(token: &str, extensions: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("n,,\x01auth=Bearer {token}\x01");
    for (key, value) in extensions {
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\x01');
    }
    out.push('\x01');
    out.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Server

/// The server side of one OAUTHBEARER exchange, as Kafka's OAuthBearerSaslServer: the client's
/// initial response either succeeds at once, or a token that fails validation is answered with
/// RFC 7628's error challenge, which the client acknowledges with a single `\x01` before the
/// exchange fails. Create one per authentication attempt.
pub struct OAuthServer {
    jwks: Arc<Jwks>,
    validation: Validation,
    now_ms: i64,
    state: State,
}

enum State {
    AwaitingClientResponse,
    /// The error challenge was sent; the validation error is returned after the client's `\x01`.
    AwaitingErrorAck(AuthError),
    Complete {
        expires_at_ms: i64,
        extensions: BTreeMap<String, String>,
    },
    Failed,
}

impl OAuthServer {
    /// `now_ms` is the time the token is validated at.
    pub fn new(jwks: Arc<Jwks>, validation: Validation, now_ms: i64) -> Self {
        Self {
            jwks,
            validation,
            now_ms,
            state: State::AwaitingClientResponse,
        }
    }

    /// Consumes the client's next message. Any error ends the exchange: further calls return
    /// `IllegalState`, as do calls after `Success`.
    ///
    /// First message: `Malformed` if it does not parse; `Success` (with an empty message) for a
    /// valid token; `Challenge(INVALID_TOKEN_CHALLENGE)` for a token that fails validation;
    /// `InvalidToken` at once for an authzid other than the token's principal (as Kafka). After
    /// the challenge: `\x01` returns the validation error, anything else is `Malformed`.
    pub fn step(&mut self, message: &[u8]) -> Result<ServerStep, AuthError> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::AwaitingClientResponse => {
                let response = parse_client_response(message)?;
                let token =
                    match validate(&response.token, &self.jwks, &self.validation, self.now_ms) {
                        Ok(token) => token,
                        Err(e) => {
                            self.state = State::AwaitingErrorAck(e);
                            return Ok(ServerStep::Challenge(INVALID_TOKEN_CHALLENGE.to_vec()));
                        }
                    };
                if let Some(authzid) = &response.authzid
                    && *authzid != token.principal
                {
                    return Err(AuthError::invalid_token(format!(
                        "the client requested an authorization id ({}) that is different from \
                         the token's principal name ({})",
                        quote(authzid),
                        quote(&token.principal)
                    )));
                }
                self.state = State::Complete {
                    expires_at_ms: token.expires_at_ms,
                    extensions: response.extensions,
                };
                Ok(ServerStep::Success {
                    principal: token.principal,
                    message: Vec::new(),
                })
            }
            State::AwaitingErrorAck(error) => {
                if message == [CONTROL_A] {
                    Err(error)
                } else {
                    Err(AuthError::malformed(
                        MECHANISM,
                        "expected the single byte \\x01 acknowledging the error challenge",
                    ))
                }
            }
            complete @ State::Complete { .. } => {
                self.state = complete;
                Err(AuthError::IllegalState(format!(
                    "{MECHANISM} exchange already completed"
                )))
            }
            State::Failed => Err(AuthError::IllegalState(format!(
                "{MECHANISM} exchange already failed"
            ))),
        }
    }

    /// After `Success`: when the token expires (its `exp`, in ms), for KIP-368's session
    /// lifetime.
    pub fn expires_at_ms(&self) -> Option<i64> {
        match &self.state {
            State::Complete { expires_at_ms, .. } => Some(*expires_at_ms),
            _ => None,
        }
    }

    /// After `Success`: the SASL extensions the client sent (none are validated or acted on).
    pub fn extensions(&self) -> Option<&BTreeMap<String, String>> {
        match &self.state {
            State::Complete { extensions, .. } => Some(extensions),
            _ => None,
        }
    }
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::AwaitingClientResponse => "AwaitingClientResponse",
            State::AwaitingErrorAck(_) => "AwaitingErrorAck",
            State::Complete { .. } => "Complete",
            State::Failed => "Failed",
        };
        f.debug_struct("OAuthServer")
            .field("keys", &self.jwks.len())
            .field("validation", &self.validation)
            .field("now_ms", &self.now_ms)
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        KeyPair as _, RsaEncoding, RsaKeyPair,
    };
    use serde_json::json;

    use super::*;

    const NOW_MS: i64 = 1_700_000_000_123;
    const NOW: i64 = NOW_MS / 1000;

    struct Keys {
        rsa: RsaKeyPair,
        other_rsa: RsaKeyPair,
        ec: EcdsaKeyPair,
        ec384: EcdsaKeyPair,
    }

    static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
        rsa: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        other_rsa: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        ec: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        ec384: EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
    });

    /// Keys "rsa1" (RSA), "ec1" (P-256), "ec384" (P-384), and "other" (the other RSA key).
    static JWKS: LazyLock<Jwks> = LazyLock::new(|| {
        jwks_of(&[
            rsa_jwk(Some("rsa1"), &KEYS.rsa),
            ec_jwk(Some("ec1"), "P-256", &KEYS.ec),
            ec_jwk(Some("ec384"), "P-384", &KEYS.ec384),
        ])
    });

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(kid: Option<&str>, kp: &RsaKeyPair) -> Value {
        let pk = kp.public_key();
        let mut jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "n": b64(pk.modulus().big_endian_without_leading_zero()),
            "e": b64(pk.exponent().big_endian_without_leading_zero()),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn ec_jwk(kid: Option<&str>, crv: &str, kp: &EcdsaKeyPair) -> Value {
        let point = kp.public_key().as_ref();
        let len = (point.len() - 1) / 2;
        let mut jwk = json!({
            "kty": "EC",
            "crv": crv,
            "x": b64(&point[1..1 + len]),
            "y": b64(&point[1 + len..]),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn jwks_of(keys: &[Value]) -> Jwks {
        Jwks::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    enum Signer<'a> {
        Rsa(&'a RsaKeyPair, &'static dyn RsaEncoding),
        Ec(&'a EcdsaKeyPair),
        Raw(&'a [u8]),
    }

    fn sign(signer: Signer<'_>, input: &[u8]) -> Vec<u8> {
        match signer {
            Signer::Rsa(kp, encoding) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(encoding, &SystemRandom::new(), input, &mut sig)
                    .unwrap();
                sig
            }
            Signer::Ec(kp) => kp
                .sign(&SystemRandom::new(), input)
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::Raw(sig) => sig.to_vec(),
        }
    }

    fn encode_raw(header: &[u8], payload: &[u8], signer: Signer<'_>) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = sign(signer, input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    fn encode(header: &Value, claims: &Value, signer: Signer<'_>) -> String {
        encode_raw(
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            signer,
        )
    }

    fn claims() -> Value {
        json!({
            "sub": "alice",
            "exp": NOW + 3600,
            "iat": NOW,
            "iss": "https://idp.example",
            "aud": "kafka",
            "scope": "read write",
        })
    }

    fn rs256(claims: &Value) -> String {
        encode(
            &json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"}),
            claims,
            Signer::Rsa(&KEYS.rsa, &signature::RSA_PKCS1_SHA256),
        )
    }

    fn es256(claims: &Value) -> String {
        encode(
            &json!({"alg": "ES256", "kid": "ec1"}),
            claims,
            Signer::Ec(&KEYS.ec),
        )
    }

    fn with(claims: &Value, name: &str, value: Value) -> Value {
        let mut claims = claims.clone();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value;
        }
        claims
    }

    fn check(token: &str, validation: &Validation) -> Result<ValidToken, AuthError> {
        validate(token, &JWKS, validation, NOW_MS)
    }

    fn rejected(r: Result<ValidToken, AuthError>) -> String {
        match r {
            Err(AuthError::InvalidToken(detail)) => detail,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    fn strict() -> Validation {
        Validation {
            expected_audience: vec!["other".to_owned(), "kafka".to_owned()],
            expected_issuer: Some("https://idp.example".to_owned()),
            ..Validation::default()
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let v = Validation::default();
        assert!(v.expected_audience.is_empty() && v.expected_issuer.is_none());
        assert_eq!(
            (v.sub_claim.as_str(), v.scope_claim.as_str()),
            ("sub", "scope")
        );
        assert_eq!(v.clock_skew_seconds, 30);
        assert_eq!(JWKS.len(), 3);
        assert!(!JWKS.is_empty() && JWKS.skipped().is_empty());
        let debug = format!("{:?}", *JWKS);
        assert!(
            debug.contains("RSA-2048") && debug.contains("EC P-384"),
            "{debug}"
        );
    }

    #[test]
    fn valid_tokens() {
        let expected = ValidToken {
            principal: "alice".to_owned(),
            expires_at_ms: (NOW + 3600) * 1000,
            scopes: vec!["read".to_owned(), "write".to_owned()],
        };
        for validation in [Validation::default(), strict()] {
            assert_eq!(check(&rs256(&claims()), &validation).unwrap(), expected);
            assert_eq!(check(&es256(&claims()), &validation).unwrap(), expected);
        }
        let rsa = |alg: &str, encoding: &'static dyn RsaEncoding| {
            encode(
                &json!({"alg": alg, "kid": "rsa1"}),
                &claims(),
                Signer::Rsa(&KEYS.rsa, encoding),
            )
        };
        for token in [
            rsa("RS384", &signature::RSA_PKCS1_SHA384),
            rsa("RS512", &signature::RSA_PKCS1_SHA512),
            rsa("PS256", &signature::RSA_PSS_SHA256),
            rsa("PS384", &signature::RSA_PSS_SHA384),
            rsa("PS512", &signature::RSA_PSS_SHA512),
            encode(
                &json!({"alg": "ES384", "kid": "ec384"}),
                &claims(),
                Signer::Ec(&KEYS.ec384),
            ),
        ] {
            assert_eq!(check(&token, &strict()).unwrap(), expected);
        }
        // The algorithms are not interchangeable: PKCS#1 v1.5 signature under PS256.
        let confused = rsa("PS256", &signature::RSA_PKCS1_SHA256);
        assert!(rejected(check(&confused, &strict())).contains("bad signature"));
    }

    #[test]
    fn claim_shapes() {
        // Fractional dates, array scopes (trimmed, deduplicated), a trimmed subject.
        let c = json!({"sub": " bob\t", "exp": NOW as f64 + 0.5, "scope": ["a", " b ", "a"]});
        let token = check(&es256(&c), &Validation::default()).unwrap();
        assert_eq!(token.principal, "bob");
        assert_eq!(token.expires_at_ms, NOW * 1000 + 500);
        assert_eq!(token.scopes, ["a", "b"]);
        let c = json!({"sub": "bob", "exp": NOW + 60, "scope": "  x  y "});
        assert_eq!(
            check(&es256(&c), &Validation::default()).unwrap().scopes,
            ["x", "y"]
        );
        let c = json!({"sub": "bob", "exp": NOW + 60, "scope": 7});
        assert!(rejected(check(&es256(&c), &Validation::default())).contains("scope"));
        let c = json!({"sub": "bob", "exp": NOW + 60, "scope": ["a", 1]});
        assert!(rejected(check(&es256(&c), &Validation::default())).contains("scope"));
        // A huge exp saturates rather than overflowing.
        let c = json!({"sub": "bob", "exp": u64::MAX});
        assert_eq!(
            check(&es256(&c), &Validation::default())
                .unwrap()
                .expires_at_ms,
            i64::MAX
        );
        let c = json!({"sub": "bob", "exp": 1e300});
        assert!(check(&es256(&c), &Validation::default()).is_ok());
        // A custom scope claim.
        let c = json!({"sub": "bob", "exp": NOW + 60, "scp": "s1"});
        let v = Validation {
            scope_claim: "scp".to_owned(),
            ..Validation::default()
        };
        assert_eq!(check(&es256(&c), &v).unwrap().scopes, ["s1"]);
    }

    #[test]
    fn expiry_and_clock_skew() {
        let v0 = Validation {
            clock_skew_seconds: 0,
            ..Validation::default()
        };
        let recently_expired = with(&claims(), "exp", json!(NOW - 10));
        for token in [rs256(&recently_expired), es256(&recently_expired)] {
            assert!(check(&token, &Validation::default()).is_ok());
            assert!(rejected(check(&token, &v0)).contains("expired"));
        }
        // exp must be later than now: at now exactly (second resolution) it is expired.
        let at_now = with(&claims(), "exp", json!(NOW));
        assert!(rejected(check(&es256(&at_now), &v0)).contains("expired"));
        let at_now_plus = with(&claims(), "exp", json!(NOW + 1));
        assert!(check(&es256(&at_now_plus), &v0).is_ok());
        let long_expired = with(&claims(), "exp", json!(NOW - 31));
        assert!(rejected(check(&es256(&long_expired), &Validation::default())).contains("expired"));
        let huge_skew = Validation {
            clock_skew_seconds: u64::MAX,
            ..Validation::default()
        };
        assert!(check(&es256(&long_expired), &huge_skew).is_ok());

        let missing = with(&claims(), "exp", Value::Null);
        assert!(rejected(check(&es256(&missing), &Validation::default())).contains("no exp"));
        for bad_exp in [json!("9999999999"), json!(null), json!([1]), json!(-5)] {
            let mut c = claims();
            c["exp"] = bad_exp;
            let detail = rejected(check(&es256(&c), &Validation::default()));
            assert!(detail.contains("exp"), "{detail}");
        }
    }

    #[test]
    fn not_before_and_issued_at() {
        let future_nbf = with(&claims(), "nbf", json!(NOW + 60));
        assert!(
            rejected(check(&es256(&future_nbf), &Validation::default()))
                .contains("not valid before")
        );
        let near_nbf = with(&claims(), "nbf", json!(NOW + 20));
        assert!(check(&es256(&near_nbf), &Validation::default()).is_ok());
        let past_nbf = with(&claims(), "nbf", json!(NOW - 600));
        assert!(check(&es256(&past_nbf), &Validation::default()).is_ok());
        let future_iat = with(&claims(), "iat", json!(NOW + 60));
        assert!(rejected(check(&es256(&future_iat), &Validation::default())).contains("issued at"));
        let no_iat = with(&claims(), "iat", Value::Null);
        assert!(check(&es256(&no_iat), &Validation::default()).is_ok());
        let text_nbf = with(&claims(), "nbf", json!("soon"));
        assert!(rejected(check(&es256(&text_nbf), &Validation::default())).contains("nbf"));
    }

    #[test]
    fn issuer() {
        let wrong = with(&claims(), "iss", json!("https://evil.example"));
        let detail = rejected(check(&rs256(&wrong), &strict()));
        assert!(
            detail.contains("wrong issuer") && detail.contains("evil"),
            "{detail}"
        );
        assert!(check(&rs256(&wrong), &Validation::default()).is_ok());
        let missing = with(&claims(), "iss", Value::Null);
        assert!(rejected(check(&rs256(&missing), &strict())).contains("no iss"));
        let number = with(&claims(), "iss", json!(1));
        assert!(rejected(check(&rs256(&number), &strict())).contains("iss"));
    }

    #[test]
    fn audience() {
        for (aud, ok) in [
            (json!("kafka"), true),
            (json!("other"), true),
            (json!("kafka-dev"), false),
            (json!(["x", "kafka"]), true),
            (json!(["x", "y"]), false),
            (json!([]), false),
        ] {
            let token = rs256(&with(&claims(), "aud", aud.clone()));
            match check(&token, &strict()) {
                Ok(_) => assert!(ok, "{aud}"),
                Err(AuthError::InvalidToken(detail)) => {
                    assert!(!ok && detail.contains("wrong audience"), "{aud}: {detail}")
                }
                Err(e) => panic!("{e:?}"),
            }
            // Without an expected audience, aud is not looked at.
            assert!(check(&token, &Validation::default()).is_ok());
        }
        let missing = rs256(&with(&claims(), "aud", Value::Null));
        assert!(rejected(check(&missing, &strict())).contains("no aud"));
        for bad in [json!(5), json!(["kafka", 5])] {
            let token = rs256(&with(&claims(), "aud", bad));
            assert!(rejected(check(&token, &strict())).contains("aud claim"));
        }
    }

    #[test]
    fn subject() {
        let missing = with(&claims(), "sub", Value::Null);
        assert!(rejected(check(&es256(&missing), &strict())).contains("no subject claim"));
        for empty in ["", "   "] {
            let c = with(&claims(), "sub", json!(empty));
            assert!(rejected(check(&es256(&c), &strict())).contains("is empty"));
        }
        let number = with(&claims(), "sub", json!(42));
        assert!(rejected(check(&es256(&number), &strict())).contains("not a string"));

        let custom = Validation {
            sub_claim: "client_id".to_owned(),
            ..strict()
        };
        let c = with(&claims(), "client_id", json!("svc-orders"));
        assert_eq!(check(&es256(&c), &custom).unwrap().principal, "svc-orders");
        // The custom claim is required even when "sub" is there.
        let detail = rejected(check(&es256(&claims()), &custom));
        assert!(detail.contains("client_id"), "{detail}");
    }

    #[test]
    fn key_selection() {
        let unknown = encode(
            &json!({"alg": "RS256", "kid": "nope"}),
            &claims(),
            Signer::Rsa(&KEYS.rsa, &signature::RSA_PKCS1_SHA256),
        );
        assert!(rejected(check(&unknown, &strict())).contains("unknown kid \"nope\""));
        // A kid naming a key of another type, or a curve that does not fit the alg.
        let es_on_rsa = encode(
            &json!({"alg": "ES256", "kid": "rsa1"}),
            &claims(),
            Signer::Ec(&KEYS.ec),
        );
        assert!(rejected(check(&es_on_rsa, &strict())).contains("can verify alg ES256"));
        let es384_on_p256 = encode(
            &json!({"alg": "ES384", "kid": "ec1"}),
            &claims(),
            Signer::Ec(&KEYS.ec384),
        );
        assert!(rejected(check(&es384_on_p256, &strict())).contains("can verify alg ES384"));

        // No kid: the set's only key, or its keys without kid.
        let no_kid = encode(
            &json!({"alg": "RS256"}),
            &claims(),
            Signer::Rsa(&KEYS.rsa, &signature::RSA_PKCS1_SHA256),
        );
        assert!(rejected(check(&no_kid, &strict())).contains("no kid"));
        let single = jwks_of(&[rsa_jwk(Some("k"), &KEYS.rsa)]);
        assert!(validate(&no_kid, &single, &strict(), NOW_MS).is_ok());
        let kidless = jwks_of(&[
            rsa_jwk(Some("a"), &KEYS.other_rsa),
            rsa_jwk(None, &KEYS.other_rsa),
            rsa_jwk(None, &KEYS.rsa),
        ]);
        assert!(validate(&no_kid, &kidless, &strict(), NOW_MS).is_ok());
        // A kid that no key has falls back to the keys without kid (jose4j's rule).
        assert!(validate(&unknown, &kidless, &strict(), NOW_MS).is_ok());
        let other_only = jwks_of(&[
            rsa_jwk(Some("a"), &KEYS.other_rsa),
            rsa_jwk(Some("b"), &KEYS.rsa),
        ]);
        assert!(rejected(validate(&no_kid, &other_only, &strict(), NOW_MS)).contains("no kid"));

        // Two keys under one kid (rotation): either may verify.
        let rotating = jwks_of(&[
            rsa_jwk(Some("rsa1"), &KEYS.other_rsa),
            rsa_jwk(Some("rsa1"), &KEYS.rsa),
        ]);
        assert!(validate(&rs256(&claims()), &rotating, &strict(), NOW_MS).is_ok());

        // A key's own alg restricts it.
        let mut pinned = rsa_jwk(Some("rsa1"), &KEYS.rsa);
        pinned["alg"] = json!("PS256");
        let pinned = jwks_of(&[pinned]);
        assert!(
            rejected(validate(&rs256(&claims()), &pinned, &strict(), NOW_MS))
                .contains("can verify alg RS256")
        );

        let empty = Jwks::parse(br#"{"keys":[]}"#).unwrap();
        assert!(empty.is_empty());
        assert!(
            rejected(validate(&rs256(&claims()), &empty, &strict(), NOW_MS))
                .contains("unknown kid")
        );
    }

    #[test]
    fn bad_signatures() {
        let other_key = encode(
            &json!({"alg": "RS256", "kid": "rsa1"}),
            &claims(),
            Signer::Rsa(&KEYS.other_rsa, &signature::RSA_PKCS1_SHA256),
        );
        assert!(rejected(check(&other_key, &strict())).contains("bad signature"));

        // A payload swapped after signing.
        let token = rs256(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = with(&claims(), "sub", json!("admin"));
        let tampered = format!("{}.{}.{}", parts[0], b64(forged.to_string()), parts[2]);
        assert!(rejected(check(&tampered, &strict())).contains("bad signature"));
        let token = es256(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], b64(forged.to_string()), parts[2]);
        assert!(rejected(check(&tampered, &strict())).contains("bad signature"));
        // The signature of one token on another.
        let sig_of_other = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            other_key.split('.').nth(2).unwrap()
        );
        assert!(rejected(check(&sig_of_other, &strict())).contains("bad signature"));
        let truncated_sig = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);
        assert!(rejected(check(&truncated_sig, &strict())).contains("bad signature"));
    }

    #[test]
    fn refused_algorithms() {
        let none = encode(&json!({"alg": "none"}), &claims(), Signer::Raw(b""));
        assert!(rejected(check(&none, &strict())).contains("alg none"));
        let none_signed = encode(
            &json!({"alg": "None", "kid": "rsa1"}),
            &claims(),
            Signer::Raw(b"x"),
        );
        assert!(rejected(check(&none_signed, &strict())).contains("alg none"));
        // HS256 with the RSA key's public modulus as the "secret": the classic confusion.
        let n = KEYS
            .rsa
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec();
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": "rsa1"}).to_string()),
            b64(claims().to_string())
        );
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &n),
            input.as_bytes(),
        );
        let hs256 = format!("{input}.{}", b64(mac.as_ref()));
        assert!(rejected(check(&hs256, &strict())).contains("HS256"));
        for alg in [json!("rs256"), json!("EdDSA"), json!(1)] {
            let token = encode(
                &json!({"alg": alg, "kid": "rsa1"}),
                &claims(),
                Signer::Raw(b"x"),
            );
            assert!(rejected(check(&token, &strict())).contains("alg"));
        }
        let no_alg = encode(&json!({"kid": "rsa1"}), &claims(), Signer::Raw(b"x"));
        assert!(rejected(check(&no_alg, &strict())).contains("no alg"));
        let crit = encode(
            &json!({"alg": "RS256", "kid": "rsa1", "crit": ["exp"], "exp": 1}),
            &claims(),
            Signer::Rsa(&KEYS.rsa, &signature::RSA_PKCS1_SHA256),
        );
        assert!(rejected(check(&crit, &strict())).contains("crit"));
        let bad_kid = encode(
            &json!({"alg": "RS256", "kid": 3}),
            &claims(),
            Signer::Raw(b"x"),
        );
        assert!(rejected(check(&bad_kid, &strict())).contains("kid"));
    }

    #[test]
    fn malformed_tokens() {
        let good = rs256(&claims());
        let parts: Vec<&str> = good.split('.').collect();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "got 1"),
            ("abc".to_owned(), "got 1"),
            (format!("{}.{}", parts[0], parts[1]), "got 2"),
            (format!("{good}.x"), "got 4"),
            (format!("{good}.x.y"), "JWE"),
            (
                format!("!!.{}.{}", parts[1], parts[2]),
                "header is not base64url",
            ),
            (
                format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
                "header is not base64url",
            ),
            (
                format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
                "signature is not base64url",
            ),
            (format!("{}.{}.", parts[0], parts[1]), "no signature"),
            (
                format!("{}.{}.{}", b64("{\"alg\""), parts[1], parts[2]),
                "header is not valid JSON",
            ),
            (
                format!("{}.{}.{}", b64("[1]"), parts[1], parts[2]),
                "header is not a JSON object",
            ),
            (
                format!("{}.{}.{}", b64("\"RS256\""), parts[1], parts[2]),
                "header is not a JSON object",
            ),
        ];
        for (token, expected) in cases {
            let detail = rejected(check(&token, &strict()));
            assert!(detail.contains(expected), "{token:?}: {detail}");
        }
        // A validly signed payload that is not base64url, not JSON, or not an object.
        let header = json!({"alg": "RS256", "kid": "rsa1"}).to_string();
        let rsa = || Signer::Rsa(&KEYS.rsa, &signature::RSA_PKCS1_SHA256);
        for (payload, expected) in [
            (&b"{\"sub\":"[..], "payload is not valid JSON"),
            (b"[]", "payload is not a JSON object"),
            (b"\xff\xfe", "payload is not valid JSON"),
        ] {
            let token = encode_raw(header.as_bytes(), payload, rsa());
            let detail = rejected(check(&token, &strict()));
            assert!(detail.contains(expected), "{detail}");
        }
        let input = format!("{}.a", b64(&header));
        let sig = sign(rsa(), input.as_bytes());
        let token = format!("{input}.{}", b64(sig));
        assert!(rejected(check(&token, &strict())).contains("payload is not base64url"));
        // Deeply nested JSON is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let token = format!("{}.{}.AAAA", b64(&deep), parts[1]);
        assert!(rejected(check(&token, &strict())).contains("header"));

        let oversized = format!("{good}{}", "A".repeat(MAX_MESSAGE_LEN));
        assert!(rejected(check(&oversized, &strict())).contains("limit"));
    }

    /// Truncations and single-byte corruptions of valid tokens never panic and never pass.
    #[test]
    fn mutated_tokens_never_pass() {
        for token in [rs256(&claims()), es256(&claims())] {
            let bytes = token.as_bytes();
            for n in 0..bytes.len() {
                let t = String::from_utf8_lossy(&bytes[..n]);
                assert!(check(&t, &strict()).is_err());
            }
            for i in 0..bytes.len() {
                for b in [b'.', b'A', b'_', b'=', 0xff] {
                    if bytes[i] == b {
                        continue;
                    }
                    let mut v = bytes.to_vec();
                    v[i] = b;
                    let t = String::from_utf8_lossy(&v);
                    assert!(check(&t, &strict()).is_err(), "{i} {b}");
                }
            }
        }
    }

    #[test]
    fn jwks_parsing() {
        assert!(matches!(
            Jwks::parse(b"not json"),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(Jwks::parse(b"[]"), Err(AuthError::Invalid(_))));
        assert!(matches!(
            Jwks::parse(br#"{"keys":{}}"#),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            Jwks::parse(br#"{"kty":"RSA"}"#),
            Err(AuthError::Invalid(_))
        ));

        let good_rsa = rsa_jwk(Some("good"), &KEYS.rsa);
        let mut enc = good_rsa.clone();
        enc["use"] = json!("enc");
        let mut ops = good_rsa.clone();
        ops["key_ops"] = json!(["encrypt"]);
        let mut ops_ok = good_rsa.clone();
        ops_ok["key_ops"] = json!(["verify"]);
        ops_ok["kid"] = json!("ops-ok");
        let mut padded = good_rsa.clone();
        padded["kid"] = json!("padded");
        padded["n"] = json!(format!("AAAA{}", padded["n"].as_str().unwrap()));
        let mut bad_n = good_rsa.clone();
        bad_n["n"] = json!("!!!");
        let mut small = good_rsa.clone();
        small["n"] = json!(b64([0xc5; 128]));
        let mut bad_alg = good_rsa.clone();
        bad_alg["alg"] = json!("HS256");
        let mut wrong_alg = good_rsa.clone();
        wrong_alg["alg"] = json!("ES256");
        let mut bad_kid = good_rsa.clone();
        bad_kid["kid"] = json!(5);
        let mut off_curve = ec_jwk(Some("off"), "P-256", &KEYS.ec);
        off_curve["y"] = json!(b64([7u8; 32]));
        let mut long_x = ec_jwk(Some("long"), "P-256", &KEYS.ec);
        long_x["x"] = json!(b64([7u8; 33]));
        let jwks = jwks_of(&[
            good_rsa,
            ec_jwk(Some("ec"), "P-256", &KEYS.ec),
            ops_ok,
            padded,
            enc,
            ops,
            bad_n,
            small,
            bad_alg,
            wrong_alg,
            bad_kid,
            off_curve,
            long_x,
            ec_jwk(Some("k1"), "secp256k1", &KEYS.ec),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
            json!({"kid": "no-kty"}),
            json!("a string"),
        ]);
        assert_eq!(jwks.len(), 4, "{:?}", jwks.skipped());
        assert_eq!(jwks.skipped().len(), 14, "{:?}", jwks.skipped());
        let skipped = jwks.skipped().join("\n");
        for reason in [
            "use \"enc\"",
            "key_ops",
            "\"n\" is not base64url",
            "1024 bits",
            "unsupported alg \"HS256\"",
            "alg ES256 does not fit",
            "\"kid\" is not a string",
            "not a point on P-256",
            "33 bytes",
            "unsupported crv \"secp256k1\"",
            "unsupported kty \"oct\"",
            "no \"kty\"",
            "not a JSON object",
        ] {
            assert!(skipped.contains(reason), "{reason}: {skipped}");
        }
        let padded_token = encode(
            &json!({"alg": "RS256", "kid": "padded"}),
            &claims(),
            Signer::Rsa(&KEYS.rsa, &signature::RSA_PKCS1_SHA256),
        );
        assert!(validate(&padded_token, &jwks, &strict(), NOW_MS).is_ok());
    }

    #[test]
    fn client_response_round_trip() {
        let msg = client_response(
            "eyJ.abc-_.x",
            &[("traceId", "t 1"), ("logicalCluster", "lc")],
        );
        assert_eq!(
            msg,
            b"n,,\x01auth=Bearer eyJ.abc-_.x\x01traceId=t 1\x01logicalCluster=lc\x01\x01"
        );
        let r = parse_client_response(&msg).unwrap();
        assert_eq!(r.token, "eyJ.abc-_.x");
        assert_eq!(r.authzid, None);
        assert_eq!(
            r.extensions,
            BTreeMap::from([
                ("logicalCluster".to_owned(), "lc".to_owned()),
                ("traceId".to_owned(), "t 1".to_owned()),
            ])
        );
        let r = parse_client_response(&client_response("tok", &[])).unwrap();
        assert!(r.extensions.is_empty());

        let r = parse_client_response(b"n,a=us=2Cer=3D,\x01auth=bEaReR   tok\x01\x01").unwrap();
        assert_eq!(r.authzid.as_deref(), Some("us,er="));
        assert_eq!(r.token, "tok");
    }

    #[test]
    fn client_response_errors() {
        for (message, expected) in [
            (&b""[..], "gs2 header"),
            (b"y,,\x01auth=Bearer t\x01\x01", "gs2 header"),
            (b"p=tls-unique,,\x01auth=Bearer t\x01\x01", "gs2 header"),
            (b"n,\x01auth=Bearer t\x01\x01", "gs2 header"),
            (b"n,x=y,\x01auth=Bearer t\x01\x01", "a=<authzid>"),
            (b"n,a=,\x01auth=Bearer t\x01\x01", "authzid"),
            (b"n,a=x=y,\x01auth=Bearer t\x01\x01", "authzid"),
            (b"n,a=\xc3\xa9,\x01auth=Bearer t\x01\x01", "authzid"),
            (b"n,,\x01\x01", "'auth' not specified"),
            (b"n,,\x01traceId=x\x01\x01", "'auth' not specified"),
            (b"n,,auth=Bearer t\x01\x01", "enclosed"),
            (b"n,,\x01auth=Bearer t\x01", "end with"),
            (b"n,,\x01auth=Bearer t", "enclosed"),
            (b"n,,\x01auth=Bearer t\x01\x01\x01", "without '='"),
            (b"n,,\x01auth=Bearer t\x01x\x01\x01", "without '='"),
            (b"n,,\x01auth=Bearer t\x01trace_id=x\x01\x01", "invalid key"),
            (b"n,,\x01auth=Bearer t\x01=x\x01\x01", "invalid key"),
            (b"n,,\x01auth=Bearer t\x01k=\x01\x01", "invalid value"),
            (b"n,,\x01auth=Bearer t\x01k=a\x00b\x01\x01", "invalid value"),
            (
                b"n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01",
                "given twice",
            ),
            (b"n,,\x01auth=Basic dXNlcg\x01\x01", "'auth' format"),
            (b"n,,\x01auth=Bearer\x01\x01", "'auth' format"),
            (b"n,,\x01auth=Bearer \x01\x01", "'auth' format"),
            (b"n,,\x01auth=Bearer a+b/c=\x01\x01", "'auth' format"),
            (b"n,,\x01auth=Bearer t\xff\x01\x01", "UTF-8"),
        ] {
            match parse_client_response(message) {
                Err(AuthError::Malformed { mechanism, detail }) => {
                    assert_eq!(mechanism, "OAUTHBEARER");
                    assert!(detail.contains(expected), "{message:?}: {detail}");
                }
                other => panic!("{message:?}: {other:?}"),
            }
        }
        let mut big = b"n,,\x01auth=Bearer ".to_vec();
        big.resize(MAX_MESSAGE_LEN, b'a');
        big.extend_from_slice(b"\x01\x01");
        assert!(matches!(
            parse_client_response(&big),
            Err(AuthError::Malformed { detail, .. }) if detail.contains("limit")
        ));
    }

    #[test]
    fn debug_redacts_the_token() {
        let token = rs256(&claims());
        let r = parse_client_response(&client_response(&token, &[("k", "v")])).unwrap();
        let debug = format!("{r:?}");
        assert!(!debug.contains(&token) && !debug.contains(token.split('.').nth(2).unwrap()));
        assert!(
            debug.contains("<redacted>") && debug.contains("\"k\""),
            "{debug}"
        );
    }

    fn server() -> OAuthServer {
        OAuthServer::new(Arc::new(JWKS.clone()), strict(), NOW_MS)
    }

    #[test]
    fn server_success() {
        let mut s = server();
        assert_eq!(s.expires_at_ms(), None);
        let msg = client_response(&es256(&claims()), &[("traceId", "abc")]);
        assert_eq!(
            s.step(&msg).unwrap(),
            ServerStep::Success {
                principal: "alice".to_owned(),
                message: Vec::new(),
            }
        );
        assert_eq!(s.expires_at_ms(), Some((NOW + 3600) * 1000));
        assert_eq!(s.extensions().unwrap()["traceId"], "abc");
        assert!(matches!(s.step(&msg), Err(AuthError::IllegalState(_))));
        assert!(matches!(s.step(b"\x01"), Err(AuthError::IllegalState(_))));
        assert_eq!(s.expires_at_ms(), Some((NOW + 3600) * 1000));
        assert!(format!("{s:?}").contains("Complete"));

        // An authzid equal to the principal is fine; another one fails at once.
        let token = rs256(&claims());
        let msg = format!("n,a=alice,\x01auth=Bearer {token}\x01\x01");
        assert!(matches!(
            server().step(msg.as_bytes()),
            Ok(ServerStep::Success { .. })
        ));
        let msg = format!("n,a=admin,\x01auth=Bearer {token}\x01\x01");
        let mut s = server();
        let err = s.step(msg.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidToken(d) if d.contains("\"admin\"") && d.contains("\"alice\"")),
            "{err}"
        );
        assert!(matches!(s.step(b"\x01"), Err(AuthError::IllegalState(_))));
        assert_eq!(s.expires_at_ms(), None);
    }

    #[test]
    fn server_failure_flow() {
        let expired = with(&claims(), "exp", json!(NOW - 3600));
        let msg = client_response(&rs256(&expired), &[]);
        let mut s = server();
        assert_eq!(
            s.step(&msg).unwrap(),
            ServerStep::Challenge(br#"{"status":"invalid_token"}"#.to_vec())
        );
        assert!(format!("{s:?}").contains("AwaitingErrorAck"));
        let err = s.step(b"\x01").unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidToken(d) if d.contains("expired")),
            "{err}"
        );
        assert!(err.to_string().starts_with("Invalid OAUTHBEARER token: "));
        assert!(matches!(s.step(b"\x01"), Err(AuthError::IllegalState(_))));
        assert_eq!(s.expires_at_ms(), None);

        // Anything but the lone \x01 after the challenge, even a fresh valid response.
        for second in [
            &b""[..],
            b"\x01\x01",
            b"x",
            &client_response(&rs256(&claims()), &[]),
        ] {
            let mut s = server();
            assert!(matches!(s.step(&msg), Ok(ServerStep::Challenge(_))));
            assert!(
                matches!(s.step(second), Err(AuthError::Malformed { .. })),
                "{second:?}"
            );
            assert!(matches!(s.step(b"\x01"), Err(AuthError::IllegalState(_))));
        }

        // A message that does not parse fails at once, without a challenge.
        let mut s = server();
        assert!(matches!(s.step(b"\x01"), Err(AuthError::Malformed { .. })));
        assert!(matches!(s.step(&msg), Err(AuthError::IllegalState(_))));
        let mut big = client_response(&rs256(&claims()), &[]);
        big.resize(MAX_MESSAGE_LEN + 1, b'a');
        assert!(matches!(
            server().step(&big),
            Err(AuthError::Malformed { .. })
        ));
    }
}
