//! Parser for the Prometheus text exposition format (what `GET /metrics` returns): samples with
//! their labels and values, so tests can check exact counter and gauge values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::http;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// All samples of a scrape, in order.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses exposition text; a malformed sample line is an error naming the line.
    pub fn parse(text: &str) -> Result<Scrape> {
        let samples = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(n, line)| {
                parse_sample(line).map_err(|e| {
                    HarnessError::Protocol(format!("metrics line {}: {e}: {line:?}", n + 1))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Scrape { samples })
    }

    /// Scrapes `GET /metrics` at `addr`: an error unless it answers 200 with valid exposition.
    pub fn fetch(addr: SocketAddr, timeout: Duration) -> Result<Scrape> {
        let response = http::get(addr, "/metrics", timeout)?;
        if response.status != 200 {
            return Err(HarnessError::Protocol(format!(
                "GET http://{addr}/metrics answered {}: {}",
                response.status,
                response.text()
            )));
        }
        Scrape::parse(&response.text())
    }

    /// Samples called `name` whose labels include every `(label, value)` of `matching`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        matching: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && matching.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// Sum of the values of the samples `find` returns, `None` when there are none.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> Option<f64> {
        let mut found = false;
        let total = self.find(name, matching).fold(0.0, |acc, s| {
            found = true;
            acc + s.value
        });
        found.then_some(total)
    }

    /// Whether any sample has this metric name.
    pub fn has_metric(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn parse_sample(line: &str) -> std::result::Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("empty metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("no value")?;
    let value = parse_value(value_text).ok_or_else(|| format!("bad value {value_text:?}"))?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",...}` and returns the labels and what follows the closing brace.
fn parse_labels(mut rest: &str) -> std::result::Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = rest[..eq].trim().to_string();
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        rest = &rest[end + 1..];
        labels.insert(key, value);
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::Scrape;

    #[test]
    fn parses_names_labels_escapes_and_values() {
        let text = "# HELP a_total help\n# TYPE a_total counter\na_total{topic=\"t\",x=\"q\\\"\\\\\\n\"} 42\n\
                    b 1.5e3 1700000000000\nc_bucket{le=\"+Inf\"} +Inf\n\n";
        let scrape = Scrape::parse(text).expect("parse");
        assert_eq!(scrape.samples.len(), 3);
        let a = &scrape.samples[0];
        assert_eq!(a.name, "a_total");
        assert_eq!(a.label("topic"), Some("t"));
        assert_eq!(a.label("x"), Some("q\"\\\n"));
        assert_eq!(a.value, 42.0);
        assert_eq!(scrape.sum("b", &[]), Some(1500.0));
        assert!(scrape.samples[2].value.is_infinite());
        assert_eq!(scrape.sum("a_total", &[("topic", "u")]), None);
        assert!(scrape.has_metric("c_bucket"));
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(Scrape::parse("novalue\n").is_err());
        assert!(Scrape::parse("x{a=\"b} 1\n").is_err());
        assert!(Scrape::parse("x{a=b} 1\n").is_err());
        assert!(Scrape::parse("x one\n").is_err());
    }
}
