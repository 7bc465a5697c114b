//! A conservative model of the API server's static cost check for CRD validation rules
//! (`x-kubernetes-validations`), so that a rule which a real API server would refuse fails a
//! unit test instead. For every rule it lists the lists, strings and maps the rule reads without
//! a `maxItems`/`maxLength`/`maxProperties`, and estimates the rule's cost the way
//! apiextensions-apiserver and cel-go do.
//!
//! The model, after `k8s.io/apiserver/pkg/cel/common/schemas.go`,
//! `apiextensions-apiserver/pkg/apiserver/schema/cel/compilation.go`,
//! `.../apis/apiextensions/validation` and cel-go's `checker/cost.go`:
//!
//! - Sizes: a string with `maxLength: n` is `4n` long (bytes per code point), an enum string its
//!   longest value, a date/duration its format's length, any other string `3 MiB - 2`. A list has
//!   `maxItems` items, else `(3 MiB - 2) / (min serialized item size + 1)`; a map `maxProperties`
//!   entries, else `(3 MiB - 2) / (min value size + 6)`.
//! - Costs: literals 0; identifiers, field selections and `has()` 1 each; `&&`, `||` the sum of
//!   their operands, `?:` the condition plus the dearer branch; equality and string comparison
//!   `ceil(0.1 * min(size of both sides))`; `startsWith`, `endsWith` `ceil(0.1 * argument)`;
//!   `contains` and `matches` the product of the string's and the pattern's traversal costs;
//!   `in` the list's size; string concatenation `ceil(0.1 * result)`; any other operator,
//!   `size()`, indexing and conversions 1. Arguments' costs are always added.
//! - Comprehensions: range + accumulator init + result + items * (loop condition + step), with
//!   the macro expansions' own bookkeeping (`all`: 3 + p per item, `exists`: 4 + p,
//!   `exists_one`: 2 + p, `map`: 12 + f, `filter`: 13 + p); nested ones multiply.
//! - A rule's cost is multiplied by the `maxItems`/`maxProperties` of every list and map that
//!   encloses its node (unbounded: `3 MiB / (min serialized size + 1)`), for the per-rule limit
//!   (10,000,000) and for the per-CRD sum (100,000,000), as the API server does.
//!
//! Where this model deviates it over-estimates: scalars count as size 1 (the API server says 0),
//! and comparing whole objects, lists or maps costs a traversal of every leaf (capped at the
//! request size), where the API server's estimate counts only the top-level size; such a
//! comparison also counts as reading every field below it. Functions outside the list above are
//! refused, so a new kind of rule fails until the model learns it.

mod expr;
pub mod parse;
mod sizes;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use parse::ParseError;

/// Largest estimated cost of one rule (apiextensions `StaticEstimatedCostLimit`).
pub const RULE_COST_LIMIT: u64 = 10_000_000;
/// Largest estimated cost of all rules of one CRD version (`StaticEstimatedCRDCostLimit`).
pub const CRD_COST_LIMIT: u64 = 100_000_000;
/// The API server's largest request (`MaxRequestSizeBytes`), which bounds unbounded fields.
pub const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;
/// Size of a string without `maxLength`: a request holding only its quotes and it.
const UNBOUNDED_STRING: u64 = MAX_REQUEST_SIZE_BYTES - 2;

/// Why a rule could not be estimated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstimateError {
    /// The rule is not valid CEL.
    #[error("cannot parse: {0}")]
    Parse(#[from] ParseError),
    /// The rule uses something the model does not cover, or names a field the schema lacks.
    #[error("{0}")]
    Unsupported(String),
}

/// The estimate of one expression attached to one schema node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// Estimated cost of one evaluation.
    pub cost: u64,
    /// Lists, strings and maps the expression reads that have no bound, as schema paths.
    pub unbounded_reads: Vec<String>,
}

/// One `x-kubernetes-validations` entry of a CRD and its estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEstimate {
    /// CRD name, for example `clusters.strait.dev`.
    pub crd: String,
    /// API version of the schema.
    pub version: String,
    /// Schema path of the node carrying the rule (`spec.zones[]`; empty for the root).
    pub path: String,
    /// Index in that node's `x-kubernetes-validations`.
    pub index: usize,
    /// The rule (or `messageExpression`) text.
    pub rule: String,
    /// How many times the rule can run per object: the product of enclosing lists' and maps'
    /// bounds (1 for message expressions, which the API server does not multiply).
    pub cardinality: u64,
    /// The estimate, or why there is none.
    pub estimate: Result<Estimate, EstimateError>,
}

impl RuleEstimate {
    /// Cost times cardinality: what the API server compares with [`RULE_COST_LIMIT`] and adds to
    /// the CRD total. An expression that cannot be estimated counts as `u64::MAX`.
    pub fn total(&self) -> u64 {
        match &self.estimate {
            Ok(e) => e.cost.saturating_mul(self.cardinality),
            Err(_) => u64::MAX,
        }
    }

    /// Where the rule is: `clusters.strait.dev v1alpha1 spec x-kubernetes-validations[1]`.
    pub fn location(&self) -> String {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        format!(
            "{} {} {path} x-kubernetes-validations[{}]",
            self.crd, self.version, self.index
        )
    }
}

/// Every rule and message expression of every version of `crd`, estimated.
pub fn estimate_crd(crd: &CustomResourceDefinition) -> Vec<RuleEstimate> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    for version in &crd.spec.versions {
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok());
        if let Some(schema) = schema {
            out.extend(estimate_schema(&name, &version.name, &schema));
        }
    }
    out
}

/// Every rule of one openAPIV3Schema, estimated.
pub fn estimate_schema(crd: &str, version: &str, schema: &Value) -> Vec<RuleEstimate> {
    let mut out = Vec::new();
    let mut walk = Walk {
        crd,
        version,
        out: &mut out,
    };
    walk.node(schema, String::new(), Some(1));
    out
}

/// Every violation of the API server's limits among `estimates`, as readable lines: rules that
/// read unbounded fields, rules over [`RULE_COST_LIMIT`], rules that cannot be estimated, and
/// CRD versions whose rules add up to more than [`CRD_COST_LIMIT`].
pub fn problems(estimates: &[RuleEstimate]) -> Vec<String> {
    let mut out = Vec::new();
    let mut totals: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for rule in estimates {
        let estimate = match &rule.estimate {
            Ok(estimate) => estimate,
            // Reported once, here, and left out of the CRD total.
            Err(e) => {
                out.push(format!(
                    "{}: `{}` cannot be estimated: {e}",
                    rule.location(),
                    rule.rule
                ));
                continue;
            }
        };
        let total = totals
            .entry((rule.crd.as_str(), rule.version.as_str()))
            .or_default();
        *total = total.saturating_add(rule.total());
        for read in &estimate.unbounded_reads {
            out.push(format!(
                "{}: `{}` reads {read}, which has no maxItems/maxLength/maxProperties",
                rule.location(),
                rule.rule
            ));
        }
        if rule.total() > RULE_COST_LIMIT {
            out.push(format!(
                "{}: `{}` has estimated cost {} ({} x cardinality {}), over the per-rule limit \
                 {RULE_COST_LIMIT} by a factor of {:.1}",
                rule.location(),
                rule.rule,
                rule.total(),
                estimate.cost,
                rule.cardinality,
                rule.total() as f64 / RULE_COST_LIMIT as f64
            ));
        }
    }
    for ((crd, version), total) in totals {
        if total > CRD_COST_LIMIT {
            out.push(format!(
                "{crd} {version}: the rules' estimated costs add up to {total}, over the per-CRD \
                 limit {CRD_COST_LIMIT}"
            ));
        }
    }
    out
}

/// Estimates one expression attached to `node` (whose schema path is `path`; empty for a CRD's
/// root, which gets `apiVersion`, `kind` and `metadata.name` as the API server adds them).
pub fn estimate_rule(node: &Value, path: &str, rule: &str) -> Result<Estimate, EstimateError> {
    let expr = parse::parse(rule)?;
    let root;
    let node = if path.is_empty() {
        root = sizes::with_type_and_object_meta(node);
        &root
    } else {
        node
    };
    let (cost, reads) = expr::estimate(node, path, &expr)?;
    let unbounded_reads = reads
        .into_iter()
        .filter(|(_, node)| !sizes::is_bounded(node))
        .map(|(path, node)| format!("{path} ({})", sizes::describe(node)))
        .collect();
    Ok(Estimate {
        cost,
        unbounded_reads,
    })
}

struct Walk<'a> {
    crd: &'a str,
    version: &'a str,
    out: &'a mut Vec<RuleEstimate>,
}

impl Walk<'_> {
    /// `cardinality` is `None` under an unbounded list or map.
    fn node(&mut self, node: &Value, path: String, cardinality: Option<u64>) {
        if let Some(rules) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            // The API server's fallback for rules under unbounded lists and maps.
            let rule_cardinality = cardinality
                .unwrap_or_else(|| MAX_REQUEST_SIZE_BYTES / (sizes::min_serialized_size(node) + 1));
            for (index, rule) in rules.iter().enumerate() {
                let expressions = [
                    (rule.get("rule"), rule_cardinality),
                    (rule.get("messageExpression"), 1),
                ];
                for (text, cardinality) in expressions {
                    let Some(text) = text.and_then(Value::as_str) else {
                        continue;
                    };
                    self.out.push(RuleEstimate {
                        crd: self.crd.to_owned(),
                        version: self.version.to_owned(),
                        path: path.clone(),
                        index,
                        rule: text.to_owned(),
                        cardinality,
                        estimate: estimate_rule(node, &path, text),
                    });
                }
            }
        }
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                self.node(child, child_path, cardinality);
            }
        }
        let times = |bound: Option<u64>| cardinality.zip(bound).map(|(c, b)| c.saturating_mul(b));
        if let Some(items) = node.get("items") {
            let bound = node.get("maxItems").and_then(Value::as_u64);
            self.node(items, format!("{path}[]"), times(bound));
        }
        if let Some(values @ Value::Object(_)) = node.get("additionalProperties") {
            let bound = node.get("maxProperties").and_then(Value::as_u64);
            self.node(values, format!("{path}.*"), times(bound));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::all;
    use serde_json::json;

    fn cost(schema: &Value, rule: &str) -> Estimate {
        estimate_rule(schema, "spec", rule).expect("estimate")
    }

    fn strings(max_items: Option<u64>, max_length: Option<u64>) -> Value {
        let mut items = json!({"type": "string", "pattern": "^[a-z]+$"});
        if let Some(n) = max_length {
            items["maxLength"] = json!(n);
        }
        let mut list = json!({"type": "array", "items": items});
        if let Some(n) = max_items {
            list["maxItems"] = json!(n);
        }
        json!({"type": "object", "properties": {"l": list}})
    }

    const UNIQUE: &str = "self.l.all(x, self.l.exists_one(y, y == x))";

    /// Prints every rule's estimate (visible with `--nocapture`) and fails on any problem.
    #[test]
    fn every_rule_reads_only_bounded_fields_and_fits_the_budget() {
        let mut estimates = Vec::new();
        for crd in all() {
            estimates.extend(estimate_crd(&crd));
        }
        assert!(
            estimates.len() >= 16,
            "expected every CRD's rules, found {}",
            estimates.len()
        );
        for rule in &estimates {
            println!(
                "{:>12} = {:>9} x {:>3}  {}: {}",
                rule.total(),
                rule.estimate.as_ref().map_or(u64::MAX, |e| e.cost),
                rule.cardinality,
                rule.location(),
                rule.rule
            );
        }
        let problems = problems(&estimates);
        assert!(
            problems.is_empty(),
            "CEL rules the API server would refuse (bound what they read, see \
             crds/src/cel_cost.rs):\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn the_issue_19_refusal_is_reproduced() {
        // zones before the fix: maxItems 8, a pattern but no maxLength. The API server said
        // "estimated rule cost exceeds budget by factor of 2.0x".
        let spec = strings(Some(8), None);
        let estimate = cost(&spec, UNIQUE);
        assert_eq!(estimate.cost, 20_132_987);
        assert_eq!(
            format!("{:.1}", estimate.cost as f64 / RULE_COST_LIMIT as f64),
            "2.0"
        );
        assert_eq!(
            estimate.unbounded_reads,
            ["spec.l[] (string without maxLength)"]
        );
    }

    #[test]
    fn unbounded_lists_fail_and_bounded_ones_pass() {
        let unbounded = cost(&strings(None, Some(63)), UNIQUE);
        assert_eq!(
            unbounded.unbounded_reads,
            ["spec.l (list without maxItems)"]
        );
        assert!(unbounded.cost > RULE_COST_LIMIT, "{}", unbounded.cost);

        let bounded = cost(&strings(Some(8), Some(63)), UNIQUE);
        assert!(bounded.unbounded_reads.is_empty());
        assert!(bounded.cost < 10_000, "{}", bounded.cost);
    }

    #[test]
    fn nested_comprehensions_multiply() {
        // all: 2 (range) + 1 (result) + n * (3 + inner);
        // exists_one: 2 (range) + 2 (result) + n * (2 + p); p = y == x = ceil(0.1 * 4m) + 2.
        let expected = |n: u64, m: u64| {
            let p = (4 * m).div_ceil(10) + 2;
            let inner = 2 + 2 + n * (2 + p);
            2 + 1 + n * (3 + inner)
        };
        for (n, m) in [(8, 63), (16, 63), (8, 15), (100, 253)] {
            assert_eq!(
                cost(&strings(Some(n), Some(m)), UNIQUE).cost,
                expected(n, m),
                "n={n} m={m}"
            );
        }
        // One loop grows linearly, two nested ones with the square.
        let single = |n| cost(&strings(Some(n), Some(63)), "self.l.all(x, x != 'a')").cost;
        assert_eq!(single(16) - 3, 2 * (single(8) - 3));
        let nested = |n| cost(&strings(Some(n), Some(63)), UNIQUE).cost;
        assert!(nested(16) > 3 * nested(8));
    }

    #[test]
    fn enclosing_lists_multiply_a_rule_and_unbounded_ones_use_the_request_size() {
        let item = json!({
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "string", "maxLength": 10}},
            "x-kubernetes-validations": [{"rule": "self.n != 'x'"}],
        });
        let schema = |max_items: Option<u64>| {
            let mut list = json!({"type": "array", "items": item});
            if let Some(n) = max_items {
                list["maxItems"] = json!(n);
            }
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "outer": {"type": "array", "maxItems": 4, "items": {
                    "type": "object", "properties": {"inner": list}}}}}}})
        };
        let bounded = estimate_schema("x", "v1", &schema(Some(16)));
        assert_eq!(bounded.len(), 1);
        assert_eq!(bounded[0].path, "spec.outer[].inner[]");
        assert_eq!(bounded[0].cardinality, 64);
        // self (1) + .n (1) + 'x' (0) + ceil(0.1 * min(40, 1)) = 3.
        assert_eq!(bounded[0].total(), 3 * 64);

        let unbounded = estimate_schema("x", "v1", &schema(None));
        // {"n":""} is 2 + 1 + 2 + 4 = 9 bytes at least.
        assert_eq!(unbounded[0].cardinality, MAX_REQUEST_SIZE_BYTES / 10);
    }

    #[test]
    fn comparing_objects_reads_and_bounds_every_field_below() {
        let schema = json!({"type": "object", "properties": {"ref": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 63},
                "auth": {"type": "object", "properties": {
                    "user": {"type": "string"},
                    "kind": {"type": "string", "enum": ["scram-sha-512"]},
                }},
            },
        }}});
        let estimate = cost(&schema, "self.ref == oldSelf.ref");
        assert_eq!(
            estimate.unbounded_reads,
            ["spec.ref.auth.user (string without maxLength)"]
        );
        // Presence tests read nothing.
        let presence = cost(&schema, "has(self.ref.auth) || has(self.ref.name)");
        assert!(presence.unbounded_reads.is_empty());
        assert_eq!(presence.cost, 3 + 3);
    }

    #[test]
    fn problems_name_the_crd_the_rule_and_the_estimate() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"l": {"type": "array", "maxItems": 8, "items": {"type": "string"}}},
            "x-kubernetes-validations": [
                {"rule": "size(self.l) > 0"},
                {"rule": UNIQUE},
                {"rule": "self.l.sortBy(x, x) == self.l"},
            ],
        }}});
        let estimates = estimate_schema("things.example.com", "v1", &schema);
        let problems = problems(&estimates);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with(
            "things.example.com v1 spec x-kubernetes-validations[1]: `self.l.all(x, \
             self.l.exists_one(y, y == x))` reads spec.l[] (string without maxLength)"
        ));
        assert!(
            problems[1].contains("estimated cost 20132987")
                && problems[1].contains("factor of 2.0"),
            "{}",
            problems[1]
        );
        assert!(problems[2].contains("`sortBy`"), "{}", problems[2]);
    }

    #[test]
    fn a_crd_total_over_the_limit_is_reported() {
        // Each costs 1 + 1 + ceil(0.1 * min(40, 1)) = 3; twelve of them under a list of
        // 3,000,000 stay under the per-rule limit (9,000,000) but add up to 108,000,000.
        let rule = json!({"rule": "self.s == 'x'"});
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"s": {"type": "string", "maxLength": 10}},
            "x-kubernetes-validations": vec![rule; 12],
        }}});
        let mut estimates = estimate_schema("t.example.com", "v1", &schema);
        assert!(problems(&estimates).is_empty());
        for e in &mut estimates {
            e.cardinality = 3_000_000;
        }
        assert_eq!(
            problems(&estimates),
            [
                "t.example.com v1: the rules' estimated costs add up to 108000000, over the \
              per-CRD limit 100000000"
            ]
        );
    }

    #[test]
    fn root_rules_see_metadata_name_as_an_unbounded_string() {
        let root = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let estimate =
            estimate_rule(&root, "", "self.metadata.name.startsWith('a')").expect("estimate");
        assert_eq!(
            estimate.unbounded_reads,
            ["metadata.name (string without maxLength)"]
        );
    }
}
