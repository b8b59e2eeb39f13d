//! Several "VMs" on one machine, for tests that run a real Patroni cluster:
//! a Podman network the test creates (unique name), one pod per VM with its
//! own address on it (the containers of a pod share one network namespace,
//! as a VM's services share its host network), services started from a
//! rendered `compose.yaml` itself, and the checks such tests poll: Patroni's
//! REST API, the leader, SQL through `psql`.
//!
//! Traffic goes only to addresses of the network the test created.
//! Everything made here is removed when dropped.

use super::images::{podman_cmd, run};
use super::netns::{Netns, docker_socket, start_dockerd, stop_dockerd};
use super::prereq::require_program;
use super::wait::wait_until;
use pgha_image::verify::cluster::MemberState;
use serde_norway::Value as Yaml;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A Podman network of its own, removed when dropped.
pub struct Network {
    pub name: String,
    /// The subnet's first three octets ("10.89.3"): hosts are `prefix.N`.
    prefix: String,
}

impl Network {
    /// `podman network create` with a name unique to this test process;
    /// Podman picks a free /24.
    pub fn create(label: &str) -> Self {
        let name = format!("{label}-{}", std::process::id());
        let _ = podman_cmd().args(["network", "rm", "-f", &name]).output();
        run(podman_cmd().args(["network", "create", &name]));
        let mut net = Network {
            name,
            prefix: String::new(),
        };
        let subnet = run(podman_cmd().args([
            "network",
            "inspect",
            "--format",
            "{{range .Subnets}}{{.Subnet}}{{end}}",
            &net.name,
        ]));
        let subnet = subnet.trim();
        let base = subnet
            .strip_suffix("/24")
            .unwrap_or_else(|| panic!("expected a /24 subnet, got {subnet:?}"));
        net.prefix = base.rsplit_once('.').unwrap().0.to_string();
        net
    }

    /// The address of host `n` (2..254) on this network.
    pub fn host(&self, n: u8) -> String {
        format!("{}.{n}", self.prefix)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = podman_cmd()
            .args(["network", "rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One "VM": a pod with its own address; its containers share its network.
pub struct Pod {
    pub name: String,
    pub address: String,
}

impl Pod {
    /// `podman pod create` on `network` at `address`, hostname `hostname`.
    /// The hostname resolves to 127.0.1.1, as Debian's installer writes a
    /// VM's `/etc/hosts` (Podman would otherwise map it to the pod's address,
    /// and a member advertising its hostname's address would look right).
    pub fn create(network: &Network, label: &str, hostname: &str, address: &str) -> Self {
        // Podman builds its pods' pause image from catatonit.
        require_program("catatonit", "catatonit", &["/usr/libexec/podman", "/usr/bin"]);
        let name = format!("{label}-{hostname}-{}", std::process::id());
        let _ = podman_cmd().args(["pod", "rm", "-f", &name]).output();
        run(podman_cmd().args([
            "pod",
            "create",
            "--name",
            &name,
            "--hostname",
            hostname,
            "--network",
            &network.name,
            "--ip",
            address,
            "--add-host",
            &format!("{hostname}:127.0.1.1"),
        ]));
        Pod {
            name,
            address: address.to_string(),
        }
    }

    /// The name of this pod's container for `service`.
    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.name)
    }

    /// Start a compose service in this pod (see [`ComposeService::podman_run_args`]),
    /// with `--pull=never`: a VM without a registry has only the images put there.
    pub fn run_service(&self, svc: &ComposeService) {
        let name = self.container(&svc.name);
        let _ = podman_cmd().args(["rm", "-f", &name]).output();
        run(podman_cmd()
            .args(["run", "-d", "--pull=never", "--pod", &self.name, "--name", &name])
            .args(svc.podman_run_args()));
    }

    /// `podman exec` in this pod's container for `service`: (success, stdout+stderr).
    pub fn exec(&self, service: &str, args: &[&str]) -> (bool, String) {
        let out = podman_cmd()
            .arg("exec")
            .arg(self.container(service))
            .args(args)
            .output()
            .expect("podman exec");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), s)
    }

    /// The last `n` lines of a service's log.
    pub fn logs(&self, service: &str, n: usize) -> String {
        let out = podman_cmd()
            .args(["logs", "--tail", &n.to_string(), &self.container(service)])
            .output()
            .expect("podman logs");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        s
    }

    /// SIGKILL every container of the pod (a VM losing power).
    pub fn kill(&self) {
        run(podman_cmd().args(["pod", "kill", &self.name]));
    }

    /// Start the pod's containers again, as they were created.
    pub fn start(&self) {
        run(podman_cmd().args(["pod", "start", &self.name]));
    }

    /// Stop and remove one service's container (e.g. to run it again with a new image).
    pub fn remove_service(&self, service: &str) {
        run(podman_cmd().args(["rm", "-f", "-t", "10", &self.container(service)]));
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = podman_cmd()
            .args(["pod", "rm", "-f", "-t", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One service of a compose file, with `.env` interpolation done and
/// relative paths resolved, as `docker compose` would run it.
#[derive(Debug, Clone)]
pub struct ComposeService {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub environment: Vec<(String, String)>,
    /// (host path, container path, options)
    pub volumes: Vec<(PathBuf, String, Option<String>)>,
    pub depends_on: Vec<String>,
}

/// The compose keys the translation understands; any other key fails the
/// test, so that nothing in the file is silently not run.
const KNOWN_KEYS: &[&str] = &[
    "image",
    "command",
    "env_file",
    "environment",
    "volumes",
    "network_mode",
    "restart",
    "depends_on",
];

impl ComposeService {
    /// Arguments for `podman run -d --pod POD --name NAME …`: environment,
    /// bind mounts (host directories created when missing, as Docker does),
    /// the image and the command. `network_mode: host` is the pod's network.
    pub fn podman_run_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (k, v) in &self.environment {
            args.push("--env".to_string());
            args.push(format!("{k}={v}"));
        }
        for (src, dst, opts) in &self.volumes {
            if !src.exists() {
                std::fs::create_dir_all(src).unwrap_or_else(|e| panic!("create {}: {e}", src.display()));
            }
            args.push("--volume".to_string());
            args.push(match opts {
                Some(o) => format!("{}:{dst}:{o}", src.display()),
                None => format!("{}:{dst}", src.display()),
            });
        }
        args.push(self.image.clone());
        args.extend(self.command.iter().cloned());
        args
    }
}

/// `KEY=VALUE` lines of a `.env` file (comments and blank lines skipped).
pub fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Compose's interpolation: `$$` → `$`, `${VAR}`, `${VAR:-default}`,
/// `${VAR:?message}` (panics when unset, as compose refuses to start), `$VAR`.
pub fn interpolate(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}').unwrap_or_else(|| panic!("unclosed ${{ in {s:?}"));
            let expr = &r[..end];
            let value = if let Some((name, msg)) = expr.split_once(":?") {
                vars.get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| panic!("compose would refuse: {name} unset: {msg}"))
            } else if let Some((name, default)) = expr.split_once(":-") {
                vars.get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| default.to_string())
            } else {
                vars.get(expr).cloned().unwrap_or_default()
            };
            out.push_str(&value);
            rest = &r[end + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            out.push_str(vars.get(&after[..end]).map(String::as_str).unwrap_or(""));
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    out
}

/// One VM of a rendered deployment: a pod at its address, and the services
/// of the compose.yaml `pgha-image manifests` rendered for it.
pub struct Vm {
    pub name: String,
    pub pod: Pod,
    pub services: Vec<ComposeService>,
}

impl Vm {
    /// The pod of member `name` at `address` on `network` (labelled
    /// `label`), with the services of `rendered/<name>/compose.yaml`.
    pub fn create(network: &Network, label: &str, name: &str, address: &str, rendered: &Path) -> Self {
        Vm {
            name: name.to_string(),
            pod: Pod::create(network, label, name, address),
            services: compose_services(&rendered.join(name)),
        }
    }

    pub fn service(&self, name: &str) -> &ComposeService {
        self.services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{}: no service {name} in compose.yaml", self.name))
    }
}

/// The services of `dir/compose.yaml`, with `dir/.env` interpolated, in
/// file order.
pub fn compose_services(dir: &Path) -> Vec<ComposeService> {
    let file = dir.join("compose.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let doc: Yaml = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let vars = read_env_file(&dir.join(".env"));
    let str_of = |v: &Yaml| -> String {
        match v {
            Yaml::String(s) => interpolate(s, &vars),
            Yaml::Number(n) => n.to_string(),
            Yaml::Bool(b) => b.to_string(),
            other => panic!("{}: unexpected value {other:?}", file.display()),
        }
    };
    let services = doc["services"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{}: no services", file.display()));
    let mut out = Vec::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap().to_string();
        let map = svc.as_mapping().unwrap();
        for k in map.keys() {
            let k = k.as_str().unwrap();
            assert!(
                KNOWN_KEYS.contains(&k),
                "{}: service {name} has `{k}`, which the test's translation to podman does not model",
                file.display()
            );
        }
        if let Some(mode) = svc.get("network_mode") {
            assert_eq!(
                mode.as_str(),
                Some("host"),
                "{name}: only host networking maps to a pod"
            );
        }
        let command = match svc.get("command") {
            None => Vec::new(),
            Some(Yaml::Sequence(items)) => items.iter().map(str_of).collect(),
            Some(Yaml::String(s)) => interpolate(s, &vars)
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            Some(other) => panic!("{name}: command {other:?}"),
        };
        // env_file first: `environment` wins, as in compose. A missing file
        // fails, as compose refuses to start.
        let mut environment: Vec<(String, String)> = match svc.get("env_file") {
            None => Vec::new(),
            Some(Yaml::Sequence(items)) => items
                .iter()
                .flat_map(|i| {
                    let path = dir.join(str_of(i));
                    assert!(path.is_file(), "{name}: env_file {} is missing", path.display());
                    read_env_file(&path)
                })
                .collect(),
            Some(other) => panic!("{name}: env_file {other:?}"),
        };
        let from_environment: Vec<(String, String)> = match svc.get("environment") {
            None => Vec::new(),
            Some(Yaml::Mapping(m)) => m
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), str_of(v)))
                .collect(),
            Some(Yaml::Sequence(items)) => items
                .iter()
                .map(|i| {
                    let s = str_of(i);
                    let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            Some(other) => panic!("{name}: environment {other:?}"),
        };
        environment.retain(|(k, _)| !from_environment.iter().any(|(e, _)| e == k));
        environment.extend(from_environment);
        let volumes = svc
            .get("volumes")
            .and_then(Yaml::as_sequence)
            .map(|v| {
                v.iter()
                    .map(|item| {
                        let s = str_of(item);
                        let mut parts = s.splitn(3, ':');
                        let src = parts.next().unwrap();
                        let dst = parts
                            .next()
                            .unwrap_or_else(|| panic!("{name}: volume {s:?}"))
                            .to_string();
                        let opts = parts.next().map(str::to_string);
                        let src = if src.starts_with("./") || src.starts_with("../") {
                            dir.join(src)
                        } else {
                            assert!(
                                src.starts_with('/'),
                                "{name}: named volumes are not modelled: {s:?}"
                            );
                            PathBuf::from(src)
                        };
                        (src, dst, opts)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let depends_on = svc
            .get("depends_on")
            .and_then(Yaml::as_sequence)
            .map(|v| v.iter().map(|d| d.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        out.push(ComposeService {
            name,
            image: str_of(&svc["image"]),
            command,
            environment,
            volumes,
            depends_on,
        });
    }
    out
}

/// A plain HTTP/1.0 GET with short timeouts: (status, body), or None when
/// nothing answers.
pub fn http_get(host: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    http_exchange(host, port, &request, Duration::from_secs(5))
}

/// An HTTP/1.0 request with an optional basic-auth login and JSON body:
/// (status, body), or None when nothing answers.
pub fn http_request(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    login: Option<(&str, &str)>,
    body: &str,
) -> Option<(u16, String)> {
    use base64::Engine as _;
    let auth = login
        .map(|(u, p)| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(host, port, &request, Duration::from_secs(30))
}

/// Sends `request` to `host:port` and reads the whole answer (at most 4 MiB):
/// (status, body), or None when nothing answers in time.
fn http_exchange(host: &str, port: u16, request: &str, read_timeout: Duration) -> Option<(u16, String)> {
    let ip: IpAddr = host.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(read_timeout)).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Patroni's `/cluster` document from the member at `host`.
pub fn patroni_cluster(host: &str, port: u16) -> Option<serde_json::Value> {
    let (status, body) = http_get(host, port, "/cluster")?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// The members of `/cluster`, parsed as `verify` parses them.
pub fn members(cluster: &serde_json::Value) -> Vec<MemberState> {
    MemberState::from_cluster(cluster)
}

/// Wait until one member leads and `replicas` others stream (the rule
/// `verify` applies), asking any of `hosts`; returns the leader's name.
pub fn wait_for_leader(hosts: &[&str], restapi: u16, replicas: usize, timeout: Duration) -> String {
    let last = std::cell::RefCell::new(String::new());
    wait_until(
        "a leader with its replicas",
        timeout,
        Duration::from_secs(2),
        || {
            for h in hosts {
                if let Some(c) = patroni_cluster(h, restapi) {
                    let ms = members(&c);
                    *last.borrow_mut() = format!("{ms:?}");
                    let leader = ms.iter().find(|m| m.is_leader());
                    let ready = ms.iter().filter(|m| m.is_streaming_replica()).count();
                    if let Some(leader) = leader
                        && ready >= replicas
                    {
                        return Some(leader.name.clone());
                    }
                }
            }
            None
        },
        || format!("last /cluster members: {}", last.borrow()),
    )
}

/// The `psql` program (PostgreSQL's client).
pub fn psql_program() -> PathBuf {
    require_program("psql", "postgresql-client-15", &["/usr/lib/postgresql/15/bin"])
}

/// Run `sql` with `psql` at host:port as `user` (password given in the
/// environment, never on the command line); Ok(stdout, unaligned, tuples
/// only) or Err(stderr).
pub fn psql(host: &str, port: u16, user: &str, password: &str, sql: &str) -> Result<String, String> {
    psql_ssl(host, port, user, password, "sslmode=disable", sql)
}

/// [`psql`] with the TLS part of the connection string given (e.g.
/// `sslmode=verify-full sslrootcert=/path/ca.crt`).
pub fn psql_ssl(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    ssl: &str,
    sql: &str,
) -> Result<String, String> {
    let out = Command::new(psql_program())
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host={host} port={port} user={user} dbname=postgres {ssl}"
        ))
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "3")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `localhost/pgha-test/cluster-tools:<digest>`: Debian with etcd and
/// HAProxy, standing in for the official etcd and HAProxy images (which
/// cannot be pulled here) in rendered compose files. Built once per machine.
pub fn tools_image() -> String {
    let containerfile = format!(
        "FROM {}\n\
         RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         etcd-server haproxy && rm -rf /var/lib/apt/lists/* && mkdir -p /usr/local/etc/haproxy\n\
         LABEL io.pgha.test-image=cluster-tools\n",
        super::images::debian_base()
    );
    local_image("cluster-tools", &containerfile)
}

/// `localhost/pgha-test/NAME:<digest of the Containerfile, 12 hex>`, built
/// from `containerfile` when absent (under the image-building lock).
fn local_image(name: &str, containerfile: &str) -> String {
    use pgha_image::hash::Hasher;
    let mut h = Hasher::new();
    h.update(containerfile.as_bytes());
    let reference = format!("localhost/pgha-test/{name}:{}", &h.finish().to_hex()[..12]);
    if super::images::image_exists(&reference) {
        return reference;
    }
    let _lock = super::images::ImageLock::acquire();
    if !super::images::image_exists(&reference) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), containerfile).unwrap();
        run(podman_cmd()
            .args(["build", "-q", "-t", &reference])
            .arg(dir.path()));
    }
    reference
}

/// A "VM" with a real Docker daemon: a network namespace the test creates
/// (`pgha-h6-N`, address 10.214.N.2, the host side 10.214.N.1 on a veth
/// pair) running Debian's `dockerd` on a private socket, data root and exec
/// root (`--iptables=false --bridge=none`: containers use the namespace's
/// network, `network_mode: host`). Everything is removed when dropped.
///
/// [`DockerHost::start_on_host`] runs one in the host's own network namespace
/// instead (same flags, plus `--ip-forward=false`: it changes nothing of the
/// host's network), for `build --network host`, whose RUN steps then reach
/// the Debian archive as the host does.
pub struct DockerHost {
    /// The host's network namespace; None: the machine's own.
    netns: Option<Netns>,
    pub address: String,
    pub dir: tempfile::TempDir,
    dockerd: Option<std::process::Child>,
}

impl DockerHost {
    pub fn start() -> Self {
        super::prereq::require_root();
        require_program("dockerd", "docker.io", &["/usr/sbin"]);
        require_program("nsenter", "util-linux", &["/usr/bin"]);
        let ns = Netns::create("pgha-h6", "h6", 214);
        let mut host = DockerHost {
            address: ns.address.clone(),
            dir: tempfile::Builder::new()
                .prefix("pgha-h6-docker")
                .tempdir()
                .unwrap(),
            netns: None,
            dockerd: None,
        };
        host.dockerd = Some(start_dockerd(ns.command("dockerd"), host.dir.path()));
        host.netns = Some(ns);
        host
    }

    /// A dockerd in the host's network namespace (see the type's doc).
    pub fn start_on_host() -> Self {
        super::prereq::require_root();
        let dockerd = require_program("dockerd", "docker.io", &["/usr/sbin"]);
        let mut host = DockerHost {
            netns: None,
            address: "127.0.0.1".into(),
            dir: tempfile::Builder::new()
                .prefix("pgha-h6-docker")
                .tempdir()
                .unwrap(),
            dockerd: None,
        };
        let mut cmd = Command::new(dockerd);
        cmd.arg("--ip-forward=false");
        host.dockerd = Some(start_dockerd(cmd, host.dir.path()));
        host
    }

    pub fn docker_host(&self) -> String {
        docker_socket(self.dir.path())
    }

    /// Debian's docker client (the daemon is 20.10), pointed at this daemon.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(require_program("docker", "docker.io", &["/usr/bin"]));
        c.env("DOCKER_HOST", self.docker_host());
        c
    }

    /// `podman save IMAGE | docker load` into this daemon.
    pub fn load_from_podman(&self, image: &str) {
        let mut save = podman_cmd()
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("podman save");
        let out = self
            .docker()
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load");
        assert!(save.wait().unwrap().success(), "podman save {image} failed");
        assert!(
            out.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for DockerHost {
    fn drop(&mut self) {
        // Containers first, then the daemon (SIGTERM: it stops its containerd and unmounts).
        if let Ok(o) = self.docker().args(["ps", "-aq"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = self
                    .docker()
                    .args(["rm", "-f", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if let Some(d) = self.dockerd.take() {
            stop_dockerd(d, self.dir.path(), Duration::from_secs(10));
        }
        // The namespace (a field) goes after the daemon.
    }
}

/// `localhost/pgha-test/postgres-exporter:<digest>`: Debian's
/// prometheus-postgres-exporter, with the binary also under the name of the
/// official image's (`postgres_exporter`), standing in for that image in
/// rendered compose files. Built once per machine.
pub fn exporter_image() -> String {
    let containerfile = format!(
        "FROM {}\n\
         RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         prometheus-postgres-exporter && rm -rf /var/lib/apt/lists/* \
         && ln -s /usr/bin/prometheus-postgres-exporter /usr/local/bin/postgres_exporter\n\
         LABEL io.pgha.test-image=postgres-exporter\n",
        super::images::debian_base()
    );
    local_image("postgres-exporter", &containerfile)
}
