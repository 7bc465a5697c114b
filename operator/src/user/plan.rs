//! Pure parts of the User reconcile: which admin steps the cluster's APIs allow, whether ACLs
//! would be enforced there, the ACL bindings a spec asks for (in Kafka's codes), the difference
//! to what the cluster holds, quotas, generated passwords and SCRAM-SHA-512 credentials.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::rand::SecureRandom;
use kafka_protocol::messages::ApiKey;
use strait_crds::user::{
    AclOperation, AclPatternType, AclResourceType, AclType, Quotas, UserAuthenticationType,
    UserSpec,
};

use crate::admin::{ACL_APIS, AclBinding, QUOTA_APIS, SCRAM_APIS, ScramCredential, SupportedApis};

/// The admin steps of a User pass: each sets (or, for a spec without it, clears) one part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserSteps {
    /// The SCRAM credential (AlterUserScramCredentials).
    pub scram: bool,
    /// The ACLs (DescribeAcls, CreateAcls, DeleteAcls).
    pub acls: bool,
    /// The quotas (AlterClientQuotas).
    pub quotas: bool,
}

impl UserSteps {
    /// Every step `apis` allows: what cleanup can remove. Through an API the cluster lacks
    /// nothing was set, so there is nothing to remove either.
    pub fn supported(apis: &SupportedApis) -> Self {
        UserSteps {
            scram: apis.missing(SCRAM_APIS).is_empty(),
            acls: apis.missing(ACL_APIS).is_empty(),
            quotas: apis.missing(QUOTA_APIS).is_empty(),
        }
    }
}

/// Whether `spec` asks for ACLs.
pub fn asks_acls(spec: &UserSpec) -> bool {
    spec.authorization
        .as_ref()
        .is_some_and(|a| !a.acls.is_empty())
}

/// Why a User with ACLs is refused by a cluster that enforces none (as Strimzi's User operator
/// refuses simple-authorization users of a cluster without it): Cluster `cluster` has no
/// `spec.authorization`, or (`None`) the cluster answered the ACL APIs with `SECURITY_DISABLED`.
pub fn authorization_not_enabled(cluster: Option<&str>) -> String {
    let why = match cluster {
        Some(name) => format!("Cluster {name} has no `spec.authorization`"),
        None => "the cluster has no authorizer (its ACL APIs answer SECURITY_DISABLED)".to_owned(),
    };
    format!(
        "the User has ACLs but {why}: its brokers enforce no ACL, every client may do everything; \
         nothing was changed in the cluster (enable authorization on the cluster, or remove the \
         User's `authorization`)"
    )
}

/// The steps for `spec` on a cluster serving `apis`, or the APIs (with the versions this client
/// sends) it lacks for what the spec asks: then nothing is called at all, rather than a
/// half-configured user or a call the broker answers by closing the connection.
pub fn user_steps(spec: &UserSpec, apis: &SupportedApis) -> Result<UserSteps, Vec<(ApiKey, i16)>> {
    let asks = [
        (is_scram(spec), SCRAM_APIS),
        (asks_acls(spec), ACL_APIS),
        (
            quota_ops(spec.quotas.as_ref())
                .values()
                .any(Option::is_some),
            QUOTA_APIS,
        ),
    ];
    let missing: Vec<(ApiKey, i16)> = asks
        .iter()
        .filter(|(asked, _)| *asked)
        .flat_map(|(_, needed)| apis.missing(needed))
        .collect();
    if missing.is_empty() {
        Ok(UserSteps::supported(apis))
    } else {
        Err(missing)
    }
}

/// Kafka quota keys and values of `quotas` (all four keys, `None` to remove).
pub fn quota_ops(quotas: Option<&Quotas>) -> BTreeMap<String, Option<f64>> {
    let q = quotas.cloned().unwrap_or_default();
    // Byte rates are far below 2^53, so f64 holds them exactly.
    #[allow(clippy::cast_precision_loss)]
    let as_f64 = |v: Option<i64>| v.map(|v| v as f64);
    BTreeMap::from([
        (
            "producer_byte_rate".to_owned(),
            as_f64(q.producer_byte_rate),
        ),
        (
            "consumer_byte_rate".to_owned(),
            as_f64(q.consumer_byte_rate),
        ),
        (
            "request_percentage".to_owned(),
            q.request_percentage.map(f64::from),
        ),
        (
            "controller_mutation_rate".to_owned(),
            q.controller_mutation_rate,
        ),
    ])
}

/// PBKDF2 iterations of generated credentials (Kafka's minimum is 4096).
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Length of generated passwords.
pub const PASSWORD_LEN: usize = 32;

/// Kafka's principal of a SCRAM user (or one without authentication).
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

/// Whether `spec` asks for SCRAM credentials.
pub fn is_scram(spec: &UserSpec) -> bool {
    spec.authentication
        .as_ref()
        .is_some_and(|a| a.kind == UserAuthenticationType::ScramSha512)
}

/// Whether `spec` asks for a client certificate.
pub fn is_tls(spec: &UserSpec) -> bool {
    spec.authentication
        .as_ref()
        .is_some_and(|a| a.kind == UserAuthenticationType::Tls)
}

/// The user name the brokers see: `CN=<user>` for a certificate user (the RFC 2253 subject of
/// its certificate, which has the common name only, under the default
/// `ssl.principal.mapping.rules`), else the user name.
pub fn username(user: &str, spec: &UserSpec) -> String {
    if is_tls(spec) {
        format!("CN={user}")
    } else {
        user.to_owned()
    }
}

/// Kafka's principal of user `user` with `spec`: what its ACLs name.
pub fn user_principal(user: &str, spec: &UserSpec) -> String {
    principal(&username(user, spec))
}

/// Longest user name a certificate user may have (a common name holds at most 64 characters).
pub const TLS_USERNAME_MAX: usize = 64;

fn resource_type(t: AclResourceType) -> i8 {
    match t {
        AclResourceType::Topic => 2,
        AclResourceType::Group => 3,
        AclResourceType::Cluster => 4,
        AclResourceType::TransactionalId => 5,
    }
}

fn operation(o: AclOperation) -> i8 {
    match o {
        AclOperation::All => 2,
        AclOperation::Read => 3,
        AclOperation::Write => 4,
        AclOperation::Create => 5,
        AclOperation::Delete => 6,
        AclOperation::Alter => 7,
        AclOperation::Describe => 8,
        AclOperation::ClusterAction => 9,
        AclOperation::DescribeConfigs => 10,
        AclOperation::AlterConfigs => 11,
        AclOperation::IdempotentWrite => 12,
    }
}

/// The bindings `spec` asks for, sorted and without duplicates.
pub fn desired_acls(user: &str, spec: &UserSpec) -> Vec<AclBinding> {
    let mut out = BTreeSet::new();
    let Some(authz) = &spec.authorization else {
        return Vec::new();
    };
    for rule in &authz.acls {
        let name = match rule.resource.kind {
            AclResourceType::Cluster => "kafka-cluster".to_owned(),
            _ => rule.resource.name.clone().unwrap_or_default(),
        };
        for op in &rule.operations {
            out.insert(AclBinding {
                resource_type: resource_type(rule.resource.kind),
                resource_name: name.clone(),
                pattern_type: match rule.resource.pattern_type {
                    AclPatternType::Literal => 3,
                    AclPatternType::Prefix => 4,
                },
                principal: user_principal(user, spec),
                host: rule.host.clone(),
                operation: operation(*op),
                permission: match rule.kind {
                    AclType::Deny => 2,
                    AclType::Allow => 3,
                },
            });
        }
    }
    out.into_iter().collect()
}

/// `(to create, to delete)` to go from `current` to `desired`.
pub fn acl_diff(
    current: &[AclBinding],
    desired: &[AclBinding],
) -> (Vec<AclBinding>, Vec<AclBinding>) {
    let create = desired
        .iter()
        .filter(|a| !current.contains(a))
        .cloned()
        .collect();
    let delete = current
        .iter()
        .filter(|a| !desired.contains(a))
        .cloned()
        .collect();
    (create, delete)
}

/// Errors of the random source.
#[derive(Debug, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

/// A random alphanumeric password.
pub fn generate_password() -> Result<String, RandomError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        rng.fill(&mut buf).map_err(|_| RandomError)?;
        // Rejection sampling keeps every character equally likely.
        for b in buf.iter().filter(|b| usize::from(**b) < 248) {
            if out.len() == PASSWORD_LEN {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// A SCRAM-SHA-512 credential for `password` with a fresh random salt.
pub fn scram_credential(user: &str, password: &str) -> Result<ScramCredential, RandomError> {
    let mut salt = vec![0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| RandomError)?;
    Ok(scram_with_salt(user, password, salt, SCRAM_ITERATIONS))
}

/// SCRAM-SHA-512 salted password (RFC 5802 `Hi()` = PBKDF2-HMAC-SHA512).
pub fn scram_with_salt(
    user: &str,
    password: &str,
    salt: Vec<u8>,
    iterations: u32,
) -> ScramCredential {
    let mut salted = vec![0u8; 64];
    let rounds = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
        rounds,
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    ScramCredential {
        user: user.to_owned(),
        iterations: i32::try_from(rounds.get()).unwrap_or(i32::MAX),
        salt,
        salted_password: salted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_crds::ClusterReference;
    use strait_crds::cluster::AuthorizationType;
    use strait_crds::user::{
        AclResource, AclRule, UserAuthentication, UserAuthenticationType as ScramMechanism,
        UserAuthorization,
    };

    fn spec(rules: Vec<AclRule>) -> UserSpec {
        UserSpec {
            cluster: ClusterReference {
                name: Some("kafka".into()),
                ..ClusterReference::default()
            },
            authentication: None,
            authorization: Some(UserAuthorization {
                kind: AuthorizationType::Simple,
                acls: rules,
            }),
            quotas: None,
            deletion_policy: Default::default(),
        }
    }

    fn rule(kind: AclResourceType, name: Option<&str>, ops: &[AclOperation]) -> AclRule {
        AclRule {
            resource: AclResource {
                kind,
                name: name.map(str::to_owned),
                pattern_type: AclPatternType::Prefix,
            },
            operations: ops.to_vec(),
            kind: AclType::Allow,
            host: "*".into(),
        }
    }

    #[test]
    fn certificate_users_are_named_by_their_subject_and_get_no_scram_credential() {
        let mut s = spec(vec![AclRule {
            resource: AclResource {
                kind: AclResourceType::Topic,
                name: Some("orders".into()),
                pattern_type: AclPatternType::Literal,
            },
            operations: vec![AclOperation::Write],
            kind: AclType::Allow,
            host: "*".into(),
        }]);
        s.authentication = Some(UserAuthentication {
            kind: ScramMechanism::Tls,
            password: None,
        });
        assert!(is_tls(&s) && !is_scram(&s));
        assert_eq!(username("alice", &s), "CN=alice");
        assert_eq!(user_principal("alice", &s), "User:CN=alice");
        let acls = desired_acls("alice", &s);
        assert_eq!(acls.len(), 1);
        assert_eq!(acls[0].principal, "User:CN=alice");
        // A broker without the SCRAM API can hold a certificate user with ACLs.
        let no_scram = apis_without(&[ApiKey::AlterUserScramCredentials]);
        assert_eq!(
            user_steps(&s, &no_scram),
            Ok(UserSteps {
                scram: false,
                acls: true,
                quotas: true
            })
        );
        s.authentication = Some(UserAuthentication {
            kind: ScramMechanism::ScramSha512,
            password: None,
        });
        assert_eq!(user_principal("alice", &s), "User:alice");
        assert_eq!(username("alice", &s), "alice");
    }

    #[test]
    fn acls_expand_per_operation_in_kafka_codes() {
        let s = spec(vec![
            rule(
                AclResourceType::Topic,
                Some("orders"),
                &[AclOperation::Read, AclOperation::Describe],
            ),
            rule(
                AclResourceType::Cluster,
                None,
                &[AclOperation::IdempotentWrite],
            ),
        ]);
        let acls = desired_acls("app", &s);
        assert_eq!(acls.len(), 3);
        assert!(acls.contains(&AclBinding {
            resource_type: 2,
            resource_name: "orders".into(),
            pattern_type: 4,
            principal: "User:app".into(),
            host: "*".into(),
            operation: 3,
            permission: 3,
        }));
        assert!(acls.iter().any(|a| a.resource_type == 4
            && a.resource_name == "kafka-cluster"
            && a.operation == 12));
    }

    #[test]
    fn diff_creates_missing_and_deletes_stale() {
        let s = spec(vec![rule(
            AclResourceType::Topic,
            Some("a"),
            &[AclOperation::Read, AclOperation::Write],
        )]);
        let desired = desired_acls("u", &s);
        let current = vec![
            desired[0].clone(),
            AclBinding {
                operation: 6,
                ..desired[0].clone()
            },
        ];
        let (create, delete) = acl_diff(&current, &desired);
        assert_eq!(create, [desired[1].clone()]);
        assert_eq!(
            delete,
            [AclBinding {
                operation: 6,
                ..desired[0].clone()
            }]
        );
    }

    #[test]
    fn quotas_map_to_kafka_keys_and_unset_ones_are_removed() {
        let q = Quotas {
            producer_byte_rate: Some(1024),
            request_percentage: Some(50),
            ..Quotas::default()
        };
        let ops = quota_ops(Some(&q));
        assert_eq!(ops["producer_byte_rate"], Some(1024.0));
        assert_eq!(ops["request_percentage"], Some(50.0));
        assert_eq!(ops["consumer_byte_rate"], None);
        assert!(quota_ops(None).values().all(Option::is_none));
    }

    /// Every API but `without`, at every version.
    fn apis_without(without: &[ApiKey]) -> SupportedApis {
        SupportedApis::new(
            ApiKey::iter()
                .filter(|k| !without.contains(k))
                .map(|k| (k, 0, i16::MAX)),
        )
    }

    #[test]
    fn steps_need_the_apis_of_what_the_spec_asks() {
        let mut s = spec(vec![rule(
            AclResourceType::Topic,
            Some("a"),
            &[AclOperation::Read],
        )]);
        let everything = UserSteps {
            scram: true,
            acls: true,
            quotas: true,
        };
        assert_eq!(user_steps(&s, &apis_without(&[])), Ok(everything));
        // Strait's broker today: SCRAM credentials and ACLs, no quota API. ACLs asked: the
        // credential and ACL steps (the credential step clears one set before).
        let strait = apis_without(&[ApiKey::AlterClientQuotas]);
        let scram_and_acls = UserSteps {
            scram: true,
            acls: true,
            quotas: false,
        };
        assert_eq!(user_steps(&s, &strait), Ok(scram_and_acls));
        // Strait before ACLs: ACLs asked are refused, naming the ACL APIs.
        let before_acls = apis_without(&[
            ApiKey::DescribeAcls,
            ApiKey::CreateAcls,
            ApiKey::DeleteAcls,
            ApiKey::AlterClientQuotas,
        ]);
        let scram_only = UserSteps {
            scram: true,
            acls: false,
            quotas: false,
        };
        let missing = user_steps(&s, &before_acls).expect_err("refused");
        assert_eq!(
            missing.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [ApiKey::DescribeAcls, ApiKey::CreateAcls, ApiKey::DeleteAcls]
        );
        // A SCRAM user without ACLs or quotas: the credential step alone there; with the ACL
        // APIs served, the ACL step too (to remove bindings set before).
        s.authorization = None;
        s.authentication = Some(UserAuthentication {
            kind: ScramMechanism::ScramSha512,
            password: None,
        });
        assert_eq!(user_steps(&s, &before_acls), Ok(scram_only));
        assert_eq!(user_steps(&s, &strait), Ok(scram_and_acls));
        // Quotas asked as well: refused, naming AlterClientQuotas only.
        s.quotas = Some(Quotas {
            producer_byte_rate: Some(1),
            ..Quotas::default()
        });
        assert_eq!(
            user_steps(&s, &strait),
            Err(vec![(ApiKey::AlterClientQuotas, 1)])
        );
        // Nothing asked: the credential step still runs, to remove one set before.
        s.authentication = None;
        s.quotas = None;
        assert_eq!(user_steps(&s, &before_acls), Ok(scram_only));
        // A broker without any of the security APIs (Strait before SASL): a SCRAM user is
        // refused; with nothing asked there is nothing to set, and nothing could have been set
        // there to clear.
        let none = apis_without(&[
            ApiKey::AlterUserScramCredentials,
            ApiKey::DescribeAcls,
            ApiKey::CreateAcls,
            ApiKey::DeleteAcls,
            ApiKey::AlterClientQuotas,
        ]);
        assert_eq!(user_steps(&s, &none), Ok(UserSteps::default()));
        s.authentication = Some(UserAuthentication {
            kind: ScramMechanism::ScramSha512,
            password: None,
        });
        assert_eq!(
            user_steps(&s, &none),
            Err(vec![(ApiKey::AlterUserScramCredentials, 0)])
        );
        // Asked for quotas only, on a cluster without ACLs: the quota step alone.
        s.authentication = None;
        s.quotas = Some(Quotas {
            producer_byte_rate: Some(1),
            ..Quotas::default()
        });
        let no_acls = apis_without(&[ApiKey::CreateAcls]);
        assert_eq!(
            user_steps(&s, &no_acls),
            Ok(UserSteps {
                scram: true,
                acls: false,
                quotas: true,
            })
        );
    }

    #[test]
    fn acls_asked_and_why_they_are_refused_without_an_authorizer() {
        let mut s = spec(vec![rule(
            AclResourceType::Topic,
            Some("a"),
            &[AclOperation::Read],
        )]);
        assert!(asks_acls(&s));
        s.authorization = Some(UserAuthorization {
            kind: AuthorizationType::Simple,
            acls: Vec::new(),
        });
        assert!(!asks_acls(&s));
        s.authorization = None;
        assert!(!asks_acls(&s));
        let named = authorization_not_enabled(Some("kafka"));
        assert!(
            named.contains("Cluster kafka has no `spec.authorization`")
                && named.contains("nothing was changed"),
            "{named}"
        );
        let external = authorization_not_enabled(None);
        assert!(external.contains("SECURITY_DISABLED"), "{external}");
    }

    #[test]
    fn passwords_are_random_alphanumerics() {
        let a = generate_password().expect("password");
        let b = generate_password().expect("password");
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn scram_matches_rfc7677_style_pbkdf2() {
        // PBKDF2-HMAC-SHA512("password", "salt", 1) from RFC 6070-style vectors.
        let c = scram_with_salt("u", "password", b"salt".to_vec(), 1);
        assert_eq!(
            c.salted_password[..8],
            [0x86, 0x7f, 0x70, 0xcf, 0x1a, 0xde, 0x02, 0xcf]
        );
        assert_eq!(c.iterations, 1);
        assert_eq!(
            scram_credential("u", "p")
                .expect("cred")
                .salted_password
                .len(),
            64
        );
    }
}
