//! A real Prometheus server (Debian's `prometheus` package) as a child process on a free loopback
//! port, scraping given targets, with its HTTP query API: tests check that PromQL parses and
//! returns data against what the broker actually exposes. Killed on drop.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::broker::free_port;
use crate::error::{HarnessError, Result};
use crate::http;
use crate::wait::wait_for;

/// How long Prometheus may take to start answering `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many trailing stderr bytes go into error messages.
const STDERR_TAIL_BYTES: usize = 3000;

/// The Prometheus binary: `$STRAIT_PROMETHEUS_BIN`, else Debian's `/usr/bin/prometheus`.
pub fn prometheus_binary() -> PathBuf {
    std::env::var_os("STRAIT_PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"))
}

/// The `promtool` binary: `$STRAIT_PROMTOOL_BIN`, else Debian's `/usr/bin/promtool`.
pub fn promtool_binary() -> PathBuf {
    std::env::var_os("STRAIT_PROMTOOL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"))
}

/// One scrape job: a job name and the `host:port` it scrapes (`/metrics`).
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    pub job: String,
    pub target: SocketAddr,
}

/// The `data` of a successful instant query.
#[derive(Debug, Clone)]
pub struct QueryData {
    /// `vector`, `matrix`, `scalar` or `string`.
    pub result_type: String,
    /// The series (vector/matrix) or the single `[time, value]` pair (scalar/string).
    pub result: Value,
}

impl QueryData {
    /// Whether the query returned no series (a scalar or string is never empty).
    pub fn is_empty(&self) -> bool {
        match self.result_type.as_str() {
            "vector" | "matrix" => self.result.as_array().is_none_or(Vec::is_empty),
            _ => self.result.is_null(),
        }
    }

    /// Values of a vector result as `(labels, value)`, NaN where Prometheus printed no number.
    pub fn vector(&self) -> Vec<(serde_json::Map<String, Value>, f64)> {
        if self.result_type != "vector" {
            return Vec::new();
        }
        self.result
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .map(|s| {
                        let labels = s
                            .get("metric")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default();
                        let value = s
                            .get("value")
                            .and_then(|v| v.get(1))
                            .and_then(Value::as_str)
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(f64::NAN);
                        (labels, value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A running Prometheus owned by a test.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Option<Child>,
    addr: SocketAddr,
    stderr_path: PathBuf,
    /// Holds the config, the TSDB and stderr; removed on drop.
    _work: TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus on a free loopback port scraping `jobs` every `interval` (rules
    /// evaluated as often), loading `rule_files`, and waits until it reports ready.
    pub fn start(
        jobs: &[ScrapeJob],
        interval: Duration,
        rule_files: &[&Path],
    ) -> Result<PrometheusServer> {
        let binary = prometheus_binary();
        if !binary.is_file() {
            return Err(HarnessError::Unexpected(format!(
                "{} not found (run e2e/setup.sh, or set STRAIT_PROMETHEUS_BIN)",
                binary.display()
            )));
        }
        let work = tempfile::Builder::new()
            .prefix("strait-prometheus-")
            .tempdir()
            .map_err(|e| HarnessError::io("create temp dir", e))?;
        let config_path = work.path().join("prometheus.yml");
        std::fs::write(&config_path, config_yaml(jobs, interval, rule_files))
            .map_err(|e| HarnessError::io("write prometheus.yml", e))?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stderr_path = work.path().join("stderr.log");
        let stderr =
            File::create(&stderr_path).map_err(|e| HarnessError::io("create stderr file", e))?;
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {}", binary.display()), e))?;
        let mut server = PrometheusServer {
            child: Some(child),
            addr,
            stderr_path,
            _work: work,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last bytes of Prometheus's stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        crate::broker::tail(&text, STDERR_TAIL_BYTES)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let addr = self.addr;
        let mut exited = None;
        let ready = wait_for(READY_TIMEOUT, "prometheus /-/ready", || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                exited = Some(status);
                return Some(());
            }
            http::get(addr, "/-/ready", CALL_TIMEOUT)
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| ())
        });
        if let Some(status) = exited {
            self.child = None;
            return Err(HarnessError::Unexpected(format!(
                "prometheus exited ({status}); stderr tail:\n{}",
                self.stderr_tail()
            )));
        }
        ready.map_err(|e| {
            HarnessError::Unexpected(format!("{e}; stderr tail:\n{}", self.stderr_tail()))
        })
    }

    /// GETs an API path and returns its `data` when `status` is `success`; an `error` status
    /// (for example a PromQL parse error) is an `Unexpected` error carrying Prometheus's message.
    pub fn api(&self, target: &str) -> Result<Value> {
        let response = http::get(self.addr, target, CALL_TIMEOUT)?;
        let body: Value = serde_json::from_slice(&response.body).map_err(|e| {
            HarnessError::Protocol(format!(
                "prometheus {target}: HTTP {} with non-JSON body ({e}): {}",
                response.status,
                response.text()
            ))
        })?;
        match body.get("status").and_then(Value::as_str) {
            Some("success") => Ok(body.get("data").cloned().unwrap_or(Value::Null)),
            _ => Err(HarnessError::Unexpected(format!(
                "prometheus {target}: HTTP {}: {} {}",
                response.status,
                body.get("errorType").and_then(Value::as_str).unwrap_or("?"),
                body.get("error").and_then(Value::as_str).unwrap_or("?"),
            ))),
        }
    }

    /// Evaluates `expr` as an instant query at the current time.
    pub fn query(&self, expr: &str) -> Result<QueryData> {
        let target = format!("/api/v1/query?query={}", http::encode_query_value(expr));
        let data = self
            .api(&target)
            .map_err(|e| HarnessError::Unexpected(format!("query {expr:?}: {e}")))?;
        Ok(QueryData {
            result_type: data
                .get("resultType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            result: data.get("result").cloned().unwrap_or(Value::Null),
        })
    }

    /// Waits until every active target of `job` is healthy and has been scraped, returning the
    /// last scrape error seen when the deadline passes.
    pub fn wait_target_up(&self, job: &str, timeout: Duration) -> Result<()> {
        let mut last = String::from("no target yet");
        wait_for(timeout, &format!("prometheus target {job} up"), || {
            let data = match self.api("/api/v1/targets?state=active") {
                Ok(data) => data,
                Err(e) => {
                    last = e.to_string();
                    return None;
                }
            };
            let targets: Vec<&Value> = data
                .get("activeTargets")
                .and_then(Value::as_array)
                .map(|all| {
                    all.iter()
                        .filter(|t| t.pointer("/labels/job").and_then(Value::as_str) == Some(job))
                        .collect()
                })
                .unwrap_or_default();
            let up = !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| t.get("health").and_then(Value::as_str) == Some("up"));
            if !up {
                last = serde_json::to_string(&targets).unwrap_or_default();
            }
            up.then_some(())
        })
        .map_err(|e| HarnessError::Unexpected(format!("{e}; targets: {last}")))
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The generated `prometheus.yml`. JSON is valid YAML, so paths and addresses are quoted by
/// `serde_json` rather than by hand.
fn config_yaml(jobs: &[ScrapeJob], interval: Duration, rule_files: &[&Path]) -> String {
    let interval = format!("{}ms", interval.as_millis().max(1));
    let config = serde_json::json!({
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": rule_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "scrape_configs": jobs.iter().map(|j| serde_json::json!({
            "job_name": j.job,
            "static_configs": [{"targets": [j.target.to_string()]}],
        })).collect::<Vec<_>>(),
    });
    config.to_string()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Duration;

    use serde_json::json;

    use super::{QueryData, ScrapeJob, config_yaml};

    #[test]
    fn config_lists_jobs_and_rules() {
        let jobs = [ScrapeJob {
            job: "strait".into(),
            target: SocketAddr::from(([127, 0, 0, 1], 9404)),
        }];
        let text = config_yaml(
            &jobs,
            Duration::from_secs(1),
            &[Path::new("/x/alerts.yaml")],
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(parsed["global"]["scrape_interval"], "1000ms");
        assert_eq!(parsed["rule_files"][0], "/x/alerts.yaml");
        assert_eq!(parsed["scrape_configs"][0]["job_name"], "strait");
        assert_eq!(
            parsed["scrape_configs"][0]["static_configs"][0]["targets"][0],
            "127.0.0.1:9404"
        );
    }

    #[test]
    fn emptiness_and_vector_values() {
        let empty = QueryData {
            result_type: "vector".into(),
            result: json!([]),
        };
        assert!(empty.is_empty());
        let one = QueryData {
            result_type: "vector".into(),
            result: json!([{"metric": {"topic": "t"}, "value": [1.0, "3"]}]),
        };
        assert!(!one.is_empty());
        assert_eq!(one.vector()[0].1, 3.0);
        assert_eq!(one.vector()[0].0["topic"], "t");
        let scalar = QueryData {
            result_type: "scalar".into(),
            result: json!([1.0, "2"]),
        };
        assert!(!scalar.is_empty());
    }
}
