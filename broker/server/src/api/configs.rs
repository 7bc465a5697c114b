//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and this broker. Topic
//! overrides go to the controller and take effect on the logs as the image reaches each broker. The broker's
//! own configs are static (from `server.properties` and `--override`); changing them at run time
//! (Kafka's dynamic broker configs) is refused with a clear message.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use strait_config::{ConfigEntry, apply_incremental, describe_topic, validate_topic_configs};

use super::authz::{Authz, cluster_denied, op, topic_denied};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::replica_manager::unknown_topic;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// First DescribeConfigs version with config types and documentation.
const TYPES_VERSION: i16 = 3;

pub async fn describe(
    broker: &Arc<Broker>,
    req: DescribeConfigsRequest,
    ctx: &RequestContext,
) -> DescribeConfigsResponse {
    let with_types = ctx.api_version >= TYPES_VERSION;
    let authz = Authz::new(broker, ctx);
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let allowed = config_access(
                &authz,
                op::DESCRIBE_CONFIGS,
                r.resource_type,
                r.resource_name.as_str(),
            );
            match allowed.and_then(|()| entries(broker, r.resource_type, r.resource_name.as_str()))
            {
                Ok(entries) => {
                    let wanted: Option<HashSet<String>> = r
                        .configuration_keys
                        .map(|keys| keys.iter().map(|k| k.to_string()).collect());
                    let configs = entries
                        .into_iter()
                        .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.name)))
                        .map(|e| {
                            to_result(
                                e,
                                req.include_synonyms,
                                with_types && req.include_documentation,
                                with_types,
                            )
                        })
                        .collect();
                    base.with_configs(configs)
                }
                Err(e) => base
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entries(broker: &Broker, resource_type: i8, name: &str) -> Result<Vec<ConfigEntry>, ApiError> {
    match resource_type {
        RESOURCE_TOPIC => {
            let configs = broker
                .topic_configs(name)
                .ok_or_else(|| unknown_topic(name))?;
            Ok(describe_topic(&configs, &broker.config))
        }
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            if name.is_empty() {
                // The cluster-wide default resource holds dynamic defaults only; Strait has none.
                return Ok(Vec::new());
            }
            Ok(broker.config.describe())
        }
        other => Err(unsupported_resource(other)),
    }
}

fn check_broker_name(broker: &Broker, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name == broker.config.node_id.to_string() {
        Ok(())
    } else {
        Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.config.node_id
            ),
        ))
    }
}

fn unsupported_resource(resource_type: i8) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!("Unsupported resource type {resource_type} (supported: TOPIC=2, BROKER=4)"),
    )
}

fn to_result(
    e: ConfigEntry,
    synonyms: bool,
    docs: bool,
    types: bool,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(e.name))
        .with_value(if e.sensitive {
            None
        } else {
            e.value.map(str_bytes)
        })
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(e.sensitive);
    if synonyms {
        r.synonyms = e
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(s.name))
                    .with_value(s.value.map(str_bytes))
                    .with_source(s.source as i8)
            })
            .collect();
    }
    if types {
        r.config_type = e.config_type as i8;
    }
    if docs {
        r.documentation = e.documentation.map(str_bytes);
    }
    r
}

/// AlterConfigs (legacy): the given set replaces all of a topic's overrides.
pub async fn alter(
    broker: &Arc<Broker>,
    req: AlterConfigsRequest,
    ctx: &RequestContext,
) -> AlterConfigsResponse {
    let validate_only = req.validate_only;
    let authz = Authz::new(broker, ctx);
    let mut responses = Vec::with_capacity(req.resources.len());
    {
        for r in req.resources {
            let pairs: Vec<(StrBytes, Option<StrBytes>)> =
                r.configs.into_iter().map(|c| (c.name, c.value)).collect();
            let allowed = config_access(
                &authz,
                op::ALTER_CONFIGS,
                r.resource_type,
                r.resource_name.as_str(),
            );
            let outcome = async {
                allowed?;
                alter_resource(
                    broker,
                    r.resource_type,
                    r.resource_name.as_str(),
                    || {
                        let mut configs = BTreeMap::new();
                        for (name, value) in &pairs {
                            let Some(value) = value else {
                                return Err(ApiError::new(
                                    ResponseError::InvalidRequest,
                                    format!("Null value not supported for: {}", name.as_str()),
                                ));
                            };
                            if configs
                                .insert(name.to_string(), value.to_string())
                                .is_some()
                            {
                                return Err(duplicate_key(name.as_str()));
                            }
                        }
                        Ok(configs)
                    },
                    validate_only,
                )
                .await
            }
            .await;
            let resp = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            responses.push(match outcome {
                Ok(()) => resp,
                Err(e) => resp
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            });
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT on a topic's overrides.
pub async fn incremental_alter(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
    ctx: &RequestContext,
) -> IncrementalAlterConfigsResponse {
    let validate_only = req.validate_only;
    let authz = Authz::new(broker, ctx);
    let mut responses = Vec::with_capacity(req.resources.len());
    {
        for r in req.resources {
            let ops: Vec<(String, i8, Option<String>)> = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let name = r.resource_name.to_string();
            let allowed = config_access(&authz, op::ALTER_CONFIGS, r.resource_type, &name);
            let outcome = async {
                allowed?;
                alter_resource(
                    broker,
                    r.resource_type,
                    &name,
                    || {
                        let mut keys = HashSet::new();
                        if let Some((dup, _, _)) =
                            ops.iter().find(|(k, _, _)| !keys.insert(k.clone()))
                        {
                            return Err(duplicate_key(dup));
                        }
                        let current = broker
                            .topic_configs(&name)
                            .ok_or_else(|| unknown_topic(&name))?;
                        Ok(apply_incremental(&current, &ops)?)
                    },
                    validate_only,
                )
                .await
            }
            .await;
            let resp = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            responses.push(match outcome {
                Ok(()) => resp,
                Err(e) => resp
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message))),
            });
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Kafka's rule: a topic's configs need the operation on the topic; a broker's (and the
/// broker loggers') on the cluster.
fn config_access(
    authz: &Authz<'_>,
    operation: i8,
    resource_type: i8,
    name: &str,
) -> Result<(), ApiError> {
    const TOPIC: i8 = 2;
    match resource_type {
        TOPIC if authz.topic(operation, name) => Ok(()),
        TOPIC => Err(topic_denied(name)),
        _ if authz.cluster(operation) => Ok(()),
        _ => Err(cluster_denied()),
    }
}

fn duplicate_key(key: &str) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!("Error due to duplicate config keys: {key}"),
    )
}

/// Shared by both alter APIs: `new_configs` computes the topic's complete new override set.
async fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    new_configs: impl FnOnce() -> Result<BTreeMap<String, String>, ApiError>,
    validate_only: bool,
) -> Result<(), ApiError> {
    match resource_type {
        RESOURCE_TOPIC => {
            let Some(old) = broker.topic_configs(name) else {
                return Err(unknown_topic(name));
            };
            let configs = strait_config::mirror_source_change(&old, new_configs()?)?;
            validate_topic_configs(&configs)?;
            broker.validate_tiered(Some(&old), &configs)?;
            if validate_only {
                return Ok(());
            }
            super::admin_topics::set_topic_configs(broker.node(), name, configs).await
        }
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Dynamic broker configs are not supported: set broker configs in server.properties or with --override and restart",
            ))
        }
        other => Err(unsupported_resource(other)),
    }
}
