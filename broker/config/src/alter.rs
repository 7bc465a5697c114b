//! IncrementalAlterConfigs on topic overrides: SET, DELETE, APPEND and SUBTRACT, as Kafka's
//! `ConfigAdminManager` applies them.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ConfigError;
use crate::schema::{ConfigType, split_list};
use crate::topic::{topic_def, validate_topic_configs};

/// Kafka's `AlterConfigOp.OpType` ids.
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// Applies `ops` (name, operation id, value) to `overrides` and validates the result. APPEND and
/// SUBTRACT work on LIST configs only, starting from the override or else the topic default.
pub fn apply_incremental(
    overrides: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut seen = BTreeSet::new();
    if let Some((name, _, _)) = ops.iter().find(|(name, _, _)| !seen.insert(name.as_str())) {
        return Err(ConfigError::invalid(
            name,
            format!("Error due to duplicate config keys: {name}"),
        ));
    }
    let mut result = overrides.clone();
    for (name, op, value) in ops {
        let def = topic_def(name).ok_or_else(|| ConfigError::Unknown { key: name.clone() })?;
        let value_required = || {
            value.as_deref().ok_or_else(|| {
                ConfigError::invalid(name, format!("Null value not supported for : {name}"))
            })
        };
        match *op {
            OP_SET => {
                result.insert(name.clone(), value_required()?.trim().to_string());
            }
            OP_DELETE => {
                result.remove(name);
            }
            OP_APPEND | OP_SUBTRACT => {
                let verb = if *op == OP_APPEND {
                    "append"
                } else {
                    "subtract"
                };
                if def.def.ty != ConfigType::List {
                    return Err(ConfigError::invalid(
                        name,
                        format!("Config value {verb} is not allowed for config key: {name}"),
                    ));
                }
                let given = split_list(value_required()?);
                let current = result
                    .get(name)
                    .map(String::as_str)
                    .or(def.def.default)
                    .unwrap_or("");
                let mut items = split_list(current);
                if *op == OP_APPEND {
                    for item in given {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                } else {
                    items.retain(|item| !given.contains(item));
                }
                result.insert(name.clone(), items.join(","));
            }
            other => {
                return Err(ConfigError::invalid(
                    name,
                    format!("Unknown alter config operation type {other}"),
                ));
            }
        }
    }
    validate_topic_configs(&result)?;
    Ok(result)
}

#[cfg(test)]
mod tests;
