//! Reads the shipped Grafana dashboards and Prometheus alert rules (`dashboards/`): extracts
//! every PromQL expression (panel targets, variable queries, alert rules), substitutes Grafana's
//! template variables with concrete values, and checks the dashboards' structure.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{HarnessError, Result};

/// The datasource reference every panel, target and query variable must use.
pub const DATASOURCE_UID: &str = "${datasource}";

/// A dashboard file and its parsed JSON.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub file: PathBuf,
    pub json: Value,
}

/// One PromQL expression of a panel target, before variable substitution.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// A template variable of a dashboard.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub kind: String,
    /// The query of a `query` variable (for example `label_values(metric, label)`).
    pub query: Option<String>,
}

/// One rule of an alert rules file.
#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

/// A rule group.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

/// Loads every `*.json` dashboard of `dir`, sorted by file name.
pub fn load_dashboards(dir: &Path) -> Result<Vec<Dashboard>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| HarnessError::io(format!("read {}", dir.display()), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| HarnessError::io(format!("read {}", dir.display()), e))?
            .path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| HarnessError::io(format!("read {}", file.display()), e))?;
            let json = serde_json::from_str(&text).map_err(|e| {
                HarnessError::Unexpected(format!("{} is not JSON: {e}", file.display()))
            })?;
            Ok(Dashboard { file, json })
        })
        .collect()
}

/// Loads the groups of a Prometheus rules file.
pub fn load_rule_groups(path: &Path) -> Result<Vec<RuleGroup>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
    let file: RuleFile = serde_saphyr::from_str(&text)
        .map_err(|e| HarnessError::Unexpected(format!("{}: {e}", path.display())))?;
    Ok(file.groups)
}

impl Dashboard {
    /// The file name, for messages.
    pub fn name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The dashboard's `uid`.
    pub fn uid(&self) -> Option<&str> {
        self.json.get("uid").and_then(Value::as_str)
    }

    /// Every panel, rows' nested panels included.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: Option<&'a Value>, out: &mut Vec<&'a Value>) {
            for panel in panels.and_then(Value::as_array).into_iter().flatten() {
                out.push(panel);
                walk(panel.get("panels"), out);
            }
        }
        let mut out = Vec::new();
        walk(self.json.get("panels"), &mut out);
        out
    }

    /// The PromQL of every panel target.
    pub fn panel_queries(&self) -> Vec<PanelQuery> {
        let mut out = Vec::new();
        for panel in self.panels() {
            let title = str_field(panel, "title");
            for target in panel
                .get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(PanelQuery {
                    panel: title.clone(),
                    ref_id: str_field(target, "refId"),
                    expr: str_field(target, "expr"),
                });
            }
        }
        out
    }

    /// The template variables.
    pub fn variables(&self) -> Vec<Variable> {
        self.json
            .pointer("/templating/list")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| Variable {
                name: str_field(v, "name"),
                kind: str_field(v, "type"),
                query: match v.get("query") {
                    Some(Value::String(q)) => Some(q.clone()),
                    Some(q) => q.get("query").and_then(Value::as_str).map(str::to_string),
                    None => None,
                },
            })
            .collect()
    }

    /// Structural problems: a missing uid or datasource variable, a panel or target or query
    /// variable not using the datasource variable, a panel without a query, unit or legend.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = self.name();
        if self.uid().is_none_or(str::is_empty) {
            problems.push(format!("{name}: no uid"));
        }
        let variables = self.variables();
        if !variables.iter().any(|v| {
            v.name == "datasource"
                && v.kind == "datasource"
                && v.query.as_deref() == Some("prometheus")
        }) {
            problems.push(format!(
                "{name}: no `datasource` variable of type prometheus"
            ));
        }
        for var in self
            .json
            .pointer("/templating/list")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("type").and_then(Value::as_str) == Some("query"))
        {
            if !uses_datasource_variable(var) {
                problems.push(format!(
                    "{name}: variable {} does not use {DATASOURCE_UID}",
                    str_field(var, "name")
                ));
            }
        }
        let mut ids = HashSet::new();
        for panel in self.panels() {
            let title = str_field(panel, "title");
            if let Some(id) = panel.get("id").and_then(Value::as_i64)
                && !ids.insert(id)
            {
                problems.push(format!("{name}: panel id {id} repeated"));
            }
            if panel.get("type").and_then(Value::as_str) == Some("row") {
                continue;
            }
            if title.is_empty() {
                problems.push(format!("{name}: a panel has no title"));
            }
            if !uses_datasource_variable(panel) {
                problems.push(format!(
                    "{name}/{title}: panel does not use {DATASOURCE_UID}"
                ));
            }
            if panel
                .pointer("/fieldConfig/defaults/unit")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                problems.push(format!("{name}/{title}: no unit"));
            }
            let targets = panel
                .get("targets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{name}/{title}: no targets"));
            }
            let is_timeseries = panel.get("type").and_then(Value::as_str) == Some("timeseries");
            for target in &targets {
                if !uses_datasource_variable(target) {
                    problems.push(format!(
                        "{name}/{title}: target does not use {DATASOURCE_UID}"
                    ));
                }
                if str_field(target, "expr").trim().is_empty() {
                    problems.push(format!("{name}/{title}: target without expr"));
                }
                if is_timeseries && str_field(target, "legendFormat").trim().is_empty() {
                    problems.push(format!("{name}/{title}: time series target without legend"));
                }
            }
        }
        problems
    }
}

fn str_field(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn uses_datasource_variable(value: &Value) -> bool {
    value.pointer("/datasource/uid").and_then(Value::as_str) == Some(DATASOURCE_UID)
        && value.pointer("/datasource/type").and_then(Value::as_str) == Some("prometheus")
}

/// Grafana's built-in interval and range macros, with values that cover a test of a few
/// minutes: add a test's own variables to these for [`substitute`].
pub fn builtin_variables() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__interval_ms", "15000"),
        ("__range", "5m"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
    ])
}

/// Replaces Grafana template variables (`$name`, `${name}`, `${name:format}`, `[[name]]`) with
/// `values[name]`; a variable without a value is an error, so nothing is left unreplaced.
pub fn substitute(expr: &str, values: &HashMap<&str, &str>) -> Result<String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while let Some(pos) = rest.find(['$', '[']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let (name, consumed) = if let Some(inner) = tail.strip_prefix("${") {
            let end = inner
                .find('}')
                .ok_or_else(|| HarnessError::Unexpected(format!("unterminated ${{ in {expr:?}")))?;
            let name = inner[..end].split(':').next().unwrap_or_default();
            (name, end + 3)
        } else if let Some(inner) = tail.strip_prefix("[[") {
            let end = inner
                .find("]]")
                .ok_or_else(|| HarnessError::Unexpected(format!("unterminated [[ in {expr:?}")))?;
            (&inner[..end], end + 4)
        } else if let Some(inner) = tail.strip_prefix('$') {
            let end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
            (&inner[..end], end + 1)
        } else {
            // A plain `[` (range selector): copy it.
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        if name.is_empty() {
            return Err(HarnessError::Unexpected(format!(
                "empty variable reference in {expr:?}"
            )));
        }
        let value = values.get(name).ok_or_else(|| {
            HarnessError::Unexpected(format!("no value for variable ${name} in {expr:?}"))
        })?;
        out.push_str(value);
        rest = &tail[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Turns a Grafana `label_values(selector, label)` (or `label_values(label)`) variable query
/// into PromQL returning one series per value of `label`.
pub fn label_values_promql(query: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => Some(format!(
            "group by ({label}) ({selector})",
            label = label.trim(),
            selector = selector.trim()
        )),
        None => Some(format!("group by ({0}) ({{{0}!=\"\"}})", inner.trim())),
    }
}

/// Metric names an expression reads: identifiers outside strings and label matchers that are
/// not followed by `(` and look like metrics (`kafka_*`, `strait_*`, `process_*`, `up`).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut brace_depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c == '{' {
            brace_depth += 1;
        } else if c == '}' {
            brace_depth = brace_depth.saturating_sub(1);
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let looks_like_metric = ["kafka_", "strait_", "process_"]
                .iter()
                .any(|p| word.starts_with(p))
                || word == "up";
            if brace_depth == 0 && next != Some(&'(') && looks_like_metric {
                names.insert(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{label_values_promql, metric_names, substitute};

    #[test]
    fn substitutes_every_variable_syntax() {
        let values = HashMap::from([("topic", "orders"), ("__rate_interval", "1m"), ("job", "j")]);
        let expr = r#"sum by (topic) (rate(x{job=~"${job}", topic=~"$topic"}[$__rate_interval])) + y{t="[[topic]]", u="${topic:regex}"}[5m]"#;
        assert_eq!(
            substitute(expr, &values).expect("substitute"),
            r#"sum by (topic) (rate(x{job=~"j", topic=~"orders"}[1m])) + y{t="orders", u="orders"}[5m]"#
        );
        assert!(substitute("x{a=\"$missing\"}", &values).is_err());
        assert!(substitute("x{a=\"${topic\"}", &values).is_err());
        assert!(substitute("x $ y", &values).is_err());
    }

    #[test]
    fn label_values_become_group_by() {
        assert_eq!(
            label_values_promql(r#"label_values(kafka_log_log_size{job=~"a"}, topic)"#).as_deref(),
            Some(r#"group by (topic) (kafka_log_log_size{job=~"a"})"#)
        );
        assert_eq!(
            label_values_promql("label_values(job)").as_deref(),
            Some(r#"group by (job) ({job!=""})"#)
        );
        assert_eq!(label_values_promql("query_result(x)"), None);
    }

    #[test]
    fn finds_metric_names() {
        let names = metric_names(
            r#"histogram_quantile(0.99, sum by (le, request) (rate(strait_request_duration_seconds_bucket{job=~"kafka_x"}[1m]))) / on (instance) up and kafka_log_log_size > 0"#,
        );
        let names: Vec<_> = names.into_iter().collect();
        assert_eq!(
            names,
            [
                "kafka_log_log_size",
                "strait_request_duration_seconds_bucket",
                "up"
            ]
        );
    }
}
