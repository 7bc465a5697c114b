//! Checks that a CRD's schemas are structural in the sense of apiextensions.k8s.io/v1 (the API
//! server rejects CRDs whose schemas are not): every node has a type (unless it is
//! int-or-string or preserves unknown fields), no `$ref`, no type/default/description inside
//! logical junctors, and `properties` never together with `additionalProperties`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Every violation found in every version of `crd`, as `path: problem` strings.
pub fn violations(crd: &CustomResourceDefinition) -> Vec<String> {
    let mut out = Vec::new();
    for version in &crd.spec.versions {
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let Some(schema) = schema else {
            out.push(format!("{}: no openAPIV3Schema", version.name));
            continue;
        };
        match serde_json::to_value(schema) {
            Ok(value) => check_node(&value, &version.name, false, &mut out),
            Err(e) => out.push(format!("{}: cannot serialize schema: {e}", version.name)),
        }
    }
    out
}

const JUNCTORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];
const FORBIDDEN_IN_JUNCTOR: [&str; 6] = [
    "type",
    "default",
    "description",
    "nullable",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
];

fn check_node(node: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for key in ["$ref", "definitions", "$defs"] {
        if map.contains_key(key) {
            out.push(format!("{path}: `{key}` is not allowed"));
        }
    }
    if in_junctor {
        for key in FORBIDDEN_IN_JUNCTOR {
            if map.contains_key(key) {
                out.push(format!("{path}: `{key}` inside a logical junctor"));
            }
        }
    } else {
        let typed = map
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        let exempt = [
            "x-kubernetes-int-or-string",
            "x-kubernetes-preserve-unknown-fields",
        ]
        .iter()
        .any(|k| map.get(*k) == Some(&Value::Bool(true)));
        if !typed && !exempt {
            out.push(format!("{path}: no type"));
        }
        if map.get("type").is_some_and(|t| !t.is_string()) {
            out.push(format!("{path}: type must be one string"));
        }
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            check_node(child, &format!("{path}.{name}"), in_junctor, out);
        }
    }
    match map.get("additionalProperties") {
        Some(Value::Object(_)) => {
            if let Some(child) = map.get("additionalProperties") {
                check_node(child, &format!("{path}.*"), in_junctor, out);
            }
        }
        Some(Value::Bool(true)) => out.push(format!("{path}: additionalProperties: true")),
        _ => {}
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            out.push(format!("{path}: items must be one schema"));
        } else {
            check_node(items, &format!("{path}[]"), in_junctor, out);
        }
    }
    for junctor in JUNCTORS {
        match map.get(junctor) {
            Some(Value::Array(list)) => {
                for (i, child) in list.iter().enumerate() {
                    check_node(child, &format!("{path}.{junctor}[{i}]"), true, out);
                }
            }
            Some(child @ Value::Object(_)) => {
                check_node(child, &format!("{path}.{junctor}"), true, out)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::all;
    use serde_json::json;

    #[test]
    fn every_crd_is_structural() {
        for crd in all() {
            let problems = violations(&crd);
            assert!(
                problems.is_empty(),
                "{:?}: {problems:#?}",
                crd.metadata.name
            );
        }
    }

    fn check(schema: Value) -> Vec<String> {
        let mut out = Vec::new();
        check_node(&schema, "s", false, &mut out);
        out
    }

    #[test]
    fn untyped_nodes_refs_and_typed_junctors_are_reported() {
        assert_eq!(
            check(json!({"type": "object", "properties": {"a": {}}})),
            ["s.a: no type"]
        );
        assert!(check(json!({"$ref": "#/x", "type": "object"}))[0].contains("$ref"));
        let junctor = json!({"type": "object", "anyOf": [{"type": "string"}]});
        assert_eq!(
            check(junctor),
            ["s.anyOf[0]: `type` inside a logical junctor"]
        );
        let both =
            json!({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}});
        assert_eq!(
            check(both),
            ["s: properties and additionalProperties together"]
        );
    }

    #[test]
    fn int_or_string_and_preserved_nodes_need_no_type() {
        assert!(check(json!({"x-kubernetes-int-or-string": true})).is_empty());
        assert!(check(json!({"x-kubernetes-preserve-unknown-fields": true})).is_empty());
    }
}
