//! Container engine and stand-in images for the tests. Nothing is pulled:
//! the Debian base comes from debootstrap (`tests/support/build-debian-base.sh`),
//! the Spilo stand-in is built on it from `tests/support/spilo-standin/`.
//! Images are built once per machine and reused; a lock file keeps
//! concurrent test processes from building the same image twice at once.

use super::prereq::{INSTALL, require_program, require_root};
use super::wait::wait_until;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub const DEBIAN_BASE: &str = "localhost/pgha-test/debian:bookworm";
/// The stand-in's repository; its tag is `15-<digest of its support files>`
/// (see [`spilo_standin`]), so that worktrees sharing one Podman storage, each
/// with its own version of `tests/support/spilo-standin/`, never overwrite
/// each other's stand-in.
pub const SPILO_STANDIN_REPO: &str = "localhost/pgha-test/spilo-standin";
/// Label on the stand-in with the digest of its support files (also in its tag).
const SUPPORT_DIGEST_LABEL: &str = "io.pgha.test-support-digest";
const LOCK: &str = "/tmp/pgha-test-images.flock";
/// The longest a test waits for a lock (a cold pgrx build holds the engine
/// lock for many minutes).
const LOCK_WAIT: Duration = Duration::from_secs(45 * 60);

pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

/// The podman program; the test fails with an install hint when absent.
pub fn podman() -> PathBuf {
    require_root();
    require_program("podman", "podman runc", &[])
}

/// The docker client (used against Podman's Docker-compatible API).
pub fn docker() -> PathBuf {
    require_program(
        "docker",
        "docker.io (only the client is needed)",
        &["/usr/local/bin"],
    )
}

/// Run a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn podman_cmd() -> Command {
    Command::new(podman())
}

pub fn image_exists(reference: &str) -> bool {
    podman_cmd()
        .args(["image", "exists", reference])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn image_id(reference: &str) -> String {
    run(podman_cmd().args(["image", "inspect", "--format", "{{.Id}}", reference]))
        .trim()
        .to_string()
}

/// A cross-process lock: flock(2) on a file, released when it is dropped or
/// when its process dies (a killed test leaves nothing that blocks the next
/// run). The descriptor is close-on-exec, so a child the test starts does not
/// hold it.
pub struct ImageLock(#[allow(dead_code)] std::fs::File);

impl ImageLock {
    /// The lock for building the shared test images.
    pub fn acquire() -> Self {
        Self::acquire_at(LOCK)
    }

    fn acquire_at(lock: &str) -> Self {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock)
            .unwrap_or_else(|e| panic!("cannot open {lock}: {e}"));
        let start = Instant::now();
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                let _ = f.set_len(0);
                let _ = writeln!(&f, "{}", std::process::id());
                return ImageLock(f);
            }
            let e = std::io::Error::last_os_error();
            assert!(
                e.raw_os_error() == Some(libc::EWOULDBLOCK),
                "cannot lock {lock}: {e}"
            );
            let holder = std::fs::read_to_string(lock).unwrap_or_default();
            assert!(
                start.elapsed() < LOCK_WAIT,
                "waited {:?} for {lock}, held by pid {}",
                start.elapsed(),
                holder.trim()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Held by a test for as long as it builds, removes or loads images: Podman
/// 4.3 loses layers ("layer not known") when one build reuses cached layers
/// that a concurrent `podman rmi` or build is pruning, so engine-heavy tests
/// take turns, across threads and test processes.
pub fn engine_lock() -> ImageLock {
    ImageLock::acquire_at(ENGINE_LOCK)
}

const ENGINE_LOCK: &str = "/tmp/pgha-test-engine.flock";

/// `localhost/pgha-test/debian:bookworm`, made by debootstrap --variant=minbase
/// and `podman import` when absent (~30 s).
pub fn debian_base() -> String {
    debian_base_of("bookworm")
}

/// `localhost/pgha-test/debian:<suite>` (bookworm or trixie), made by
/// debootstrap --variant=minbase and `podman import` when absent (~30 s).
pub fn debian_base_of(suite: &str) -> String {
    podman();
    let reference = format!("localhost/pgha-test/debian:{suite}");
    if image_exists(&reference) {
        return reference;
    }
    let _lock = ImageLock::acquire();
    if !image_exists(&reference) {
        require_program("debootstrap", "debootstrap", &["/usr/sbin"]);
        let out = Command::new("sh")
            .arg(support_dir().join("build-debian-base.sh"))
            .arg(&reference)
            .arg(suite)
            .output()
            .expect("run build-debian-base.sh");
        assert!(
            out.status.success(),
            "building {reference} failed (it needs debootstrap, podman and the Debian mirror; {INSTALL}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    reference
}

fn support_digest() -> String {
    use pgha_image::hash::Hasher;
    let dir = support_dir().join("spilo-standin");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/support/spilo-standin")
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut h = Hasher::new();
    for n in names {
        h.update(n.as_encoded_bytes());
        h.update(&std::fs::read(dir.join(&n)).unwrap());
    }
    h.finish().to_hex()[..16].to_string()
}

/// `localhost/pgha-test/spilo-standin:15-<digest12>`: Debian bookworm +
/// PostgreSQL 15, pg_cron, Patroni, etcd and a Spilo-like launch script (see
/// tests/support/spilo-standin/Containerfile). The tag carries the digest of
/// the support files: a change makes a new tag (built when absent, ~1 min),
/// and stand-ins of other versions stay untouched for whoever uses them.
pub fn spilo_standin() -> String {
    spilo_standin_of(15)
}

/// `localhost/pgha-test/spilo-standin:17-<digest12>`: the same stand-in
/// (same support files, same Spilo contract) on Debian trixie with Debian's
/// PostgreSQL 17, pg_cron 17, Patroni 4.0 and etcd 3.5 (~1 min cold).
pub fn spilo_standin_17() -> String {
    spilo_standin_of(17)
}

/// The Debian suite whose packages give a stand-in of this major: 15 and 17
/// are the majors testable here (16 is in neither release).
pub fn standin_suite(major: u32) -> &'static str {
    match major {
        15 => "bookworm",
        17 => "trixie",
        other => panic!(
            "no Spilo stand-in for PostgreSQL {other}: only 15 (bookworm) and 17 (trixie) are packaged by Debian"
        ),
    }
}

/// The Spilo stand-in of PostgreSQL `major` (15 or 17), built under the
/// image lock when absent; its tag is `<major>-<digest of the support files>`.
pub fn spilo_standin_of(major: u32) -> String {
    let base = debian_base_of(standin_suite(major));
    let digest = support_digest();
    let reference = format!("{SPILO_STANDIN_REPO}:{major}-{}", &digest[..12]);
    if image_exists(&reference) {
        return reference;
    }
    let _lock = ImageLock::acquire();
    if !image_exists(&reference) {
        let out = podman_cmd()
            .args(["build", "--layers", "-t", &reference])
            .arg("--build-arg")
            .arg(format!("BASE={base}"))
            .arg("--build-arg")
            .arg(format!("PG={major}"))
            .arg("--label")
            .arg(format!("{SUPPORT_DIGEST_LABEL}={digest}"))
            .arg(support_dir().join("spilo-standin"))
            .output()
            .expect("run podman build");
        assert!(
            out.status.success(),
            "building {reference} failed (apt inside podman build needs the Debian mirror):\n{}\n{}",
            tail(&out.stdout, 30),
            tail(&out.stderr, 30)
        );
    }
    reference
}

/// `localhost/pgha-test/pg-server:<major>-<stand-in digest>`: the Spilo
/// stand-in of `major` plus what the host's PostgreSQL 15 has for the
/// bootstrap tests (scripts/install-test-prereqs.sh: pgtap; pg_cron is in
/// the stand-in), for [`super::pg::PgCluster::start_major`]. Built under the
/// image lock when absent (~20 s).
pub fn pg_server_image(major: u32) -> String {
    let standin = spilo_standin_of(major);
    let suffix = standin.rsplit(':').next().unwrap_or_default().to_string();
    let reference = format!("localhost/pgha-test/pg-server:{suffix}");
    if image_exists(&reference) {
        return reference;
    }
    let _lock = ImageLock::acquire();
    if !image_exists(&reference) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Containerfile"),
            format!(
                "FROM {standin}\n\
                 RUN apt-get update \\\n \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-{major}-pgtap \\\n \
                 && rm -rf /var/lib/apt/lists/*\n\
                 LABEL io.pgha.test-image=pg-server-{major}\n"
            ),
        )
        .unwrap();
        let out = podman_cmd()
            .args(["build", "--layers", "-t", &reference])
            .arg(dir.path())
            .output()
            .expect("run podman build");
        assert!(
            out.status.success(),
            "building {reference} failed (apt inside podman build needs the Debian mirror):\n{}\n{}",
            tail(&out.stdout, 30),
            tail(&out.stderr, 30)
        );
    }
    reference
}

fn tail(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An image removed (with `podman rmi -f`) when dropped.
pub struct TestImage {
    pub reference: String,
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = Command::new(podman())
            .args(["image", "rm", "-f", &self.reference])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A small image of its own (a unique layer on the Debian base), so that
/// removing it really deletes it. `name` must be unique per test.
pub fn unique_image(name: &str) -> TestImage {
    let base = debian_base();
    let reference = format!("localhost/pgha-test/{name}:{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let nonce = format!(
        "{name} {} {:?}",
        std::process::id(),
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap()
    );
    std::fs::write(
        dir.path().join("Containerfile"),
        format!(
            "FROM {base}\nRUN echo '{nonce}' > /nonce && head -c 2000000 /dev/urandom > /random.bin\n\
             LABEL io.pgha.base-image=\"{base}\" io.pgha.extensions='{{\"demo\":\"1.0\"}}' io.pgha.tool-version=test\n"
        ),
    )
    .unwrap();
    let image = TestImage { reference };
    run(podman_cmd()
        .args(["build", "-q", "-t", &image.reference])
        .arg(dir.path()));
    image
}

/// Podman's Docker-compatible API on a socket of its own, for the `docker`
/// CLI: `DOCKER_HOST=<docker_host()>`. Stopped when dropped.
pub struct DockerApi {
    child: Child,
    dir: tempfile::TempDir,
}

impl DockerApi {
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Kill the API service now (e.g. to make an engine operation fail mid-way).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A `docker` command pointed at this API.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(docker());
        c.env("DOCKER_HOST", self.docker_host());
        c
    }
}

pub fn docker_via_podman() -> DockerApi {
    let podman = podman();
    docker();
    let dir = tempfile::Builder::new()
        .prefix("pgha-docker-api")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("podman.sock");
    let child = Command::new(podman)
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start podman system service");
    let api = DockerApi { child, dir };
    let start = Instant::now();
    loop {
        let ok = api
            .docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return api;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "podman system service did not answer on {} within 30 s",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for DockerApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A container removed (`podman rm -f`) when dropped.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `podman run -d` with a unique name; extra args go before the image.
    pub fn run(name: &str, image: &str, extra: &[&str]) -> Self {
        let name = format!("pgha-test-{name}-{}", std::process::id());
        let _ = Command::new(podman()).args(["rm", "-f", &name]).output();
        let c = Container { name };
        run(podman_cmd()
            .args(["run", "-d", "--name", &c.name])
            .args(extra)
            .arg(image));
        c
    }

    /// psql as the superuser over the socket, the script on stdin; (ok,
    /// stdout, with stderr when it failed).
    pub fn psql(&self, args: &[&str], script: &str) -> (bool, String) {
        let mut child = podman_cmd()
            .args(["exec", "-i", &self.name, "runuser", "-u", "postgres", "--"])
            .args(["psql", "-h", "/run/postgresql", "-d", "postgres"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("podman exec psql");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .expect("write the script to psql");
        let o = child.wait_with_output().expect("psql's output");
        let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
        if !o.status.success() {
            s.push_str(&String::from_utf8_lossy(&o.stderr));
        }
        (o.status.success(), s)
    }

    /// `podman exec`; returns (success, stdout+stderr).
    pub fn exec(&self, args: &[&str]) -> (bool, String) {
        let out = podman_cmd()
            .arg("exec")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("podman exec");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), s)
    }

    pub fn logs(&self) -> String {
        let out = podman_cmd()
            .args(["logs", &self.name])
            .output()
            .expect("podman logs");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        s
    }

    /// Poll `check` every second until it holds or `timeout` passes.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Self) -> bool) {
        wait_until(
            what,
            timeout,
            Duration::from_secs(1),
            || check(self).then_some(()),
            || format!("container log tail:\n{}", tail(self.logs().as_bytes(), 40)),
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(podman())
            .args(["rm", "-f", "-t", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The full-set image's extensions: Supabase's default C/SQL set (pg_graphql,
/// a pgrx build, is left out) plus supabase_vault and pgtap; pg_cron is built
/// from its pinned source (bookworm's is 1.4).
pub const FULL_SET: &str = "vector,pgjwt,http,pg_hashids,pgsodium,pg_net,pg_cron,supabase_vault,pgtap";

/// What a stand-in of a major has, for `--base-glibc`/`--base-lib` (the
/// stand-ins are unknown bases to the tool): bookworm's glibc 2.36 and
/// libcurl 7.88 for 15, trixie's glibc 2.41 and libcurl 8.14 for 17 (so
/// pg_net 0.19.5, not the Ubuntu 22.04 fallback, on both).
pub fn standin_facts(major: u32) -> (&'static str, &'static str) {
    match standin_suite(major) {
        "bookworm" => ("2.36", "7.88"),
        _ => ("2.41", "8.14"),
    }
}

/// The `generate`/`build` arguments that describe the stand-in of `major`
/// ([`standin_facts`]), Spilo's preload list reduced to what it has.
pub fn standin_args(major: u32) -> Vec<String> {
    let (glibc, libcurl) = standin_facts(major);
    [
        "--pg",
        &major.to_string(),
        "--base-glibc",
        glibc,
        "--base-lib",
        &format!("libcurl={libcurl}"),
        "--base-preload",
        "pg_stat_statements,pg_cron",
    ]
    .map(str::to_string)
    .to_vec()
}

/// One image of this tool built on a stand-in for the tests: which
/// extensions, for which major.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    /// The repository under `localhost/pgha-test/` (e.g. `full-set`).
    pub repo: &'a str,
    pub major: u32,
    /// `--extensions`.
    pub extensions: &'a str,
    /// `--from-source` (base-provided entries built from their pinned source).
    pub from_source: &'a str,
}

impl ImageSpec<'_> {
    /// The full set ([`FULL_SET`]) on the stand-in of `major`.
    pub fn full_set(major: u32) -> ImageSpec<'static> {
        ImageSpec {
            repo: "full-set",
            major,
            extensions: FULL_SET,
            from_source: "pg_cron",
        }
    }

    /// The `pgha-image generate`/`build` arguments, after the subcommand (the
    /// caller adds `--out`, `--tag`).
    fn args(&self, standin: &str, bootstrap: &Path, cache: &Path) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec![
            "--progress".into(),
            "plain".into(),
            "--base-image".into(),
            standin.into(),
        ];
        a.extend(standin_args(self.major).into_iter().map(Into::into));
        a.push("--extensions".into());
        a.push(self.extensions.into());
        if !self.from_source.is_empty() {
            a.push("--from-source".into());
            a.push(self.from_source.into());
        }
        a.push("--bootstrap-bin".into());
        a.push(bootstrap.into());
        a.push("--cache-dir".into());
        a.push(cache.into());
        a.extend(super::sources::fetch_args());
        a
    }
}

/// `localhost/pgha-test/full-set:<context digest, 12 hex>`: the full set
/// ([`FULL_SET`]) built with `pgha-image build` on the PostgreSQL 15 stand-in
/// (see [`built_image`]). The caller holds the engine lock for as long as it
/// uses the image.
pub fn full_set_image(engine: &ImageLock) -> String {
    built_image(engine, &ImageSpec::full_set(15))
}

/// The same on the stand-in of `major` (15 or 17).
pub fn full_set_image_of(engine: &ImageLock, major: u32) -> String {
    built_image(engine, &ImageSpec::full_set(major))
}

/// `localhost/pgha-test/<repo>:<context digest, 12 hex>`: the spec's
/// extensions built with `pgha-image build` from the real upstream archives
/// (`common::sources`) on the Spilo stand-in of its major, with this tree's
/// pgha-bootstrap (debug build, its debug info stripped). Built once per
/// machine and context: the tag is the build context's digest, so every test
/// (and test process) of the same tree shares one image, and a change to the
/// catalog, templates or bootstrap makes a new one (~90 s cold on 2 cores).
/// The caller holds the engine lock for as long as it uses the image.
pub fn built_image(engine: &ImageLock, spec: &ImageSpec<'_>) -> String {
    try_built_image(engine, spec)
        .unwrap_or_else(|tail| panic!("pgha-image build of {spec:?} failed:\n{tail}"))
}

/// [`built_image`], but a failed `pgha-image build` is returned (the tail of
/// its stderr) rather than a panic.
pub fn try_built_image(_engine: &ImageLock, spec: &ImageSpec<'_>) -> Result<String, String> {
    let standin = spilo_standin_of(spec.major);
    let pgha_image = PathBuf::from(env!("CARGO_BIN_EXE_pgha-image"));
    let work = tempfile::Builder::new()
        .prefix(&format!("pgha-{}", spec.repo))
        .tempdir()
        .unwrap();
    let bootstrap = work.path().join("pgha-bootstrap");
    let strip = require_program("strip", "binutils", &[]);
    run(Command::new(strip)
        .args(["--strip-debug", "-o"])
        .arg(&bootstrap)
        .arg(env!("CARGO_BIN_EXE_pgha-bootstrap")));
    let cache = work.path().join("cache");
    let args = spec.args(&standin, &bootstrap, &cache);

    // The context digest names the image.
    let out = work.path().join("generated");
    let o = Command::new(&pgha_image)
        .arg("generate")
        .args(["--engine", "podman"])
        .args(&args)
        .arg("--out")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run pgha-image generate");
    assert!(
        o.status.success(),
        "pgha-image generate for {spec:?} failed:\n{}",
        tail(&o.stderr, 40)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let digest = manifest["context_digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .expect("context_digest in manifest.json")
        .to_string();
    let reference = format!("localhost/pgha-test/{}:{}", spec.repo, &digest[..12]);
    if image_exists(&reference) {
        return Ok(reference);
    }
    let start = Instant::now();
    let o = Command::new(&pgha_image)
        .arg("build")
        .args(&args)
        .args(["--engine", "podman", "--tag", &reference])
        .arg("--out")
        .arg(work.path().join("build"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run pgha-image build");
    if !o.status.success() {
        return Err(tail(&o.stderr, 60));
    }
    eprintln!("built {reference} in {:?}", start.elapsed());
    let label = run(podman_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"io.pgha.context-digest\"}}",
        &reference,
    ]));
    assert_eq!(label.trim(), format!("sha256:{digest}"), "one context, one image");
    Ok(reference)
}

/// The Rust stand-in's repository; tagged `<rustc version>-<digest12>`.
pub const RUST_STANDIN_REPO: &str = "localhost/pgha-test/rust";

/// A stand-in for the official Rust image, made from the host's rustup
/// toolchain (`stable`) with the official image's layout
/// (tests/support/rust-standin/build.sh), as the Spilo stand-in stands in for
/// Spilo. Returned pinned by digest (`localhost/pgha-test/rust@sha256:…`), as
/// `--rust-image` wants it. Built once per toolchain and script: the tag
/// carries the digest of `rustc -vV` and of the script (~1 min cold).
pub fn rust_standin() -> String {
    podman();
    let rustup = require_program(
        "rustup",
        "rustup (https://rustup.rs), with the stable toolchain",
        &[],
    );
    let rustc = run(Command::new(&rustup).args(["which", "--toolchain", "stable", "rustc"]));
    let vv = run(Command::new(rustc.trim()).arg("-vV"));
    let version = vv
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .expect("rustc -vV names its release")
        .trim()
        .to_string();
    let script = support_dir().join("rust-standin/build.sh");
    let digest = {
        use pgha_image::hash::Hasher;
        let mut h = Hasher::new();
        h.update(vv.as_bytes());
        h.update(&std::fs::read(&script).unwrap());
        h.finish().to_hex()
    };
    let reference = format!("{RUST_STANDIN_REPO}:{version}-{}", &digest[..12]);
    if !image_exists(&reference) {
        let _lock = ImageLock::acquire();
        if !image_exists(&reference) {
            let out = Command::new("sh")
                .arg(&script)
                .arg(&reference)
                .arg("stable")
                .output()
                .expect("run rust-standin/build.sh");
            assert!(
                out.status.success(),
                "building {reference} failed (it needs podman and the host's rustup toolchain):\n{}\n{}",
                tail(&out.stdout, 30),
                tail(&out.stderr, 30)
            );
        }
    }
    let pinned = run(podman_cmd().args(["image", "inspect", "--format", "{{.Digest}}", &reference]));
    let pinned = pinned.trim();
    assert!(
        pinned.starts_with("sha256:"),
        "{reference} has no digest: {pinned:?}"
    );
    format!("{RUST_STANDIN_REPO}@{pinned}")
}
