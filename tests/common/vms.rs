//! Three (or more) "VMs" on one machine for the ship tests: each is an
//! `ip netns` with its own address (10.213.X.2, the host side 10.213.X.1 on
//! a veth pair), running Debian's `sshd` with key authentication only (own
//! config, host key, authorized_keys), and its own image store: Podman with
//! its own storage root, or a real `dockerd` (Debian's docker.io, private
//! socket, `--iptables=false --bridge=none`, own data root). sshd's `SetEnv`
//! points the sessions at that store (CONTAINERS_STORAGE_CONF or
//! DOCKER_HOST) and at their own XDG_CACHE_HOME, as on separate machines.
//!
//! The client side uses its own key and known_hosts file, passed as ssh
//! options; host keys are checked as usual. Everything (daemons,
//! namespaces, veths, storage) is removed on drop, also when a test panics.

use super::prereq::{require_program, require_root};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmEngine {
    Podman,
    Docker,
}

pub struct Vm {
    pub ns: String,
    pub addr: String,
    pub engine: VmEngine,
    pub dir: PathBuf,
    host_if: String,
    sshd: Option<Child>,
    dockerd: Option<Child>,
}

impl Vm {
    /// `root@ADDR`, for --to.
    pub fn target(&self) -> String {
        format!("root@{}", self.addr)
    }

    /// A command of this VM's engine, on its own storage.
    pub fn engine_cmd(&self) -> Command {
        match self.engine {
            VmEngine::Podman => {
                let mut c = Command::new("podman");
                c.env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"));
                c
            }
            VmEngine::Docker => {
                let mut c = Command::new("/usr/bin/docker");
                c.env("DOCKER_HOST", self.docker_host());
                c
            }
        }
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// The id of `reference` in this VM's store, if there.
    pub fn image_id(&self, reference: &str) -> Option<String> {
        let out = self
            .engine_cmd()
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .expect("run the VM's engine");
        out.status.success().then(|| {
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if id.starts_with("sha256:") {
                id
            } else {
                format!("sha256:{id}")
            }
        })
    }

    /// Every tag in this VM's store.
    pub fn tags(&self) -> Vec<String> {
        let out = self
            .engine_cmd()
            .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .expect("run the VM's engine");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Load a docker-archive from a file into this VM's store (test setup).
    pub fn load_file(&self, path: &Path) {
        let f = std::fs::File::open(path).unwrap();
        let out = self.engine_cmd().arg("load").stdin(f).output().unwrap();
        assert!(
            out.status.success(),
            "load into {}: {}",
            self.ns,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Where `ship` stages layers on this VM.
    pub fn stage_dir(&self) -> PathBuf {
        self.dir.join("cache/pgha-image/ship/layers")
    }

    /// Stop sshd: the VM becomes unreachable (connection refused).
    pub fn stop_sshd(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Vms {
    pub vms: Vec<Vm>,
    dir: tempfile::TempDir,
}

impl Vms {
    /// Start one VM per entry of `engines`.
    pub fn start(engines: &[VmEngine]) -> Vms {
        require_root();
        let sshd = require_program("sshd", "openssh-server", &["/usr/sbin"]);
        require_program("ssh", "openssh-client", &[]);
        require_program("ssh-keygen", "openssh-client", &[]);
        require_program("ip", "iproute2", &["/usr/sbin", "/sbin"]);
        if engines.contains(&VmEngine::Docker) {
            require_program("dockerd", "docker.io", &["/usr/sbin"]);
            assert!(
                Path::new("/usr/bin/docker").is_file(),
                "prerequisite missing: /usr/bin/docker (Debian package docker.io)"
            );
        }
        let dir = tempfile::Builder::new().prefix("pgha-h5-vms").tempdir().unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = dir.path().join("client_key");
        keygen(&key);
        let mut vms = Vms { vms: Vec::new(), dir };
        let mut known = String::new();
        for &engine in engines {
            let vm = start_vm(vms.dir.path(), &sshd, engine);
            let host_pub = std::fs::read_to_string(vm.dir.join("host_key.pub")).unwrap();
            let mut parts = host_pub.split_whitespace();
            known.push_str(&format!(
                "{} {} {}\n",
                vm.addr,
                parts.next().unwrap(),
                parts.next().unwrap()
            ));
            vms.vms.push(vm);
        }
        std::fs::write(vms.known_hosts(), known).unwrap();
        for vm in &vms.vms {
            wait_for_port(&vm.addr, vm.sshd.is_some());
        }
        vms
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// `--ssh-option` values: this test's identity and known_hosts only.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            format!("IdentityFile={}", self.client_key().display()),
            "IdentitiesOnly=yes".into(),
        ]
    }

    /// `--ssh-option A --ssh-option B …` as arguments.
    pub fn ssh_args(&self) -> Vec<String> {
        self.ssh_options()
            .into_iter()
            .flat_map(|o| ["--ssh-option".to_string(), o])
            .collect()
    }

    /// Run a command on a VM over ssh; (success, stdout).
    pub fn ssh(&self, i: usize, command: &str) -> (bool, String) {
        let mut c = Command::new("ssh");
        for o in self.ssh_options() {
            c.arg("-o").arg(o);
        }
        let out = c
            .args(["-o", "BatchMode=yes", "-T"])
            .arg(self.vms[i].target())
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen");
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn must_ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_vm(root: &Path, sshd: &Path, engine: VmEngine) -> Vm {
    // A free /24 in 10.213.0.0/16: the namespace name is the claim.
    let seed = std::process::id() as usize;
    let (x, ns) = (0..250)
        .map(|k| (seed + k * 7) % 250 + 1)
        .find_map(|x| {
            let ns = format!("pgha-h5-{x}");
            ip(&["netns", "add", &ns]).then_some((x, ns))
        })
        .expect("no free network namespace name pgha-h5-1..250");
    let host_if = format!("h5h{x}");
    let ns_if = format!("h5n{x}");
    let dir = root.join(&ns);
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    let mut vm = Vm {
        ns: ns.clone(),
        addr: format!("10.213.{x}.2"),
        engine,
        dir: dir.clone(),
        host_if: host_if.clone(),
        sshd: None,
        dockerd: None,
    };
    let _ = ip(&["link", "del", &host_if]);
    must_ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
    must_ip(&["link", "set", &ns_if, "netns", &ns]);
    must_ip(&["addr", "add", &format!("10.213.{x}.1/24"), "dev", &host_if]);
    must_ip(&["link", "set", &host_if, "up"]);
    must_ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{}/24", vm.addr),
        "dev",
        &ns_if,
    ]);
    must_ip(&["-n", &ns, "link", "set", &ns_if, "up"]);
    must_ip(&["-n", &ns, "link", "set", "lo", "up"]);

    let mut env = vec![
        format!("XDG_CACHE_HOME={}", dir.join("cache").display()),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    ];
    match engine {
        VmEngine::Podman => {
            std::fs::write(
                dir.join("storage.conf"),
                format!(
                    "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                    dir.display()
                ),
            )
            .unwrap();
            env.push(format!(
                "CONTAINERS_STORAGE_CONF={}",
                dir.join("storage.conf").display()
            ));
            // No Docker here: `auto` must find Podman.
            env.push(format!("DOCKER_HOST=unix://{}/no-docker.sock", dir.display()));
        }
        VmEngine::Docker => {
            let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
            // nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroups dockerd needs.
            let child = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{ns}"))
                .arg("dockerd")
                .arg("-H")
                .arg(vm.docker_host())
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
            vm.dockerd = Some(child);
            let start = Instant::now();
            while !vm
                .engine_cmd()
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "dockerd in {ns} did not answer within 60 s:\n{}",
                    std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(300));
            }
            env.push(format!("DOCKER_HOST={}", vm.docker_host()));
        }
    }

    let host_key = dir.join("host_key");
    keygen(&host_key);
    let client_pub = std::fs::read_to_string(root.join("client_key.pub")).unwrap();
    std::fs::write(dir.join("authorized_keys"), client_pub).unwrap();
    let config = format!(
        "ListenAddress {addr}:22\nHostKey {key}\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
         PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nLogLevel ERROR\n\
         Subsystem sftp internal-sftp\nSetEnv {env}\n",
        addr = vm.addr,
        key = host_key.display(),
        dir = dir.display(),
        env = env.join(" "),
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start sshd");
    vm.sshd = Some(child);
    vm
}

fn wait_for_port(addr: &str, expect: bool) {
    if !expect {
        return;
    }
    let sa: SocketAddr = format!("{addr}:22").parse().unwrap();
    let start = Instant::now();
    while TcpStream::connect_timeout(&sa, Duration::from_millis(300)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "sshd on {addr} did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop_sshd();
        if let Some(mut d) = self.dockerd.take() {
            // SIGTERM: dockerd stops its own containerd and unmounts.
            unsafe_term(d.id());
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = d.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        // Sessions an interrupted client left behind: every process still in the namespace.
        if let Ok(o) = Command::new("ip").args(["netns", "pids", &self.ns]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        if self.engine == VmEngine::Podman && self.dir.join("graph").exists() {
            let _ = self
                .engine_cmd()
                .args(["rmi", "-a", "-f"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // Anything still mounted under the VM's directory (overlay layers).
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let prefix = self.dir.display().to_string();
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
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

fn unsafe_term(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}
