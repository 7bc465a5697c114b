//! `strait-broker dev --brokers N`: a local cluster in one command. Starts N broker processes
//! (this same binary) on 127.0.0.1 with Kafka's KRaft keys — the first three (or all, if fewer)
//! are combined broker+controller nodes forming the metadata quorum, the rest broker-only — in
//! racks a, b, c, ...; data under one directory, so a restart keeps the topics. Ctrl-C stops them
//! all with SIGTERM (controlled shutdown).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Where the nodes listen: node i (1-based) uses Kafka port `base + 2(i-1)`, controller port one
/// above it, metrics port `base + 1000 + i - 1`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub brokers: u16,
    pub base_port: u16,
    pub data_dir: PathBuf,
    /// Extra `key=value` overrides passed to every node.
    pub overrides: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("--brokers must be between 1 and 30")]
    BrokerCount,
    #[error("the ports for {0} brokers from base port {1} exceed 65535")]
    Ports(u16, u16),
    #[error("cannot start node {node}: {source}")]
    Spawn { node: u16, source: std::io::Error },
    #[error("node {node} exited ({status}); see its log above")]
    NodeExited { node: u16, status: String },
    #[error("cannot find this executable: {0}")]
    Exe(std::io::Error),
}

pub struct NodePlan {
    pub id: u16,
    pub args: Vec<String>,
    pub kafka_port: u16,
    pub metrics_port: u16,
}

/// The command lines of every node (pure, so it can be tested).
pub fn plan(options: &DevOptions) -> Result<Vec<NodePlan>, DevError> {
    let n = options.brokers;
    if !(1..=30).contains(&n) {
        return Err(DevError::BrokerCount);
    }
    let base = options.base_port;
    if u32::from(base) + 1000 + u32::from(n) * 2 > 65535 {
        return Err(DevError::Ports(n, base));
    }
    let voters_count = n.min(3);
    let kafka_port = |i: u16| base + 2 * (i - 1);
    let voters: Vec<String> = (1..=voters_count)
        .map(|i| format!("{i}@127.0.0.1:{}", kafka_port(i) + 1))
        .collect();
    let voters = voters.join(",");
    Ok((1..=n)
        .map(|i| {
            let controller = i <= voters_count;
            let rack = char::from(b'a' + ((i - 1) % 3) as u8);
            let port = kafka_port(i);
            let listeners = if controller {
                format!(
                    "PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{}",
                    port + 1
                )
            } else {
                format!("PLAINTEXT://127.0.0.1:{port}")
            };
            let dir = options.data_dir.join(format!("node-{i}"));
            let metrics_port = base + 1000 + i - 1;
            let mut settings = vec![
                format!(
                    "process.roles={}",
                    if controller {
                        "broker,controller"
                    } else {
                        "broker"
                    }
                ),
                format!("node.id={i}"),
                format!("controller.quorum.voters={voters}"),
                format!("listeners={listeners}"),
                "controller.listener.names=CONTROLLER".to_string(),
                "inter.broker.listener.name=PLAINTEXT".to_string(),
                format!("broker.rack={rack}"),
                // As the operator renders it: consumers with client.rack read in their rack.
                format!(
                    "replica.selector.class={}",
                    strait_config::RACK_AWARE_REPLICA_SELECTOR
                ),
                format!("log.dirs={}", dir.display()),
                format!("metrics.listener=127.0.0.1:{metrics_port}"),
                format!("default.replication.factor={}", n.min(3)),
                format!("offsets.topic.replication.factor={}", n.min(3)),
                format!("min.insync.replicas={}", if n >= 3 { 2 } else { 1 }),
            ];
            settings.extend(options.overrides.iter().cloned());
            let args = settings
                .into_iter()
                .flat_map(|s| ["--override".to_string(), s])
                .collect();
            NodePlan {
                id: i,
                args,
                kafka_port: port,
                metrics_port,
            }
        })
        .collect())
}

/// Starts the nodes and waits for `stop` (Ctrl-C) to return; then SIGTERMs every node and waits
/// for them.
pub fn run(options: &DevOptions, stop: impl FnOnce() + Send + 'static) -> Result<(), DevError> {
    let exe = std::env::current_exe().map_err(DevError::Exe)?;
    let plans = plan(options)?;
    let mut children: Vec<(u16, Child)> = Vec::new();
    for p in &plans {
        match spawn(&exe, &p.args) {
            Ok(child) => children.push((p.id, child)),
            Err(source) => {
                terminate(&mut children);
                return Err(DevError::Spawn { node: p.id, source });
            }
        }
    }
    let bootstrap: Vec<String> = plans
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.kafka_port))
        .collect();
    eprintln!(
        "strait dev cluster: {} brokers (racks a/b/c), bootstrap servers {}; health on 127.0.0.1:{}..{}/ready; data in {}; Ctrl-C stops it",
        plans.len(),
        bootstrap.join(","),
        plans[0].metrics_port,
        plans[plans.len() - 1].metrics_port,
        options.data_dir.display()
    );
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stopped.clone();
    std::thread::spawn(move || {
        stop();
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // A node that exits is reported, and the others keep running (killing one is how people try
    // failover); when none is left the launcher ends with an error.
    let mut exited: Vec<u16> = Vec::new();
    let mut failed = None;
    while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
        for (id, child) in children.iter_mut() {
            if exited.contains(id) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("strait dev cluster: node {id} exited ({status})");
                exited.push(*id);
                failed = Some(DevError::NodeExited {
                    node: *id,
                    status: status.to_string(),
                });
            }
        }
        if exited.len() == children.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&mut children);
    if exited.len() < children.len() {
        failed = None;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn spawn(exe: &Path, args: &[String]) -> std::io::Result<Child> {
    Command::new(exe).args(args).spawn()
}

/// SIGTERM to every child (controlled shutdown), then wait, SIGKILL after a grace period.
fn terminate(children: &mut [(u16, Child)]) {
    for (_, child) in children.iter() {
        if let Ok(pid) = i32::try_from(child.id()) {
            // Only our own children, by PID.
            let _ = nix_kill(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, child) in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("node {id} did not stop in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

fn nix_kill(pid: i32) -> std::io::Result<()> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -TERM {pid} failed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_voters_and_racks_cycle() {
        let plans = plan(&DevOptions {
            brokers: 4,
            base_port: 19092,
            data_dir: PathBuf::from("/tmp/d"),
            overrides: vec![],
        })
        .expect("plan");
        assert_eq!(plans.len(), 4);
        let joined: Vec<String> = plans.iter().map(|p| p.args.join(" ")).collect();
        assert!(joined[0].contains("process.roles=broker,controller"));
        assert!(joined[3].contains("process.roles=broker "));
        assert!(joined[3].contains("broker.rack=a"));
        assert!(joined[1].contains("broker.rack=b"));
        assert!(joined[1].contains(
            "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"
        ));
        assert!(joined[0].contains(
            "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
        ));
        assert_eq!(plans[3].kafka_port, 19098);
        assert!(
            plan(&DevOptions {
                brokers: 0,
                base_port: 1,
                data_dir: PathBuf::new(),
                overrides: vec![]
            })
            .is_err()
        );
    }
}
