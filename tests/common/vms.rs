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

use super::netns::{Netns, docker_socket, start_dockerd, stop_dockerd, unmount_under};
use super::prereq::{require_program, require_root};
use super::wait::wait_until;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    sshd: Option<Child>,
    dockerd: Option<Child>,
    /// Last field: dropped after [`Vm`]'s own drop has stopped what runs in it.
    net: Netns,
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
        docker_socket(&self.dir)
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

fn start_vm(root: &Path, sshd: &Path, engine: VmEngine) -> Vm {
    let net = Netns::create("pgha-h5", "h5", 213);
    let ns = net.name.clone();
    let dir = root.join(&ns);
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    let mut vm = Vm {
        ns: ns.clone(),
        addr: net.address.clone(),
        engine,
        dir: dir.clone(),
        sshd: None,
        dockerd: None,
        net,
    };

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
            vm.dockerd = Some(start_dockerd(vm.net.command("dockerd"), &dir));
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
    let child = vm
        .net
        .command(sshd)
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
    wait_until(
        &format!("sshd listening on {addr}"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        || TcpStream::connect_timeout(&sa, Duration::from_millis(300)).ok(),
        String::new,
    );
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop_sshd();
        if let Some(d) = self.dockerd.take() {
            stop_dockerd(d, &self.dir, Duration::from_secs(5));
        }
        self.net.kill_all();
        if self.engine == VmEngine::Podman && self.dir.join("graph").exists() {
            let _ = self
                .engine_cmd()
                .args(["rmi", "-a", "-f"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // Anything still mounted under the VM's directory (overlay layers).
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
