//! Running a generated network on this machine: `network up` starts every orderer and
//! peer as its own process (loopback ports chosen free when the network is generated),
//! `network status` reports them, `network down` stops them. Each node's pid is in
//! `run/<node>.pid` and its output in `logs/<node>.log` under the network directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use medfabric_config::NodeConfig;
use serde::Serialize;

use crate::generate::generate_topology;
use crate::topology::{PeerOrg, Topology};

/// How long `up` waits for every node to report healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `down` waits for a node to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a node config file says about the node (the fields `status` reports).
#[derive(Debug, Clone)]
struct NodeFile {
    kind: &'static str,
    node_id: String,
    msp_id: String,
    listen_address: String,
    cluster_listen_address: Option<String>,
    operations_address: Option<String>,
    data_dir: PathBuf,
    tls_ca_file: Option<PathBuf>,
}

impl NodeFile {
    /// What `status` reports of a node config read from `file`.
    fn of(config: NodeConfig, file: &Path) -> Self {
        match config {
            NodeConfig::Peer(c) => Self {
                kind: "peer",
                node_id: c.node_id,
                msp_id: c.msp_id,
                listen_address: c.listen_address,
                cluster_listen_address: None,
                operations_address: c.operations_address,
                data_dir: normalize(&c.data_dir),
                tls_ca_file: c.tls.map(|t| normalize(&t.ca_file)),
            },
            NodeConfig::Orderer(c) => Self {
                kind: "orderer",
                node_id: c.node_id,
                msp_id: c.msp_id,
                listen_address: c.listen_address,
                cluster_listen_address: Some(c.cluster_listen_address),
                operations_address: c.operations_address,
                data_dir: normalize(&c.data_dir),
                tls_ca_file: c.tls.map(|t| normalize(&t.ca_file)),
            },
            NodeConfig::Ca(c) => Self {
                kind: "ca",
                node_id: c.name,
                msp_id: c.msp_id,
                listen_address: c.listen_address,
                cluster_listen_address: None,
                operations_address: None,
                // Without a data_dir the CA keeps its registry beside its config.
                data_dir: normalize(c.data_dir.as_deref().unwrap_or(file.parent().unwrap_or(Path::new(".")))),
                // HTTPS without a named TLS CA stays HTTPS (and fails), never plain HTTP.
                tls_ca_file: c.tls.map(|t| t.ca_file.as_deref().map(normalize).unwrap_or_default()),
            },
        }
    }
}

/// One node, as `network status --json` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub org: String,
    pub role: String,
    pub pid: Option<u32>,
    pub running: bool,
    pub address: String,
    pub operations: Option<String>,
    pub cluster: Option<String>,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    pub config_file: PathBuf,
    /// `OK`, `unavailable` (answers 503) or `down` (no answer).
    pub health: String,
    pub tls_ca_file: Option<PathBuf>,
    /// The name in the node's TLS certificate.
    pub tls_host: String,
}

/// A user identity of the network, for clients.
#[derive(Debug, Clone, Serialize)]
pub struct UserStatus {
    pub name: String,
    pub org: String,
    pub msp_dir: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub tls_ca_file: PathBuf,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkStatus {
    pub channel: String,
    pub data_dir: PathBuf,
    pub nodes: Vec<NodeStatus>,
    pub users: Vec<UserStatus>,
}

impl NetworkStatus {
    pub fn peers(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.iter().filter(|n| n.role == "peer")
    }

    pub fn orderers(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.iter().filter(|n| n.role == "orderer")
    }

    pub fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.name == name || n.name.starts_with(&format!("{name}.")))
    }

    /// A user by name (`alice`) or name and org (`alice@HospitalMSP`).
    pub fn user(&self, name: &str) -> Option<&UserStatus> {
        let (name, org) = name.split_once('@').map_or((name, None), |(n, o)| (n, Some(o)));
        self.users.iter().find(|u| u.name == name && org.is_none_or(|o| u.org == o))
    }

    /// The first peer of an organization.
    pub fn peer_of(&self, org: &str) -> Option<&NodeStatus> {
        self.peers().find(|p| p.org == org)
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_owned() } else { std::env::current_dir()?.join(path) })
}

/// A loopback port nothing listens on now.
/// Ports networks are placed on: below Linux's ephemeral range (32768-60999), so that
/// the outgoing connections of other processes never take a port between the choice
/// and the node's bind.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A free loopback port of [`PORT_RANGE`], picked at random (so concurrent networks
/// rarely try the same one) and checked by binding it.
fn free_port(taken: &mut Vec<u16>) -> Result<u16> {
    for _ in 0..1000 {
        let mut bytes = [0u8; 2];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
        let span = PORT_RANGE.end - PORT_RANGE.start;
        let port = PORT_RANGE.start + u16::from_be_bytes(bytes) % span;
        if taken.contains(&port) || std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        taken.push(port);
        return Ok(port);
    }
    bail!("no free port in {}..{}", PORT_RANGE.start, PORT_RANGE.end)
}

/// One organization's nodes on free loopback ports (for an organization joining a local
/// network).
pub(crate) fn org_with_free_ports(mut org: PeerOrg) -> Result<PeerOrg> {
    free_org_ports(&mut org, &mut Vec::new())?;
    Ok(org)
}

fn free_org_ports(org: &mut PeerOrg, taken: &mut Vec<u16>) -> Result<()> {
    org.ca.host = "127.0.0.1".into();
    org.ca.port = free_port(taken)?;
    for p in &mut org.peers {
        p.host = "127.0.0.1".into();
        p.port = free_port(taken)?;
        p.operations_port = free_port(taken)?;
    }
    Ok(())
}

/// The topology with every node's ports replaced by free loopback ports, so that this
/// network does not clash with another one on the same machine.
fn with_free_ports(mut topology: Topology) -> Result<Topology> {
    let mut taken = Vec::new();
    for o in &mut topology.orderer.consenters {
        o.host = "127.0.0.1".into();
        o.port = free_port(&mut taken)?;
        o.cluster_port = free_port(&mut taken)?;
        o.operations_port = free_port(&mut taken)?;
    }
    for org in &mut topology.organizations {
        free_org_ports(org, &mut taken)?;
    }
    Ok(topology)
}

/// Where the node binaries are: `MEDFABRIC_BIN_DIR`, else beside this executable.
pub fn default_bin_dir() -> Result<PathBuf> {
    Ok(match std::env::var_os("MEDFABRIC_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()?.parent().context("executable directory")?.to_owned(),
    })
}

fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found; build the node binaries (cargo build --bins) or set MEDFABRIC_BIN_DIR",
            path.display()
        );
    }
    Ok(path)
}

fn config_files(data: &Path) -> Result<Vec<PathBuf>> {
    let dir = data.join("nodes");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{} has no generated network (nodes/)", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    Ok(entries)
}

fn node_files(data: &Path) -> Result<Vec<(PathBuf, NodeFile)>> {
    let mut nodes = Vec::new();
    for path in config_files(data)? {
        // Files of other kinds are not nodes this tool runs.
        if let Some(config) = medfabric_config::load_any(&path).map_err(anyhow::Error::msg)? {
            let node = NodeFile::of(config, &path);
            nodes.push((path, node));
        }
    }
    Ok(nodes)
}

/// `a/b/../c` → `a/c` (lexically; the paths are ours, without symlinks).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn pid_file(data: &Path, name: &str) -> PathBuf {
    data.join("run").join(format!("{name}.pid"))
}

fn log_file(data: &Path, name: &str) -> PathBuf {
    data.join("logs").join(format!("{name}.log"))
}

/// The pid of a node we started that is still running (its command line names its
/// config file, so a recycled pid is not mistaken for it).
fn running_pid(data: &Path, name: &str, config: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(data, name)).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie (exited, not yet reaped) is not running.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    let config = config.to_string_lossy();
    let ours = String::from_utf8_lossy(&cmdline).split('\0').any(|arg| arg == config);
    (ours && state != Some("Z")).then_some(pid)
}

/// How long a status check waits for an operations endpoint.
const OPERATIONS_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` of an operations endpoint (plain HTTP on loopback); (status, body).
pub fn http_get(address: &str, path: &str) -> Result<(u16, String)> {
    let endpoint = medfabric_sdk::http::Endpoint::plain(address).with_timeout(OPERATIONS_TIMEOUT);
    let answer = medfabric_sdk::http::get(&endpoint, path)?;
    Ok((answer.status, answer.body))
}

/// A CA's endpoint: HTTPS trusting its TLS CA when its config has one, checking that the
/// server's certificate names the CA (`ca_name`, e.g. `ca.<domain>`).
pub fn ca_endpoint(
    address: &str,
    ca_name: &str,
    tls_ca_file: Option<&Path>,
) -> Result<medfabric_sdk::ca::Endpoint> {
    match tls_ca_file {
        Some(file) if file.as_os_str().is_empty() => {
            bail!("the CA {ca_name} serves HTTPS but its config names no tls.ca_file to trust")
        }
        Some(file) => Ok(medfabric_sdk::ca::Endpoint::https(address, file)?.with_server_name(ca_name)),
        None => Ok(medfabric_sdk::ca::Endpoint::plain(address)),
    }
}

fn health(operations: Option<&str>) -> String {
    match operations.map(|a| http_get(a, "/healthz")) {
        Some(Ok((200, _))) => "OK".into(),
        Some(Ok(_)) => "unavailable".into(),
        _ => "down".into(),
    }
}

/// The status of every node and user of the network in `data`.
pub fn status(data: &Path) -> Result<NetworkStatus> {
    let data = absolute(data)?;
    let topology = Topology::load(&data.join("network.yaml"))?;
    let mut nodes = Vec::new();
    for (config, node) in node_files(&data)? {
        let pid = running_pid(&data, &node.node_id, &config);
        let health = match (&pid, node.kind) {
            (None, _) => "down".into(),
            // A CA answers its own REST API.
            (Some(_), "ca") => {
                match ca_endpoint(&node.listen_address, &node.node_id, node.tls_ca_file.as_deref())
                    .and_then(|e| medfabric_sdk::ca::exchange(&e, "GET", "/api/v1/cainfo", None, b""))
                {
                    Ok((200, _)) => "OK".into(),
                    Ok(_) => "unavailable".into(),
                    Err(_) => "down".into(),
                }
            }
            (Some(_), _) => health(node.operations_address.as_deref()),
        };
        nodes.push(NodeStatus {
            name: node.node_id.clone(),
            org: node.msp_id.clone(),
            role: node.kind.to_owned(),
            pid,
            running: pid.is_some(),
            address: node.listen_address.clone(),
            health,
            operations: node.operations_address.clone(),
            cluster: node.cluster_listen_address.clone(),
            data_dir: node.data_dir.clone(),
            log_file: log_file(&data, &node.node_id),
            config_file: config,
            tls_ca_file: node.tls_ca_file,
            tls_host: node.node_id,
        });
    }
    let mut users = Vec::new();
    let orgs = topology
        .organizations
        .iter()
        .map(|o| ("peerOrganizations", o.domain.clone(), o.msp_id.clone()))
        .chain([("ordererOrganizations", topology.orderer.domain.clone(), topology.orderer.msp_id.clone())]);
    for (kind, domain, msp_id) in orgs {
        let dir = data.join("organizations").join(kind).join(&domain).join("users");
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for user_dir in entries {
            let file_name =
                user_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let name = file_name.split('@').next().unwrap_or_default().to_owned();
            let msp = user_dir.join("msp");
            let cert_file = std::fs::read_dir(msp.join("signcerts"))
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.path())
                .unwrap_or_default();
            users.push(UserStatus {
                name,
                org: msp_id.clone(),
                cert_file,
                key_file: msp.join("keystore/priv_sk"),
                msp_dir: msp,
                tls_ca_file: user_dir.join("tls/ca.crt"),
                tls_cert_file: user_dir.join("tls/client.crt"),
                tls_key_file: user_dir.join("tls/client.key"),
            });
        }
    }
    Ok(NetworkStatus { channel: topology.channel, data_dir: data, nodes, users })
}

/// Starts one node's process, detached in its own process group, output to its log.
fn spawn(data: &Path, config: &Path, node: &NodeFile, bin_dir: &Path) -> Result<std::process::Child> {
    let program = binary(
        bin_dir,
        match node.kind {
            "peer" => "medfabric-peer",
            "ca" => "medfabric-ca",
            _ => "medfabric-orderer",
        },
    )?;
    std::fs::create_dir_all(data.join("logs"))?;
    std::fs::create_dir_all(data.join("run"))?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_file(data, &node.node_id))?;
    let mut command = Command::new(program);
    command.arg("--config").arg(config).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().with_context(|| format!("starting {}", node.node_id))?;
    std::fs::write(pid_file(data, &node.node_id), format!("{}\n", child.id()))?;
    Ok(child)
}

/// Starts the one node `name` of a generated network (not already running), with the
/// binaries of `bin_dir`; returns without waiting for it to be healthy.
pub fn start_node(data: &Path, name: &str, bin_dir: &Path) -> Result<()> {
    let data = absolute(data)?;
    let (config, node) = node_files(&data)?
        .into_iter()
        .find(|(_, node)| node.node_id == name)
        .with_context(|| format!("no node {name} in {}", data.display()))?;
    if running_pid(&data, name, &config).is_some() {
        bail!("{name} is already running");
    }
    spawn(&data, &config, &node, bin_dir)?;
    Ok(())
}

/// `network up`: generates the network into `data` if it is not there (free ports),
/// starts every node not already running (orderers first), waits until all are
/// healthy, and returns their status.
pub fn up(topology_path: &Path, data: &Path) -> Result<NetworkStatus> {
    up_with_binaries(topology_path, data, &default_bin_dir()?)
}

/// [`up`] with the node binaries taken from `bin_dir`.
pub fn up_with_binaries(topology_path: &Path, data: &Path, bin_dir: &Path) -> Result<NetworkStatus> {
    let data = absolute(data)?;
    if !data.join("network.yaml").exists() {
        let topology = with_free_ports(Topology::load(topology_path)?)?;
        generate_topology(&topology, &data, false)?;
    }
    let mut nodes = node_files(&data)?;
    // Orderers first: peers pull their blocks from them.
    nodes.sort_by_key(|(_, n)| n.kind != "orderer");
    // The processes started here, watched until healthy. They outlive this command
    // (their own process group); once we exit, init reaps them.
    let mut started: Vec<(String, std::process::Child)> = Vec::new();
    for (config, node) in &nodes {
        if running_pid(&data, &node.node_id, config).is_none() {
            started.push((node.node_id.clone(), spawn(&data, config, node, bin_dir)?));
        }
    }
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    loop {
        for (name, child) in &mut started {
            if let Some(exit) = child.try_wait()? {
                let log = std::fs::read_to_string(log_file(&data, name)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                let name = name.clone();
                let _ = down(&data);
                bail!("{name} exited during start-up ({exit}); its log ends:\n{}", tail.join("\n"));
            }
        }
        let status = status(&data)?;
        if status.nodes.iter().all(|n| n.health == "OK") {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let waiting: Vec<&str> =
                status.nodes.iter().filter(|n| n.health != "OK").map(|n| n.name.as_str()).collect();
            let _ = down(&data);
            bail!("nodes not healthy after {}s: {}", HEALTH_TIMEOUT.as_secs(), waiting.join(", "));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).is_ok()
}

/// Stops one node we started: SIGTERM, then SIGKILL if it has not exited in time.
pub fn stop_node(data: &Path, name: &str, config: &Path, kill: bool) -> Result<bool> {
    let Some(pid) = running_pid(data, name, config) else {
        let _ = std::fs::remove_file(pid_file(data, name));
        return Ok(false);
    };
    use nix::sys::signal::Signal;
    signal(pid, if kill { Signal::SIGKILL } else { Signal::SIGTERM });
    let deadline = Instant::now() + STOP_TIMEOUT;
    while running_pid(data, name, config).is_some() {
        if Instant::now() >= deadline {
            signal(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(pid_file(data, name));
    Ok(true)
}

/// `network down`: stops every node of the network in `data` that we started (peers
/// first). Returns the names of the nodes stopped.
pub fn down(data: &Path) -> Result<Vec<String>> {
    let data = absolute(data)?;
    // A config that no longer reads still names its node (generated files are
    // `nodes/<node id>.yaml`), so its process is stopped all the same.
    let mut nodes: Vec<(PathBuf, String, bool)> = config_files(&data)?
        .into_iter()
        .map(|config| {
            let parsed = medfabric_config::load_any(&config).ok().flatten().map(|c| NodeFile::of(c, &config));
            let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let orderer = parsed.as_ref().is_some_and(|n| n.kind == "orderer");
            (config, parsed.map_or(stem, |n| n.node_id), orderer)
        })
        .collect();
    nodes.sort_by_key(|(_, _, orderer)| *orderer);
    let mut stopped = Vec::new();
    for (config, name, _) in &nodes {
        if stop_node(&data, name, config, false)? {
            stopped.push(name.clone());
        }
    }
    Ok(stopped)
}

/// Human-readable lines for `network up` and `network status`.
pub fn describe(status: &NetworkStatus) -> String {
    let mut out = format!("network {} (channel {})\n", status.data_dir.display(), status.channel);
    for node in &status.nodes {
        out += &format!(
            "  {:8} {:40} {:14} {:22} ops {:22} pid {:>7}  {}\n",
            node.role,
            node.name,
            node.org,
            node.address,
            node.operations.as_deref().unwrap_or("-"),
            node.pid.map_or("-".into(), |p| p.to_string()),
            node.health
        );
    }
    out += "identities (MSP folders):\n";
    for user in &status.users {
        out += &format!("  {:12} {:14} {}\n", user.name, user.org, user.msp_dir.display());
    }
    out
}
