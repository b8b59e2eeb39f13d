//! The fetch side's promise under bad input and faults, as a user meets it:
//! each case runs the real `pgha-image` binary against real HTTP servers on
//! 127.0.0.1 and asserts three things: the exit code, a message naming the
//! fix (`hint:`), and that nothing was lost or leaked (cache entries intact,
//! no partial file, no secret in any output).

mod common;

use assert_cmd::Command;
use base64::Engine as _;
use common::http::{Entry, Reply, Server, files_under, sha256_hex, two_sources, write_catalog};
use common::tarball::{gz, raw_tar};
use common::wait::wait_until;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Planted credentials; none may appear in any output.
const MIRROR_SECRET: &str = "PLANTEDmirrorS3cret7431";
const CATALOG_SECRET: &str = "PLANTEDcatalogS3cret9182";
const REDIRECT_SECRET: &str = "PLANTEDredirectS3cret5521";

struct Fixture {
    tmp: tempfile::TempDir,
    server: Server,
    /// (name, body) of the good sources `a` and `b`.
    bodies: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    /// Sources `a` and `b`, upstream at /a.tar.gz and /b.tar.gz, and in a
    /// mirror at /m/<name>-1.0.tar.gz.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start();
        let bodies = two_sources(&server, &tmp.path().join("catalog"));
        for (name, body) in &bodies {
            server.route(&format!("/m/{name}-1.0.tar.gz"), Reply::Bytes(body.clone()));
        }
        Fixture { tmp, server, bodies }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn sha(&self, name: &str) -> String {
        sha256_hex(&self.bodies.iter().find(|(n, _)| n == name).unwrap().1)
    }

    /// `http://mirroruser:<secret>@127.0.0.1:PORT<path>`.
    fn secret_url(&self, path: &str) -> String {
        self.server
            .url(path)
            .replace("http://", &format!("http://mirroruser:{MIRROR_SECRET}@"))
    }

    /// `pgha-image --catalog <catalog> --cache-dir <cache> --progress plain ARGS`.
    fn cmd(&self, catalog: &str, cache: &str, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("pgha-image").unwrap();
        c.env_remove("PGHA_CATALOG")
            .env_remove("PGHA_CACHE_DIR")
            .env_remove("PGHA_MIRROR")
            .arg("--catalog")
            .arg(self.path(catalog))
            .arg("--cache-dir")
            .arg(self.path(cache))
            .args(["--progress", "plain"])
            .args(args)
            .timeout(Duration::from_secs(60));
        c
    }
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No secret, nor the Basic credentials made of it, in stdout or stderr.
fn assert_no_secret(out: &Output, secrets: &[&str]) {
    let all = text(out);
    for s in secrets {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("mirroruser:{s}"));
        assert!(!all.contains(s), "secret {s:?} printed:\n{all}");
        assert!(!all.contains(&basic), "Basic credentials printed:\n{all}");
    }
}

/// Failed with `code`, the report names `what` and ends with a hint.
fn assert_fails(out: &Output, code: i32, what: &[&str]) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: "), "{all}");
    assert!(
        err.lines().any(|l| l.trim_start().starts_with("hint: ")),
        "no hint:\n{all}"
    );
    for w in what {
        assert!(all.contains(w), "{w:?} not in:\n{all}");
    }
}

/// Nothing half-done in the cache: no partial file, and every entry's bytes
/// hash to its name.
fn assert_cache_clean(cache: &Path) {
    let left = files_under(&cache.join("tmp"));
    assert!(left.is_empty(), "left behind in the cache: {left:?}");
    for f in files_under(&cache.join("sha256")) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            sha256_hex(&std::fs::read(&f).unwrap()),
            name,
            "corrupt entry {}",
            f.display()
        );
    }
}

fn cache_entries(cache: &Path) -> Vec<String> {
    files_under(&cache.join("sha256"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_mirror_password_is_used_but_never_shown_when_it_works() {
    let f = Fixture::new();
    let mirror = f.secret_url("/m/");
    let out = f
        .cmd("catalog", "cache", &["fetch", "--mirror", &mirror, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_secret(&out, &[MIRROR_SECRET]);
    // The progress lines did show the (redacted) mirror URL.
    assert!(text(&out).contains("mirroruser:***@127.0.0.1"), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in v["sources"].as_array().unwrap() {
        assert_eq!(s["origin"], "mirror");
        assert!(s["from"].as_str().unwrap().contains("mirroruser:***@"), "{s}");
    }
    // The password was really sent (as Basic credentials), not dropped.
    let sent = f.server.authorizations("/m/a-1.0.tar.gz");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("mirroruser:{MIRROR_SECRET}"));
    assert_eq!(sent, vec![format!("Basic {basic}")]);
    assert_eq!(cache_entries(&f.path("cache")).len(), 2);
    assert_cache_clean(&f.path("cache"));

    // `mirror DIR` from that mirror: its output, text and JSON.
    for json in [false, true] {
        let dir = f.path(&format!("out-{json}"));
        let mut args = vec!["mirror", dir.to_str().unwrap(), "--mirror", &mirror];
        if json {
            args.push("--json");
        }
        let out = f.cmd("catalog", "cache2", &args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_no_secret(&out, &[MIRROR_SECRET]);
        assert!(dir.join("a-1.0.tar.gz").is_file());
    }
}

#[test]
fn a_mirror_password_is_never_shown_when_it_fails() {
    let f = Fixture::new();
    let mut tampered = f.bodies[0].1.clone();
    tampered[300] ^= 0xff;
    f.server.route("/bad/a-1.0.tar.gz", Reply::Bytes(tampered));
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = format!("http://mirroruser:{MIRROR_SECRET}@127.0.0.1:{dead}/m");
    let cases: [(&str, String, i32, &[&str]); 3] = [
        ("404", f.secret_url("/gone/"), 1, &["HTTP 404", "mirroruser:***@"]),
        (
            "digest mismatch",
            f.secret_url("/bad/"),
            3,
            &["digest mismatch", "mirroruser:***@"],
        ),
        (
            "unreachable",
            unreachable,
            1,
            &["cannot download", "mirroruser:***@"],
        ),
    ];
    for (what, mirror, code, names) in cases {
        for extra in [&[][..], &["--json"][..]] {
            let mut args = vec!["fetch", "-e", "a", "--retries", "0", "--mirror", &mirror];
            args.extend_from_slice(extra);
            let out = f.cmd("catalog", "cache", &args).output().unwrap();
            assert_fails(&out, code, names);
            assert_no_secret(&out, &[MIRROR_SECRET]);
            assert!(
                out.stdout.is_empty(),
                "{what}: a failed fetch printed a result: {}",
                text(&out)
            );
            assert!(
                cache_entries(&f.path("cache")).is_empty(),
                "{what}: something was cached"
            );
            assert_cache_clean(&f.path("cache"));
        }
    }
    // `mirror DIR` fails the same way, and writes nothing.
    let dir = f.path("out");
    let out = f
        .cmd(
            "catalog",
            "cache",
            &[
                "mirror",
                dir.to_str().unwrap(),
                "--mirror",
                &f.secret_url("/gone/"),
            ],
        )
        .output()
        .unwrap();
    assert_fails(&out, 1, &["HTTP 404"]);
    assert_no_secret(&out, &[MIRROR_SECRET]);
    assert!(files_under(&dir).is_empty());
}

#[test]
fn a_bad_mirror_argument_is_refused_without_echoing_its_password() {
    let f = Fixture::new();
    let bad = [
        format!("https://u:{MIRROR_SECRET}@mirror.example/m?token=x"),
        format!("ftp://u:{MIRROR_SECRET}@mirror.example/m"),
        format!("https://u:{MIRROR_SECRET}@/m"),
        format!("https://u:{MIRROR_SECRET}%zz@mirror.example:99999/m"),
        format!("file://u:{MIRROR_SECRET}@otherhost/m"),
        String::new(),
    ];
    for m in &bad {
        let out = f
            .cmd("catalog", "cache", &["fetch", "--mirror", m])
            .output()
            .unwrap();
        assert_fails(&out, 2, &["invalid --mirror"]);
        assert_no_secret(&out, &[MIRROR_SECRET]);
        assert_eq!(f.server.total_requests(), 0, "{m}: a request was made");
    }
    // The same through the environment, and `--help` with it set.
    let mut c = f.cmd("catalog", "cache", &["fetch", "--help"]);
    c.env("PGHA_MIRROR", f.secret_url("/m/"));
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("PGHA_MIRROR"), "{}", text(&out));
    assert_no_secret(&out, &[MIRROR_SECRET]);
    // A mirror path that is a file, not a directory.
    let file = f.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = f
        .cmd("catalog", "cache", &["fetch", "--mirror", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_fails(&out, 2, &["not a directory"]);
}

#[test]
fn catalog_and_redirect_urls_are_shown_without_credentials() {
    let f = Fixture::new();
    // A catalog whose URL carries a password, pointing at nothing (404).
    let with_secret = f
        .server
        .url("/private/a.tar.gz")
        .replace("http://", &format!("http://cu:{CATALOG_SECRET}@"));
    write_catalog(
        &f.path("catalog-secret"),
        &[Entry {
            name: "a",
            version: "1.0",
            url: with_secret,
            sha256: f.sha("a"),
        }],
    );
    let out = f
        .cmd(
            "catalog-secret",
            "cache",
            &["fetch", "--allow-http", "--retries", "0"],
        )
        .output()
        .unwrap();
    assert_fails(&out, 1, &["HTTP 404", "cu:***@"]);
    assert_no_secret(&out, &[CATALOG_SECRET]);
    for args in [
        &["extensions", "show", "a"][..],
        &["extensions", "show", "a", "--json"],
        &["extensions", "list", "--json"],
    ] {
        let out = f.cmd("catalog-secret", "cache", args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_no_secret(&out, &[CATALOG_SECRET]);
    }
    assert_cache_clean(&f.path("cache"));

    // A redirect loop through a URL with credentials.
    let target = f
        .server
        .url("/loop")
        .replace("http://", &format!("http://ru:{REDIRECT_SECRET}@"));
    f.server.route("/loop", Reply::Redirect(target));
    write_catalog(
        &f.path("catalog-loop"),
        &[Entry {
            name: "a",
            version: "1.0",
            url: f.server.url("/loop"),
            sha256: f.sha("a"),
        }],
    );
    let out = f
        .cmd(
            "catalog-loop",
            "cache",
            &["fetch", "--allow-http", "--max-redirects", "3", "--json"],
        )
        .output()
        .unwrap();
    assert_fails(&out, 1, &["redirect"]);
    assert_no_secret(&out, &[REDIRECT_SECRET]);
    assert_cache_clean(&f.path("cache"));
}

#[test]
fn a_silent_never_ending_or_trickling_server_is_cut_off() {
    let f = Fixture::new();
    f.server.route("/endless", Reply::Endless);
    f.server.route(
        "/trickle",
        Reply::Trickle {
            every: Duration::from_millis(100),
            for_at_most: Duration::from_secs(60),
        },
    );
    // A server that accepts the connection and never answers (the kernel
    // completes the handshake; nobody reads).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/a.tar.gz", silent.local_addr().unwrap());
    for (path, args, names) in [
        (
            "silent",
            &["--stall-timeout", "1"][..],
            &["sent nothing for 1s", "--stall-timeout"][..],
        ),
        (
            "/endless",
            &["--max-size", "2M"][..],
            &["larger than the limit", "--max-size"][..],
        ),
        (
            "/trickle",
            &["--timeout", "2"],
            &["took longer than", "--timeout"],
        ),
    ] {
        let cat = format!("catalog{}", path.replace('/', "-"));
        write_catalog(
            &f.path(&cat),
            &[Entry {
                name: "a",
                version: "1.0",
                url: if path == "silent" {
                    silent_url.clone()
                } else {
                    f.server.url(path)
                },
                sha256: f.sha("a"),
            }],
        );
        let started = Instant::now();
        let mut a = vec!["fetch", "--allow-http", "--retries", "0"];
        a.extend_from_slice(args);
        let out = f.cmd(&cat, "cache", &a).output().unwrap();
        assert_fails(&out, 1, names);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{path}: took {:?}",
            started.elapsed()
        );
        assert!(cache_entries(&f.path("cache")).is_empty());
        assert_cache_clean(&f.path("cache"));
    }
}

/// Sources that verify (their digest is pinned) but would put files outside
/// the source once the build strips the top directory, or that are no
/// archive at all: `generate` refuses them, names the fix, writes nothing.
#[test]
fn generate_refuses_sources_that_escape_once_stripped() {
    use common::tarball::RawEntry::{Dir, File, Symlink};
    let f = Fixture::new();
    let cases: [(&str, Vec<u8>, i32, &str); 3] = [
        (
            "up-link",
            gz(&raw_tar(&[
                Dir("a-1.0/"),
                File("a-1.0/Makefile", b"all:\n"),
                Symlink("a-1.0/up", ".."),
            ])),
            3,
            "once the build strips the top directory",
        ),
        (
            "dot-top",
            gz(&raw_tar(&[Dir("./a-1.0/"), File("./a-1.0/Makefile", b"all:\n")])),
            3,
            "starts with `./`",
        ),
        (
            "not-tar",
            gz(&b"not a tar archive, just text\n".repeat(30)),
            2,
            "not a .tar",
        ),
    ];
    for (what, bytes, code, reason) in cases {
        let mirror = f.path(&format!("mirror-{what}"));
        std::fs::create_dir_all(&mirror).unwrap();
        std::fs::write(mirror.join("a-1.0.tar.gz"), &bytes).unwrap();
        let cat = format!("catalog-{what}");
        write_catalog(
            &f.path(&cat),
            &[Entry {
                name: "a",
                version: "1.0",
                url: "https://example.invalid/a.tar.gz".into(),
                sha256: sha256_hex(&bytes),
            }],
        );
        let out_dir = f.path(&format!("ctx-{what}"));
        let out = f
            .cmd(&cat, "cache", &["generate", "--out", out_dir.to_str().unwrap()])
            .args(["--no-probe", "--base-preload", "pg_stat_statements"])
            .args(["--base-image", "localhost/x:1", "--pg", "15", "--mirror"])
            .arg(&mirror)
            .args(["--bootstrap-bin", env!("CARGO_BIN_EXE_pgha-bootstrap")])
            .output()
            .unwrap();
        assert_fails(&out, code, &[reason, "a 1.0"]);
        assert!(!out_dir.exists(), "{what}: a context was written");
        // The verified source stays in the cache, intact.
        assert_cache_clean(&f.path("cache"));
    }
}

#[test]
fn a_cache_dir_that_is_a_file_or_unwritable_is_refused_untouched() {
    let f = Fixture::new();
    // A file given as the cache, and a path under a file.
    let file = f.path("a-file");
    std::fs::write(&file, b"mine").unwrap();
    for cache in ["a-file", "a-file/sub"] {
        let out = f
            .cmd("catalog", cache, &["fetch", "--allow-http"])
            .output()
            .unwrap();
        assert_fails(&out, 2, &["cannot use", "as the source cache", "--cache-dir"]);
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    }
    assert_eq!(
        f.server.total_requests(),
        0,
        "downloaded before checking the cache"
    );

    // A cache this user cannot write: as root, run as nobody (root ignores
    // modes); as anyone else, the cache's directories made read-only.
    let out = f
        .cmd("catalog", "cache", &["fetch", "--allow-http", "-e", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = cache_entries(&f.path("cache"));
    use std::os::unix::fs::PermissionsExt;
    let root = common::prereq::is_root();
    let mut dirs = vec![f.path("cache")];
    let mut i = 0;
    while i < dirs.len() {
        for e in std::fs::read_dir(&dirs[i]).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            }
        }
        i += 1;
    }
    let set_dir_modes = |mode: u32| {
        for d in &dirs {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    if root {
        std::fs::set_permissions(f.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    } else {
        set_dir_modes(0o555);
    }
    let bin = assert_cmd::cargo::cargo_bin("pgha-image");
    let requests = f.server.total_requests();
    for (args, code, what) in [
        // b must be written: refused before its download.
        (
            &["fetch", "--allow-http"][..],
            2,
            &["as the source cache", "Permission denied"][..],
        ),
        // Reading what is there works on a read-only cache, online or not.
        (&["fetch", "--allow-http", "-e", "a"], 0, &[]),
        (&["fetch", "--offline", "-e", "a"], 0, &[]),
    ] {
        let mut cmd = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&bin);
            c
        } else {
            std::process::Command::new(&bin)
        };
        let out = cmd
            .arg("--catalog")
            .arg(f.path("catalog"))
            .arg("--cache-dir")
            .arg(f.path("cache"))
            .args(["--progress", "plain"])
            .args(args)
            .env_remove("PGHA_MIRROR")
            .output()
            .expect("setpriv (util-linux) runs the binary as nobody");
        if code == 0 {
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        } else {
            assert_fails(&out, code, what);
        }
    }
    assert_eq!(
        f.server.total_requests(),
        requests,
        "a request was made for an unwritable cache"
    );
    if !root {
        set_dir_modes(0o755);
    }
    assert_eq!(cache_entries(&f.path("cache")), before);
    assert_cache_clean(&f.path("cache"));
}

#[test]
fn ctrl_c_mid_download_leaves_nothing_under_the_final_name() {
    let f = Fixture::new();
    // Half the body, then nothing for a long time.
    let body = f.bodies[0].1.clone();
    f.server.route(
        "/slow/a-1.0.tar.gz",
        Reply::Stall {
            body: body.clone(),
            after: body.len() / 2,
            stall: Duration::from_secs(60),
        },
    );
    let cache = f.path("cache");
    let bin = assert_cmd::cargo::cargo_bin("pgha-image");
    let mut child = std::process::Command::new(&bin)
        .arg("--catalog")
        .arg(f.path("catalog"))
        .arg("--cache-dir")
        .arg(&cache)
        .args([
            "--progress",
            "plain",
            "fetch",
            "-e",
            "a",
            "--mirror",
            &f.server.url("/slow"),
        ])
        .env_remove("PGHA_MIRROR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the download is under way: its partial file exists and the
    // server has sent the first half (all it sends before stalling).
    let partial = wait_until(
        "the download under way",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            files_under(&cache.join("tmp"))
                .into_iter()
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("partial-"))
                .filter(|_| f.server.stalled() == 1)
        },
        || format!("{:?}", files_under(&cache.join("tmp"))),
    );
    assert_eq!(f.server.requests("/slow/a-1.0.tar.gz"), 1);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    // Nothing under the final name; only the partial file, which is not in the cache.
    assert!(cache_entries(&cache).is_empty());
    assert!(!cache.join("sha256").join(f.sha("a")).exists());
    // The next fetch removes the dead fetch's partial file (unlocked, and
    // older than the sweep's grace: aged here instead of waited for) and succeeds.
    std::fs::File::options()
        .write(true)
        .open(&partial)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    let out = f
        .cmd("catalog", "cache", &["fetch", "-e", "a", "--allow-http"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !partial.exists(),
        "the interrupted fetch's partial file was not swept"
    );
    assert_eq!(cache_entries(&cache), vec![f.sha("a")]);
    assert_cache_clean(&cache);
}

#[test]
fn hostile_mirrors_and_redirects_are_refused() {
    let f = Fixture::new();
    // A mirror directory whose file is a symlink to a file outside it: read,
    // but only its digest decides (it is not the source: exit 3, nothing
    // cached, the outside file's content never shown).
    let outside = f.path("outside-secret.txt");
    std::fs::write(&outside, format!("password={MIRROR_SECRET}\n")).unwrap();
    let dir = f.path("mirror-dir");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("a-1.0.tar.gz")).unwrap();
    let out = f
        .cmd(
            "catalog",
            "cache",
            &["fetch", "-e", "a", "--mirror", dir.to_str().unwrap()],
        )
        .output()
        .unwrap();
    assert_fails(&out, 3, &["digest mismatch", "a 1.0"]);
    assert_no_secret(&out, &[MIRROR_SECRET]);
    assert!(cache_entries(&f.path("cache")).is_empty());
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        format!("password={MIRROR_SECRET}\n")
    );
    assert_cache_clean(&f.path("cache"));

    // A FIFO in the mirror: refused at once, not waited on.
    let fifo = dir.join("b-1.0.tar.gz");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let started = Instant::now();
    let out = f
        .cmd(
            "catalog",
            "cache",
            &["fetch", "-e", "b", "--mirror", dir.to_str().unwrap()],
        )
        .output()
        .unwrap();
    assert_fails(&out, 2, &["not a regular file", "b 1.0"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_cache_clean(&f.path("cache"));

    // A file: URL works like the directory.
    let good = f.path("good-mirror");
    std::fs::create_dir(&good).unwrap();
    std::fs::write(good.join("a-1.0.tar.gz"), &f.bodies[0].1).unwrap();
    let url = format!("file://{}", good.display());
    let out = f
        .cmd("catalog", "cache", &["fetch", "-e", "a", "--mirror", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(cache_entries(&f.path("cache")), vec![f.sha("a")]);

    // Credentials over plain http to another host: refused before any request,
    // even with --allow-http.
    let clear = format!("http://u:{MIRROR_SECRET}@192.0.2.1/m");
    let out = f
        .cmd(
            "catalog",
            "cache2",
            &["fetch", "--allow-http", "--mirror", &clear],
        )
        .output()
        .unwrap();
    assert_fails(&out, 2, &["in clear", "https://"]);
    assert_no_secret(&out, &[MIRROR_SECRET]);

    // A redirect to a local file is not followed.
    f.server.route(
        "/to-file/a-1.0.tar.gz",
        Reply::Redirect("file:///etc/passwd".into()),
    );
    let out = f
        .cmd(
            "catalog",
            "cache2",
            &["fetch", "-e", "a", "--mirror", &f.server.url("/to-file")],
        )
        .output()
        .unwrap();
    assert_fails(&out, 1, &["not http(s)"]);
    assert!(!text(&out).contains("root:x:0:0"));
    assert_cache_clean(&f.path("cache2"));

    // An empty selection is a mistake, not "nothing to do".
    for e in ["", ",", " , "] {
        let out = f.cmd("catalog", "cache3", &["fetch", "-e", e]).output().unwrap();
        assert_fails(&out, 2, &["--extensions is empty"]);
        assert!(!f.path("cache3").exists());
    }
}

#[test]
fn mirror_never_writes_through_links_nor_into_a_file() {
    let f = Fixture::new();
    // The target is a file, or lies under one: refused before any download.
    let file = f.path("a-file");
    std::fs::write(&file, b"mine").unwrap();
    for target in [file.clone(), file.join("sub")] {
        let out = f
            .cmd(
                "catalog",
                "cache",
                &["mirror", target.to_str().unwrap(), "--allow-http"],
            )
            .output()
            .unwrap();
        assert_fails(&out, 2, &["the mirror directory", "a-file"]);
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    }
    assert_eq!(
        f.server.total_requests(),
        0,
        "downloaded before checking the target"
    );

    // Links under the names the mirror writes point at the user's files:
    // they are replaced, the user's files stay as they were.
    let dir = f.path("out");
    std::fs::create_dir(&dir).unwrap();
    let precious = f.path("precious");
    std::fs::write(&precious, b"user data").unwrap();
    for name in ["a-1.0.tar.gz", "SHA256SUMS"] {
        std::os::unix::fs::symlink(&precious, dir.join(name)).unwrap();
    }
    // And a FIFO where b's file goes (reading it would block forever).
    let c = std::ffi::CString::new(dir.join("b-1.0.tar.gz").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = f
        .cmd(
            "catalog",
            "cache",
            &["mirror", dir.to_str().unwrap(), "--allow-http"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read(&precious).unwrap(), b"user data");
    let a = dir.join("a-1.0.tar.gz");
    assert!(!a.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&a).unwrap(), f.bodies[0].1);
    assert_eq!(std::fs::read(dir.join("b-1.0.tar.gz")).unwrap(), f.bodies[1].1);
    assert!(
        std::fs::read_to_string(dir.join("SHA256SUMS"))
            .unwrap()
            .contains(&f.sha("a"))
    );
    let partials: Vec<_> = files_under(&dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");
}

#[test]
fn bad_flag_values_are_bad_input_before_any_work() {
    let f = Fixture::new();
    for (args, names) in [
        (&["--concurrency", "0"][..], &["--concurrency", "1..=64"][..]),
        (&["--concurrency", "18446744073709551615"], &["--concurrency"]),
        (&["--stall-timeout", "0"], &["--stall-timeout", "positive"]),
        (&["--timeout", "NaN"], &["--timeout", "positive"]),
        (&["--timeout", "1e300"], &["--timeout", "positive"]),
        (&["--max-size", "5X"], &["--max-size", "K, M or G"]),
    ] {
        let mut a = vec!["fetch", "--allow-http"];
        a.extend_from_slice(args);
        let out = f.cmd("catalog", "cache", &a).output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
        for n in names {
            assert!(all.contains(n), "{args:?}: {n:?} not in {all}");
        }
        assert!(!f.path("cache").exists(), "{args:?}: the cache was touched");
    }
    assert_eq!(f.server.total_requests(), 0);
}

#[test]
fn links_and_fifos_planted_in_the_cache_are_replaced_not_followed() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let out = f
        .cmd("catalog", "cache", &["fetch", "--allow-http"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // a's entry becomes a link to a user's file whose bytes are a's source
    // (so hashing through the link would say "verified"), b's a FIFO.
    let user_file = f.path("users-copy");
    std::fs::write(&user_file, &f.bodies[0].1).unwrap();
    let a = cache.join("sha256").join(f.sha("a"));
    let b = cache.join("sha256").join(f.sha("b"));
    std::fs::remove_file(&a).unwrap();
    std::os::unix::fs::symlink(&user_file, &a).unwrap();
    std::fs::remove_file(&b).unwrap();
    let c = std::ffi::CString::new(b.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);

    // Offline: both reported corrupted (and removed), exit 4, quickly.
    let started = Instant::now();
    let out = f
        .cmd("catalog", "cache", &["fetch", "--offline"])
        .output()
        .unwrap();
    assert_fails(&out, 4, &["a symbolic link", "not a regular file", "corrupted"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(a.symlink_metadata().is_err() && b.symlink_metadata().is_err());
    // Online: fetched again as plain files; the user's file untouched.
    let out = f
        .cmd("catalog", "cache", &["fetch", "--allow-http"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for p in [&a, &b] {
        assert!(p.symlink_metadata().unwrap().file_type().is_file(), "{p:?}");
    }
    assert_eq!(std::fs::read(&user_file).unwrap(), f.bodies[0].1);
    assert_cache_clean(&cache);
}
