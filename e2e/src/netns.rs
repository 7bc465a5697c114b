//! Network partitions for cluster tests: a private "lab" of Linux network namespaces made by the
//! test itself, one per broker plus one for the test's clients, wired as a full mesh of veth
//! pairs. No namespace has a route out of the lab, so every packet stays inside namespaces this
//! process created; they are deleted on drop, even when the test fails.
//!
//! Each node `N` answers on `10.77.0.N` (a point-to-point address on every link it has) and the
//! clients on `10.77.0.254`. Cutting node `N` off its peers downs its links to the other nodes but
//! keeps its client link, so a client can still reach an isolated leader (which is how a divergent
//! tail is made). Test threads reach the lab with [`NetLab::enter_clients`], which moves only the
//! calling thread (and the threads it then spawns, librdkafka's included) into the client
//! namespace. [`NetLab::cut_between`] cuts two groups of nodes apart (say two clusters, or a
//! cluster and the node running a mirror) and leaves every other link up.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;

use crate::error::{HarnessError, Result};

/// Environment variable that turns a missing namespace capability into a skip instead of a failure.
pub const SKIP_ENV: &str = "STRAIT_SKIP_NETNS";
/// Last octet of the clients' address.
const CLIENT_OCTET: u8 = 254;
/// Prefix of every namespace name this module creates; the owner's pid follows it.
const NAME_PREFIX: &str = "strait-e2e-";

/// Whether network namespaces can be created here (root, `ip` present, kernel allows it):
/// `Err(reason)` otherwise.
pub fn available() -> std::result::Result<(), String> {
    // Unique per call: tests of one binary probe in parallel.
    static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let probe = format!("{NAME_PREFIX}{}-probe{n}", std::process::id());
    let added = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if !added.status.success() {
        return Err(format!(
            "`ip netns add` failed (needs root and CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&added.stderr).trim()
        ));
    }
    let veth = ip(&[
        "-n", &probe, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb",
    ]);
    let _ = ip(&["netns", "del", &probe]);
    veth.map_err(|e| format!("veth pairs unavailable: {e}"))
}

/// Whether a test needing namespaces should run: `Ok(true)` when they work, `Ok(false)` (skip)
/// when they do not and `STRAIT_SKIP_NETNS=1`, else `Err` with the reason, for the test to fail.
pub fn required() -> std::result::Result<bool, String> {
    match available() {
        Ok(()) => Ok(true),
        Err(reason) if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") => {
            eprintln!("skipping: network namespaces unavailable: {reason}");
            Ok(false)
        }
        Err(reason) => Err(format!(
            "network namespaces are needed: {reason} (set {SKIP_ENV}=1 to skip)"
        )),
    }
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| HarnessError::io("run ip", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Unexpected(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Deletes namespaces left by earlier test processes of this module that are gone (crashed
/// before their drop ran). Only names with our prefix and a dead owner pid are touched.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(owner) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner != std::process::id() && !std::path::Path::new(&format!("/proc/{owner}")).exists()
        {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A lab of namespaces: one per node id and one for clients, full-mesh linked.
#[derive(Debug)]
pub struct NetLab {
    tag: String,
    nodes: Vec<u32>,
    created: Vec<String>,
}

impl NetLab {
    /// Creates the namespaces and links for `nodes` (ids 1..=253).
    pub fn create(nodes: &[u32]) -> Result<NetLab> {
        remove_stale();
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut lab = NetLab {
            tag: format!("{NAME_PREFIX}{}-{n}", std::process::id()),
            nodes: nodes.to_vec(),
            created: Vec::new(),
        };
        if let Some(bad) = nodes
            .iter()
            .find(|id| !(1..u32::from(CLIENT_OCTET)).contains(*id))
        {
            return Err(HarnessError::Unexpected(format!(
                "node id {bad} cannot be a lab address"
            )));
        }
        let client = lab.client_ns();
        lab.add_ns(&client)?;
        for &id in nodes {
            let ns = lab.node_ns(id);
            lab.add_ns(&ns)?;
            lab.link(
                &client,
                &format!("n{id}"),
                CLIENT_OCTET,
                &ns,
                "cl",
                octet(id),
            )?;
        }
        for (i, &a) in nodes.iter().enumerate() {
            for &b in &nodes[i + 1..] {
                let (ns_a, ns_b) = (lab.node_ns(a), lab.node_ns(b));
                lab.link(
                    &ns_a,
                    &format!("p{b}"),
                    octet(a),
                    &ns_b,
                    &format!("p{a}"),
                    octet(b),
                )?;
            }
        }
        Ok(lab)
    }

    fn client_ns(&self) -> String {
        format!("{}-c", self.tag)
    }

    /// Name of node `id`'s namespace.
    pub fn node_ns(&self, id: u32) -> String {
        format!("{}-n{id}", self.tag)
    }

    /// Node `id`'s address inside the lab.
    pub fn addr(id: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, octet(id))
    }

    /// The clients' address inside the lab.
    pub fn client_addr() -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, CLIENT_OCTET)
    }

    fn add_ns(&mut self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// A veth pair `if_a` (in `ns_a`, address `.a` peer `.b`) <-> `if_b` (in `ns_b`).
    fn link(&self, ns_a: &str, if_a: &str, a: u8, ns_b: &str, if_b: &str, b: u8) -> Result<()> {
        ip(&[
            "-n", ns_a, "link", "add", "name", if_a, "type", "veth", "peer", "name", if_b, "netns",
            ns_b,
        ])?;
        let (addr_a, addr_b) = (Ipv4Addr::new(10, 77, 0, a), Ipv4Addr::new(10, 77, 0, b));
        for (ns, iface, local, peer) in [(ns_a, if_a, addr_a, addr_b), (ns_b, if_b, addr_b, addr_a)]
        {
            let peer = format!("{peer}/32");
            let local = local.to_string();
            ip(&["-n", ns, "addr", "add", &local, "peer", &peer, "dev", iface])?;
            ip(&["-n", ns, "link", "set", iface, "up"])?;
        }
        Ok(())
    }

    fn set_peer_links(&self, id: u32, state: &str) -> Result<()> {
        let ns = self.node_ns(id);
        for &other in self.nodes.iter().filter(|&&o| o != id) {
            ip(&["-n", &ns, "link", "set", &format!("p{other}"), state])?;
        }
        Ok(())
    }

    /// Cuts node `id` off every other node (its link to the clients stays up).
    pub fn cut(&self, id: u32) -> Result<()> {
        self.set_peer_links(id, "down")
    }

    /// Restores node `id`'s links to the other nodes.
    pub fn heal(&self, id: u32) -> Result<()> {
        self.set_peer_links(id, "up")
    }

    /// Cuts every link between a node of `left` and a node of `right` (both ends downed), so
    /// the two groups no longer reach each other; links inside each group, to other nodes and
    /// to the clients stay up. Two clusters in one lab are cut apart this way.
    pub fn cut_between(&self, left: &[u32], right: &[u32]) -> Result<()> {
        self.set_links_between(left, right, "down")
    }

    /// Restores the links [`NetLab::cut_between`] downed. It raises every link between the two
    /// groups, also one that [`NetLab::cut`] had downed.
    pub fn heal_between(&self, left: &[u32], right: &[u32]) -> Result<()> {
        self.set_links_between(left, right, "up")
    }

    fn set_links_between(&self, left: &[u32], right: &[u32], state: &str) -> Result<()> {
        if let Some(bad) = left.iter().chain(right).find(|id| !self.nodes.contains(id)) {
            return Err(HarnessError::Unexpected(format!(
                "node {bad} is not in the lab"
            )));
        }
        if let Some(both) = left.iter().find(|id| right.contains(id)) {
            return Err(HarnessError::Unexpected(format!(
                "node {both} is on both sides of the cut"
            )));
        }
        for &a in left {
            for &b in right {
                for (here, there) in [(a, b), (b, a)] {
                    let (ns, iface) = (self.node_ns(here), format!("p{there}"));
                    ip(&["-n", &ns, "link", "set", &iface, state])?;
                }
            }
        }
        Ok(())
    }

    /// The command prefix that runs a program inside node `id`'s namespace; `ip netns exec`
    /// execs the program, so the child's pid is the program's.
    pub fn exec_prefix(&self, id: u32) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.node_ns(id)]
    }

    /// Moves the calling thread into the client namespace. Threads it spawns afterwards inherit
    /// it; other threads of the process are not affected. Call it on a thread made for the test.
    pub fn enter_clients(&self) -> Result<()> {
        enter(&self.client_ns())
    }

    /// Moves the calling thread into node `id`'s namespace (see [`NetLab::enter_clients`]).
    pub fn enter_node(&self, id: u32) -> Result<()> {
        enter(&self.node_ns(id))
    }

    /// Whether the calling thread is inside the client namespace: lab addresses must only be
    /// dialled from there (elsewhere they would be routed out of the machine).
    pub fn in_clients(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::metadata("/proc/thread-self/ns/net");
        let clients = std::fs::metadata(format!("/run/netns/{}", self.client_ns()));
        match (ours, clients) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Runs `body` on a new thread inside the client namespace and returns its result; a panic
    /// in `body` is resumed on the caller's thread (after which the lab is still dropped).
    pub fn run_in_clients<T: Send>(&self, body: impl FnOnce() -> T + Send) -> Result<T> {
        in_thread(|| self.enter_clients(), body)
    }

    /// Runs `body` on a new thread inside node `id`'s namespace, like [`NetLab::run_in_clients`].
    pub fn run_in_node<T: Send>(&self, id: u32, body: impl FnOnce() -> T + Send) -> Result<T> {
        in_thread(|| self.enter_node(id), body)
    }

    /// Whether a TCP connection to `to` opens within 500 ms from node `from`'s namespace (the
    /// clients' when `None`).
    pub fn reachable(&self, from: Option<u32>, to: std::net::SocketAddr) -> bool {
        let probe = move || {
            std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_millis(500)).is_ok()
        };
        match from {
            Some(id) => self.run_in_node(id, probe),
            None => self.run_in_clients(probe),
        }
        .unwrap_or(false)
    }
}

fn enter(ns: &str) -> Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| HarnessError::io(format!("open {path}"), e))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| HarnessError::io(format!("setns into {ns}"), e.into()))
}

fn in_thread<T: Send>(
    enter: impl FnOnce() -> Result<()> + Send,
    body: impl FnOnce() -> T + Send,
) -> Result<T> {
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            enter()?;
            Ok(body())
        });
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn octet(id: u32) -> u8 {
    u8::try_from(id).unwrap_or(0)
}

impl Drop for NetLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and with them their peers.
        for name in self.created.iter().rev() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
