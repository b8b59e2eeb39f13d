//! Test hosts in network namespaces, and a real `dockerd` on private paths:
//! shared by the ship tests' VMs (`vms`) and the deployment tests' Docker
//! host (`cluster`).
//!
//! A [`Netns`] is `<prefix>-N` with a veth pair: the host side
//! `10.<net>.N.1/24`, the namespace side `10.<net>.N.2/24`; the free N is
//! found by trying to create the namespace (its name is the claim). Both go
//! on drop.

use super::prereq::require_program;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn must_ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Netns {
    pub name: String,
    /// The namespace side's address, `10.<net>.N.2`.
    pub address: String,
    host_if: String,
}

impl Netns {
    /// Claim a free `<prefix>-N` (N in 1..=250) in `10.<net>.0.0/16`;
    /// `short` names its veth ends (`<short>h<N>`, `<short>n<N>`: at most
    /// 15 bytes).
    pub fn create(prefix: &str, short: &str, net: u8) -> Self {
        let seed = std::process::id() as usize;
        let (x, name) = (0..250)
            .map(|k| (seed + k * 7) % 250 + 1)
            .find_map(|x| {
                let name = format!("{prefix}-{x}");
                ip(&["netns", "add", &name]).then_some((x, name))
            })
            .unwrap_or_else(|| panic!("no free network namespace name {prefix}-1..250"));
        let host_if = format!("{short}h{x}");
        let ns_if = format!("{short}n{x}");
        let ns = Netns {
            name,
            address: format!("10.{net}.{x}.2"),
            host_if,
        };
        let name = ns.name.as_str();
        let _ = ip(&["link", "del", &ns.host_if]);
        must_ip(&["link", "add", &ns.host_if, "type", "veth", "peer", "name", &ns_if]);
        must_ip(&["link", "set", &ns_if, "netns", name]);
        must_ip(&["addr", "add", &format!("10.{net}.{x}.1/24"), "dev", &ns.host_if]);
        must_ip(&["link", "set", &ns.host_if, "up"]);
        let cidr = format!("{}/24", ns.address);
        must_ip(&["-n", name, "addr", "add", &cidr, "dev", &ns_if]);
        must_ip(&["-n", name, "link", "set", &ns_if, "up"]);
        must_ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// `program` run in the namespace. nsenter, not `ip netns exec`: that
    /// remounts /sys, hiding the cgroups dockerd needs.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name)).arg(program);
        c
    }

    /// SIGKILL every process still in the namespace (sessions an
    /// interrupted client left behind).
    pub fn kill_all(&self) {
        if let Ok(o) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// `unix://DIR/docker.sock`: the private socket of a dockerd started by
/// [`start_dockerd`] in DIR.
pub fn docker_socket(dir: &Path) -> String {
    format!("unix://{}", dir.join("docker.sock").display())
}

/// Start `cmd` (dockerd, maybe under [`Netns::command`]) on a private
/// socket, data root and exec root in `dir`, without touching the host's
/// network (`--iptables=false --bridge=none --ip-masq=false`), and wait
/// (60 s at most) until it answers. Its log is `dir/dockerd.log`.
pub fn start_dockerd(mut cmd: Command, dir: &Path) -> Child {
    let docker = require_program("docker", "docker.io", &["/usr/bin"]);
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    let mut child = cmd
        .arg("-H")
        .arg(docker_socket(dir))
        .arg("--data-root")
        .arg(dir.join("docker-root"))
        .arg("--exec-root")
        .arg(dir.join("docker-exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .args(["--iptables=false", "--bridge=none", "--ip-masq=false"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start dockerd");
    let start = Instant::now();
    loop {
        let answered = Command::new(&docker)
            .env("DOCKER_HOST", docker_socket(dir))
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success());
        if answered {
            return child;
        }
        if start.elapsed() > Duration::from_secs(60) || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dockerd in {} did not answer within 60 s:\n{}",
                dir.display(),
                std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Stop a dockerd: SIGTERM (it stops its containerd and unmounts), SIGKILL
/// after `grace`; then lazily unmount anything left under `dir`.
pub fn stop_dockerd(mut child: Child, dir: &Path, grace: Duration) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    unmount_under(dir);
}

/// Lazily unmount everything mounted under `dir` (overlay layers), deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(p).status();
    }
}
