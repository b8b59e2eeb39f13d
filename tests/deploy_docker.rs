//! The Docker path of a rendered deployment: a real `dockerd` (Debian's
//! docker.io, 20.10) in a network namespace this test creates, as one VM.
//! The image built with Podman is copied into it (`podman save | docker
//! load`), then exported from it with `pgha-image export --engine docker`,
//! removed, and loaded back with `pgha-image load --engine docker`; `pgha-image
//! manifests --engine docker` reads the image's manifest through that
//! daemon; Debian's `docker-compose` (1.29) runs the rendered `compose.yaml`
//! and `.env` as they are, in the README's start order. One member (an odd
//! etcd count of one): the cluster forms and HAProxy routes to the leader.
//!
//!
//! And `pgha-image build --engine docker --network host` against a second
//! real dockerd, in the host's network namespace (`--bridge=none
//! --iptables=false --ip-forward=false`: no bridge, no NAT rules on the shared
//! host, so only `--network host` gives the builder stages' `apt-get` a
//! network): a small selection (pgjwt from the real sources) on the Spilo
//! stand-in loaded into it; the built image, run by that daemon, has
//! pgha-bootstrap and the extension, which works in a PostgreSQL started
//! in it.

mod common;

use common::cluster::{self, DockerHost};
use common::images;
use common::wait::wait_until;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn pgha_image<S: AsRef<std::ffi::OsStr>>(args: &[S], docker_host: Option<&str>) -> Output {
    let mut c = assert_cmd::Command::cargo_bin("pgha-image").unwrap();
    c.args(args).timeout(Duration::from_secs(900));
    if let Some(h) = docker_host {
        c.env("DOCKER_HOST", h);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "pgha-image {:?} failed:\n{}\n{}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn compose(host: &DockerHost, dir: &Path, args: &[&str]) -> String {
    let program = common::prereq::require_program("docker-compose", "docker-compose", &["/usr/bin"]);
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", host.docker_host())
        .output()
        .expect("run docker-compose");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "docker-compose {args:?} in {}:\n{text}",
        dir.display()
    );
    text
}

#[test]
#[ignore = "slow tier: needs root and a Docker daemon"]
fn the_rendered_member_runs_under_dockerd_with_docker_compose() {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("h6-deploy-docker")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    cluster::psql_program();
    let host = DockerHost::start();
    let dh = host.docker_host();
    let t_dockerd = started.elapsed();
    let (v1, tools, t_copy) = {
        let lock = images::engine_lock();
        let v1 = images::full_set_image(&lock);
        let t0 = Instant::now();
        let tools = cluster::tools_image();
        host.load_from_podman(&v1);
        host.load_from_podman(&tools);
        (v1, tools, t0.elapsed())
    };
    // Export and load against the real daemon: the image the member runs is
    // the one `pgha-image load` put back.
    let t0 = Instant::now();
    let export = dir.join("v1.tar.zst");
    pgha_image(
        &[
            "export",
            "--engine",
            "docker",
            "--tag",
            &v1,
            "-o",
            export.to_str().unwrap(),
        ],
        Some(&dh),
    );
    let o = host.docker().args(["rmi", &v1]).output().unwrap();
    assert!(
        o.status.success(),
        "docker rmi: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    pgha_image(
        &["load", "--engine", "docker", export.to_str().unwrap()],
        Some(&dh),
    );
    let t_roundtrip = t0.elapsed();

    // The secrets from `pgha-image secrets`, below (the group asked of the image through dockerd).
    let secrets = dir.join("secrets");
    let spec = dir.join("cluster.toml");
    std::fs::write(
        &spec,
        format!(
            "scope = \"h6docker\"\nimage = \"{}\"\nsecrets_dir = \"{}\"\ndata_dir = \"{}\"\n\
             [images]\netcd = \"{tools}\"\nhaproxy = \"{tools}\"\n\
             [[member]]\nname = \"pg1\"\naddress = \"{}\"\n",
            v1,
            secrets.display(),
            dir.join("data").display(),
            host.address
        ),
    )
    .unwrap();
    pgha_image(
        &[
            "secrets",
            "--engine",
            "docker",
            "--spec",
            spec.to_str().unwrap(),
            "--out",
            secrets.to_str().unwrap(),
        ],
        Some(&dh),
    );
    let out = dir.join("deploy");
    // The image's manifest read through dockerd.
    pgha_image(
        &[
            "manifests",
            "--engine",
            "docker",
            "--spec",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Some(&dh),
    );
    let member = out.join("pg1");
    let password = cluster::read_env_file(&secrets.join("patroni.env"))["PGPASSWORD_SUPERUSER"].clone();
    // Every connection with TLS, checking the member's certificate against the cluster CA.
    let tls = format!(
        "sslmode=verify-full sslrootcert={}",
        secrets.join("ca.crt").display()
    );
    let psql = |host: &str, port: u16, user: &str, password: &str, sql: &str| {
        cluster::psql_ssl(host, port, user, password, &tls, sql)
    };

    // The README's start order.
    compose(&host, &member, &["config", "-q"]);
    compose(&host, &member, &["up", "-d", "etcd"]);
    compose(&host, &member, &["up", "-d"]);
    let addr = host.address.clone();
    let leader = cluster::wait_for_leader(&[&addr], 8008, 0, Duration::from_secs(240));
    assert_eq!(leader, "pg1");
    // It advertises the VM's address (from SPILO_CONFIGURATION), not the
    // container's hostname's (the host's, loopback in its /etc/hosts).
    let c = cluster::patroni_cluster(&addr, 8008).unwrap();
    assert_eq!(c["members"][0]["host"].as_str(), Some(addr.as_str()), "{c}");
    let list = compose(
        &host,
        &member,
        &[
            "exec",
            "-T",
            "postgres",
            "patronictl",
            "-c",
            "/run/postgres.yml",
            "list",
        ],
    );
    assert!(list.contains("pg1") && list.contains("Leader"), "{list}");
    let served = wait_until(
        "HAProxy routes 5000 to the leader",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            psql(
                &addr,
                5000,
                "postgres",
                &password,
                "SELECT host(inet_server_addr())",
            )
            .ok()
        },
        || compose(&host, &member, &["logs", "--tail", "30"]),
    );
    assert_eq!(served, addr);
    assert_eq!(
        psql(
            &addr,
            5000,
            "postgres",
            &password,
            "SELECT count(*) > 0 FROM pgha_bootstrap.migrations"
        )
        .unwrap(),
        "t",
        "the bootstrap ran"
    );
    // The stats page asks for its login (haproxy.env from `pgha-image secrets`).
    let (status, _) = cluster::http_get(&addr, 7000, "/").expect("stats page");
    assert_eq!(status, 401, "the stats page must ask for a login");
    let haproxy_env = cluster::read_env_file(&secrets.join("haproxy.env"));
    let login = (
        haproxy_env["PGHA_STATS_USER"].as_str(),
        haproxy_env["PGHA_STATS_PASSWORD"].as_str(),
    );
    let (status, _) = cluster::http_request(&addr, 7000, "GET", "/", Some(login), "").expect("stats page");
    assert_eq!(status, 200);
    compose(&host, &member, &["down"]);
    eprintln!(
        "deploy_docker test: dockerd up {t_dockerd:?}, podman save | docker load {t_copy:?}, \
         export+load through dockerd {t_roundtrip:?}, total {:?}",
        started.elapsed()
    );
}

/// Inside the built image: pgha-bootstrap runs, and pgjwt (with pgcrypto, as
/// CASCADE installs it) works in a throwaway PostgreSQL; the catalog's smoke
/// test of pgjwt.
const CHECK_BUILT: &str = r#"set -eu
/usr/local/bin/pgha-bootstrap --version
test -f /etc/pgha/build-manifest.json
d=$(mktemp -d); chown postgres "$d"
runuser -u postgres -- initdb -D "$d/data" -A trust >/dev/null
runuser -u postgres -- pg_ctl -D "$d/data" -o "-k $d -c listen_addresses=" -w start >/dev/null
runuser -u postgres -- psql -h "$d" -d postgres -v ON_ERROR_STOP=1 -Atc 'CREATE EXTENSION pgjwt CASCADE' \
  -c "SELECT valid FROM verify(sign('{\"sub\":\"pgha\"}'::json, 'secret'), 'secret')" \
  -c "SELECT payload->>'sub' FROM verify(sign('{\"sub\":\"pgha\"}'::json, 'secret'), 'secret')"
"#;

/// The build's selection: pgjwt (real sources) on the stand-in, PostgreSQL 15.
fn selection(standin: &str, tag: &str, dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "--tag",
        tag,
        "--base-image",
        standin,
        "--pg",
        "15",
        "--extensions",
        "pgjwt",
        "--bootstrap-bin",
        env!("CARGO_BIN_EXE_pgha-bootstrap"),
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.extend(["--cache-dir".into(), dir.join("cache").into_os_string()]);
    args.extend(common::sources::fetch_args());
    args
}

#[test]
#[ignore = "slow tier: needs root and a Docker daemon"]
fn build_with_network_host_against_a_real_dockerd() {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("h6-docker-build")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let host = DockerHost::start_on_host();
    let dh = host.docker_host();
    let t_dockerd = started.elapsed();
    let t0 = Instant::now();
    let standin = {
        let _lock = images::engine_lock();
        let standin = images::spilo_standin();
        host.load_from_podman(&standin);
        standin
    };
    let t_load = t0.elapsed();

    let tag = "localhost/pgha-h6/docker-build:pgjwt";
    let build_args = |network: &[&str], out: &str| {
        let mut args: Vec<std::ffi::OsString> = ["--progress", "plain", "build", "--engine", "docker"]
            .iter()
            .chain(network)
            .map(Into::into)
            .collect();
        args.extend(["--out".into(), dir.join(out).into_os_string()]);
        args
    };
    // Without --network the RUN steps have no network on this daemon: the
    // builder stage's apt-get fails (the flag is what makes the build work).
    let t0 = Instant::now();
    let mut args = build_args(&[], "out-default");
    args.extend(selection(&standin, tag, dir));
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(&args)
        .env("DOCKER_HOST", &dh)
        .timeout(Duration::from_secs(600))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let log = std::fs::read_to_string(dir.join("out-default/build.log")).unwrap();
    assert!(
        (log.contains("Temporary failure resolving") || log.contains("Unable to locate package"))
            && !log.contains("Successfully built"),
        "{log}"
    );
    let t_default = t0.elapsed();

    let t0 = Instant::now();
    let mut args = build_args(&["--network", "host"], "out");
    args.extend(selection(&standin, tag, dir));
    let out = pgha_image(&args, Some(&dh));
    let t_build = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout.split_whitespace().nth(1).unwrap_or_default().to_string();
    assert!(id.starts_with("sha256:"), "{stdout}");
    // Built by this daemon: its image store has it, under that id.
    let o = host
        .docker()
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id, "{o:?}");
    // The engine log shows the legacy builder ran the RUN steps with apt-get.
    let log = std::fs::read_to_string(dir.join("out/build.log")).unwrap();
    assert!(log.contains("postgresql-server-dev-15"), "{log}");

    let t0 = Instant::now();
    let o = host
        .docker()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "root",
            "--entrypoint",
            "sh",
            tag,
        ])
        .args(["-c", CHECK_BUILT])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(text.contains("pgha-bootstrap"), "{text}");
    assert!(text.contains("CREATE EXTENSION\nt\npgha\n"), "{text}");
    let t_run = t0.elapsed();
    let t0 = Instant::now();
    drop(host);
    eprintln!(
        "docker build test: dockerd up {t_dockerd:?}, podman save | docker load of the stand-in {t_load:?}, \
         build without --network (fails) {t_default:?}, \
         pgha-image build --engine docker --network host {t_build:?}, run {t_run:?}, daemon stopped and removed {:?}, total {:?}",
        t0.elapsed(),
        started.elapsed()
    );
}
