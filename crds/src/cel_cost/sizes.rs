//! What the API server assumes about the values of a schema node: their largest size (strings
//! from `maxLength`, lists from `maxItems`, maps from `maxProperties`, else from the request
//! size), their smallest serialized size, and whether a bound exists at all.

use serde_json::{Value, json};

use super::UNBOUNDED_STRING;

/// The kinds of value the cost model tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Scalar,
    String,
    Bytes,
    List,
    Map,
    Object,
}

fn schema_type(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
}

fn is_int_or_string(node: &Value) -> bool {
    node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
}

fn is_map(node: &Value) -> bool {
    schema_type(node) == "object"
        && matches!(node.get("additionalProperties"), Some(Value::Object(_)))
}

fn string_format(node: &Value) -> &str {
    node.get("format").and_then(Value::as_str).unwrap_or("")
}

pub(super) fn shape(node: &Value) -> Shape {
    if is_int_or_string(node) {
        return Shape::String;
    }
    match schema_type(node) {
        "string" if string_format(node) == "byte" => Shape::Bytes,
        "string" => Shape::String,
        "array" => Shape::List,
        "object" if is_map(node) => Shape::Map,
        "object" => Shape::Object,
        _ => Shape::Scalar,
    }
}

fn max_length(node: &Value) -> Option<u64> {
    node.get("maxLength").and_then(Value::as_u64)
}

/// The API server's size estimate of a schema node (`DeclType.MaxElements`), except that
/// scalars count 1 (it says 0).
pub(super) fn max_elements(node: &Value) -> u64 {
    if is_int_or_string(node) {
        return max_length(node).map_or(UNBOUNDED_STRING, |n| n.saturating_mul(4));
    }
    match schema_type(node) {
        "string" => match string_format(node) {
            "byte" => max_length(node).unwrap_or(UNBOUNDED_STRING),
            "duration" | "date-time" => 32,
            "date" => 12,
            _ => {
                let longest_enum = node.get("enum").and_then(Value::as_array).map(|values| {
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|s| s.len() as u64)
                        .max()
                        .unwrap_or(0)
                });
                match (max_length(node), longest_enum) {
                    (Some(n), _) => n.saturating_mul(4),
                    (None, Some(n)) => n,
                    (None, None) => UNBOUNDED_STRING,
                }
            }
        },
        "array" => node
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| {
                let items = node.get("items").map_or(2, min_serialized_size);
                UNBOUNDED_STRING / (items + 1)
            }),
        "object" if is_map(node) => node
            .get("maxProperties")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| {
                let values = node
                    .get("additionalProperties")
                    .map_or(2, min_serialized_size);
                UNBOUNDED_STRING / (values + 6)
            }),
        "object" => 0,
        _ => 1,
    }
}

/// Characters a comparison of the whole node could traverse: the sum over its leaves, capped at
/// the request size (no value holds more characters than the request that carried it).
pub(super) fn traversal_size(node: &Value) -> u64 {
    let size = match shape(node) {
        Shape::Scalar => 1,
        Shape::String | Shape::Bytes => max_elements(node),
        Shape::List => {
            let items = node.get("items").map_or(1, traversal_size);
            max_elements(node).saturating_mul(items)
        }
        Shape::Map => {
            let values = node.get("additionalProperties").map_or(1, traversal_size);
            let entry = values.saturating_add(UNBOUNDED_STRING);
            max_elements(node).saturating_mul(entry)
        }
        Shape::Object => node
            .get("properties")
            .and_then(Value::as_object)
            .map_or(0, |props| {
                props
                    .values()
                    .fold(0u64, |sum, p| sum.saturating_add(traversal_size(p)))
            }),
    };
    size.min(UNBOUNDED_STRING)
}

/// The smallest JSON a value of `node` serializes to (`DeclType.MinSerializedSize`).
pub(super) fn min_serialized_size(node: &Value) -> u64 {
    if is_int_or_string(node) {
        return 1;
    }
    match schema_type(node) {
        "string" => match string_format(node) {
            "duration" => 3,
            "date" => 12,
            "date-time" => 21,
            _ => 2,
        },
        "boolean" => 4,
        "integer" | "number" => 1,
        "object" if !is_map(node) => {
            let required: Vec<&str> = node
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let props = node.get("properties").and_then(Value::as_object);
            2 + props.map_or(0, |props| {
                props
                    .iter()
                    .filter(|(name, p)| {
                        required.contains(&name.as_str()) && p.get("default").is_none()
                    })
                    .map(|(name, p)| name.len() as u64 + min_serialized_size(p) + 4)
                    .sum()
            })
        }
        _ => 2,
    }
}

/// Whether a read of `node` has a bound the API server's estimator uses.
pub(super) fn is_bounded(node: &Value) -> bool {
    if is_int_or_string(node) {
        return max_length(node).is_some();
    }
    match schema_type(node) {
        "string" => {
            max_length(node).is_some()
                || node.get("enum").is_some()
                || matches!(string_format(node), "date" | "date-time" | "duration")
        }
        "array" => node.get("maxItems").is_some(),
        "object" if is_map(node) => node.get("maxProperties").is_some(),
        _ => true,
    }
}

pub(super) fn describe(node: &Value) -> &'static str {
    match shape(node) {
        Shape::List => "list without maxItems",
        Shape::Map => "map without maxProperties",
        _ => "string without maxLength",
    }
}

/// The root of a custom resource as rules see it: `apiVersion`, `kind` and `metadata.name`,
/// `metadata.generateName` are always there, as plain (unbounded) strings.
pub(super) fn with_type_and_object_meta(root: &Value) -> Value {
    let mut root = root.clone();
    if let Some(map) = root.as_object_mut() {
        let props = map
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(props) = props {
            props.insert("apiVersion".into(), json!({"type": "string"}));
            props.insert("kind".into(), json!({"type": "string"}));
            props.insert(
                "metadata".into(),
                json!({"type": "object", "properties": {
                    "name": {"type": "string"},
                    "generateName": {"type": "string"},
                }}),
            );
        }
    }
    root
}
