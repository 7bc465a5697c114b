//! AlterClientQuotas and DescribeClientQuotas (KIP-546, v0–1): quota values per user and/or
//! client-id entity (named or default) in the metadata log; checked as Kafka checks them (known
//! entity types and keys, positive values, no entity type twice) and, with an authorizer, gated
//! by ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster. Enforcement is `crate::quota`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use strait_cluster::quota::{self as model, Entity, QuotaValue};
use strait_cluster::rpc::{ControllerRequest, ControllerResponse};

use super::authz::{Authz, cluster_denied, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::errors::ApiError;

const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);
/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

type Ops = Vec<(String, Option<QuotaValue>)>;

/// Why Kafka would refuse this entity and these operations, if it would.
fn check(entity: &Entity, ops: &[(String, f64, bool)]) -> Result<Ops, ApiError> {
    let invalid = |m: String| ApiError::new(ResponseError::InvalidRequest, m);
    if entity.is_empty() {
        return Err(invalid("the entity names no user or client-id".into()));
    }
    for (i, (t, _)) in entity.iter().enumerate() {
        if t == "ip" {
            return Err(invalid(
                "ip entities (connection_creation_rate) are not served".into(),
            ));
        }
        if t != model::USER && t != model::CLIENT_ID {
            return Err(invalid(format!("unknown entity type {t}")));
        }
        if entity[..i].iter().any(|(other, _)| other == t) {
            return Err(invalid(format!("entity type {t} given twice")));
        }
    }
    let mut out = Vec::with_capacity(ops.len());
    for (key, value, remove) in ops {
        if !model::KEYS.contains(&key.as_str()) {
            return Err(invalid(format!("unknown quota key {key}")));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(invalid(format!("quota key {key} given twice")));
        }
        if *remove {
            out.push((key.clone(), None));
        } else if !value.is_finite() || *value <= 0.0 {
            return Err(invalid(format!("{key} must be positive, got {value}")));
        } else {
            out.push((key.clone(), Some(QuotaValue(*value))));
        }
    }
    Ok(out)
}

pub async fn alter(
    broker: &Arc<Broker>,
    req: AlterClientQuotasRequest,
    ctx: &RequestContext,
) -> AlterClientQuotasResponse {
    let allowed = Authz::new(broker, ctx).cluster(op::ALTER_CONFIGS);
    let mut checked: Vec<(Entity, Result<Ops, ApiError>)> = Vec::new();
    for entry in &req.entries {
        let entity: Entity = entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect();
        let ops: Vec<(String, f64, bool)> = entry
            .ops
            .iter()
            .map(|o| (o.key.to_string(), o.value, o.remove))
            .collect();
        let outcome = if allowed {
            check(&entity, &ops)
        } else {
            Err(cluster_denied())
        };
        checked.push((entity, outcome));
    }
    let accepted: Vec<(Entity, Ops)> = checked
        .iter()
        .filter_map(|(e, r)| r.as_ref().ok().map(|ops| (e.clone(), ops.clone())))
        .collect();
    let mut failure: Option<ApiError> = None;
    if !req.validate_only && !accepted.is_empty() {
        let node = broker.node();
        match node
            .call(ControllerRequest::AlterClientQuotas {
                entries: accepted.clone(),
            })
            .await
        {
            Ok(ControllerResponse::Done) => {
                node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
                    accepted.iter().all(|(entity, ops)| {
                        let key = model::entity_key(&model::normalize(entity.clone()));
                        let values = image.quotas.get(&key).map(|q| &q.values);
                        ops.iter()
                            .all(|(k, v)| values.and_then(|vs| vs.get(k)).copied() == *v)
                    })
                })
                .await;
            }
            Ok(other) => failure = Some(ApiError::unexpected_answer(&other)),
            Err(e) => failure = Some(ApiError::from(&e)),
        }
    }
    let entries = checked
        .into_iter()
        .map(|(entity, outcome)| {
            let data = entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(t.as_str()))
                        .with_entity_name(n.clone().map(str_bytes))
                })
                .collect();
            let entry = EntryData::default().with_entity(data);
            match outcome.and_then(|_| failure.clone().map_or(Ok(()), Err)) {
                Ok(()) => entry.with_error_message(None),
                Err(e) => entry
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

pub async fn describe(
    broker: &Arc<Broker>,
    req: DescribeClientQuotasRequest,
    ctx: &RequestContext,
) -> DescribeClientQuotasResponse {
    let error = |e: ApiError| {
        DescribeClientQuotasResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)))
            .with_entries(None)
    };
    if !Authz::new(broker, ctx).cluster(op::DESCRIBE_CONFIGS) {
        return error(cluster_denied());
    }
    for c in &req.components {
        let t = c.entity_type.as_str();
        if t != model::USER && t != model::CLIENT_ID {
            return error(ApiError::new(
                ResponseError::InvalidRequest,
                format!("unknown entity type {t}"),
            ));
        }
        if ![MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY].contains(&c.match_type) {
            return error(ApiError::new(
                ResponseError::InvalidRequest,
                format!("unknown match type {}", c.match_type),
            ));
        }
    }
    let image = broker.node().image();
    let entries = image
        .quotas
        .values()
        .filter(|q| {
            let matches_components = req.components.iter().all(|c| {
                let part = q
                    .entity
                    .iter()
                    .find(|(t, _)| t.as_str() == c.entity_type.as_str());
                match (c.match_type, part) {
                    (_, None) => false,
                    (MATCH_EXACT, Some((_, name))) => {
                        name.as_deref() == c._match.as_ref().map(|m| m.as_str())
                    }
                    (MATCH_DEFAULT, Some((_, name))) => name.is_none(),
                    (_, Some(_)) => true,
                }
            });
            // strict: no entity types beyond the components.
            let strict_ok = !req.strict
                || q.entity.iter().all(|(t, _)| {
                    req.components
                        .iter()
                        .any(|c| c.entity_type.as_str() == t.as_str())
                });
            matches_components && strict_ok
        })
        .map(|q| {
            DescribedEntry::default()
                .with_entity(
                    q.entity
                        .iter()
                        .map(|(t, n)| {
                            DescribedEntity::default()
                                .with_entity_type(str_bytes(t.as_str()))
                                .with_entity_name(n.clone().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    q.values
                        .iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(str_bytes(k.as_str()))
                                .with_value(v.0)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(entries))
}
