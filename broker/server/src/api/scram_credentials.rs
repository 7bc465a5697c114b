//! SCRAM credential administration (KIP-554): AlterUserScramCredentials checks each change as
//! Kafka does (mechanism, iteration range, salted password size, one change per user and
//! mechanism) and sends the valid ones to the controller, which records salted keys in the
//! metadata log; DescribeUserScramCredentials answers from the image with mechanisms and
//! iteration counts only — never salts or keys. The SASL APIs' answers outside a SASL exchange
//! are here too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use strait_auth::scram::{ScramCredential, ScramMechanism};
use strait_cluster::image::StoredScram;
use strait_cluster::rpc::{ControllerRequest, ControllerResponse};

use super::authz::{Authz, cluster_denied, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::errors::ApiError;

/// How long AlterUserScramCredentials waits for its change to reach this broker's image, so a
/// client that authenticates right after finds the credential here.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn describe(
    broker: &Arc<Broker>,
    req: DescribeUserScramCredentialsRequest,
    ctx: &RequestContext,
) -> DescribeUserScramCredentialsResponse {
    if !Authz::new(broker, ctx).cluster(op::DESCRIBE) {
        let e = cluster_denied();
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let image = broker.node().image();
    let info = |mechanisms: &BTreeMap<i8, StoredScram>| -> Vec<CredentialInfo> {
        mechanisms
            .iter()
            .map(|(m, c)| {
                CredentialInfo::default()
                    .with_mechanism(*m)
                    .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
            })
            .collect()
    };
    let results = match req.users {
        // All users (null, or an empty list as Kafka's admin client sends for "all").
        None => image
            .scram
            .iter()
            .map(|(user, ms)| ok_result(user).with_credential_infos(info(ms)))
            .collect(),
        Some(users) if users.is_empty() => image
            .scram
            .iter()
            .map(|(user, ms)| ok_result(user).with_credential_infos(info(ms)))
            .collect(),
        Some(users) => {
            let mut seen = BTreeMap::new();
            for u in &users {
                *seen.entry(u.name.to_string()).or_insert(0) += 1;
            }
            let mut done = BTreeSet::new();
            let mut results = Vec::new();
            for u in users {
                let name = u.name.to_string();
                if !done.insert(name.clone()) {
                    continue;
                }
                let result = if seen[&name] > 1 {
                    err_result(
                        &name,
                        ResponseError::DuplicateResource,
                        "Cannot describe SCRAM credentials for the same user twice in a single request",
                    )
                } else {
                    match image.scram.get(&name) {
                        Some(ms) => ok_result(&name).with_credential_infos(info(ms)),
                        None => err_result(
                            &name,
                            ResponseError::ResourceNotFound,
                            "Attempt to describe a user credential that does not exist",
                        ),
                    }
                };
                results.push(result);
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn ok_result(user: &str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default().with_user(str_bytes(user))
}

fn err_result(user: &str, e: ResponseError, message: &str) -> DescribeUserScramCredentialsResult {
    ok_result(user)
        .with_error_code(e.code())
        .with_error_message(Some(str_bytes(message)))
}

pub async fn alter(
    broker: &Arc<Broker>,
    req: AlterUserScramCredentialsRequest,
    ctx: &RequestContext,
) -> AlterUserScramCredentialsResponse {
    if !Authz::new(broker, ctx).cluster(op::ALTER) {
        let e = cluster_denied();
        let mut users: Vec<String> = Vec::new();
        for u in req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()))
        {
            if !users.contains(&u) {
                users.push(u);
            }
        }
        let results = users
            .into_iter()
            .map(|u| {
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(u))
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message.clone())))
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    // (user, mechanism) pairs named more than once, across deletions and upsertions.
    let mut count: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for (user, m) in req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        )
    {
        *count.entry((user, m)).or_default() += 1;
    }
    let mut order: Vec<String> = Vec::new();
    let mut refused: BTreeMap<String, ApiError> = BTreeMap::new();
    let mut deletions = Vec::new();
    let mut upsertions = Vec::new();
    let check = |user: &str, mechanism: i8| -> Result<ScramMechanism, ApiError> {
        if user.is_empty() {
            return Err(ApiError::new(
                ResponseError::UnacceptableCredential,
                "Username must not be empty",
            ));
        }
        if count[&(user.to_string(), mechanism)] > 1 {
            return Err(ApiError::new(
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request",
            ));
        }
        ScramMechanism::from_kafka_type(mechanism).ok_or_else(|| {
            ApiError::new(
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            )
        })
    };
    for d in &req.deletions {
        let user = d.name.to_string();
        if !order.contains(&user) {
            order.push(user.clone());
        }
        match check(&user, d.mechanism) {
            Ok(m) => deletions.push((user, m.kafka_type())),
            Err(e) => {
                refused.entry(user).or_insert(e);
            }
        }
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        if !order.contains(&user) {
            order.push(user.clone());
        }
        let credential = check(&user, u.mechanism).and_then(|m| {
            let iterations = u32::try_from(u.iterations).unwrap_or(0);
            if iterations < m.min_iterations() {
                return Err(ApiError::new(
                    ResponseError::UnacceptableCredential,
                    "Too few iterations",
                ));
            }
            if iterations > m.max_iterations() {
                return Err(ApiError::new(
                    ResponseError::UnacceptableCredential,
                    "Too many iterations",
                ));
            }
            ScramCredential::from_salted_password(m, &u.salt, &u.salted_password, iterations)
                .map(|c| (m, c))
                .map_err(|e| ApiError::new(ResponseError::UnacceptableCredential, e.to_string()))
        });
        match credential {
            Ok((m, c)) => upsertions.push((
                user,
                m.kafka_type(),
                StoredScram {
                    salt: c.salt,
                    stored_key: c.stored_key,
                    server_key: c.server_key,
                    iterations: c.iterations,
                },
            )),
            Err(e) => {
                refused.entry(user).or_insert(e);
            }
        }
    }
    // A user with any refused change keeps all its credentials as they are.
    deletions.retain(|(u, _)| !refused.contains_key(u));
    upsertions.retain(|(u, _, _)| !refused.contains_key(u));
    let mut decided: BTreeMap<String, Result<(), ApiError>> = BTreeMap::new();
    if !deletions.is_empty() || !upsertions.is_empty() {
        let expected: Vec<(String, i8, Option<StoredScram>)> = deletions
            .iter()
            .map(|(u, m)| (u.clone(), *m, None))
            .chain(
                upsertions
                    .iter()
                    .map(|(u, m, c)| (u.clone(), *m, Some(c.clone()))),
            )
            .collect();
        let users: Vec<String> = deletions
            .iter()
            .map(|(u, _)| u.clone())
            .chain(upsertions.iter().map(|(u, _, _)| u.clone()))
            .collect();
        let node = broker.node();
        match node
            .call(ControllerRequest::AlterScramCredentials {
                deletions,
                upsertions,
            })
            .await
        {
            Ok(ControllerResponse::AlterScramCredentials(results)) => {
                for (user, result) in results {
                    decided.insert(user, result.map_err(|e| ApiError::from(&e)));
                }
                // The accepted changes, visible here before the answer.
                let accepted: Vec<_> = expected
                    .into_iter()
                    .filter(|(u, _, _)| decided.get(u).is_some_and(|r| r.is_ok()))
                    .collect();
                node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
                    accepted
                        .iter()
                        .all(|(u, m, c)| image.scram.get(u).and_then(|ms| ms.get(m)) == c.as_ref())
                })
                .await;
            }
            Ok(other) => {
                let e = ApiError::unexpected_answer(&other);
                for u in users {
                    decided.insert(u, Err(e.clone()));
                }
            }
            Err(e) => {
                let e = ApiError::from(&e);
                for u in users {
                    decided.insert(u, Err(e.clone()));
                }
            }
        }
    }
    let results = order
        .into_iter()
        .map(|user| {
            let outcome = match refused.remove(&user) {
                Some(e) => Err(e),
                None => decided.remove(&user).unwrap_or(Ok(())),
            };
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// SaslHandshake outside a SASL exchange: on a listener without SASL, or after authentication
/// (re-authentication is handled by the connection's authenticator). Kafka answers
/// ILLEGAL_SASL_STATE with no mechanisms.
pub async fn handshake(
    _broker: &Arc<Broker>,
    _req: SaslHandshakeRequest,
    _ctx: &RequestContext,
) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

/// SaslAuthenticate outside a SASL exchange.
pub async fn authenticate(
    _broker: &Arc<Broker>,
    _req: SaslAuthenticateRequest,
    ctx: &RequestContext,
) -> SaslAuthenticateResponse {
    let message = if ctx.principal == super::ANONYMOUS {
        "SaslAuthenticate request received on a listener without SASL"
    } else {
        "SaslAuthenticate request received after successful authentication"
    };
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(str_bytes(message)))
}
