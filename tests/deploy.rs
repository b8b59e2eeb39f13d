//! The rendered deployment, run for real: three "VMs" (one Podman pod each,
//! with its own address on a Podman network this test creates), each running
//! the services of its rendered `compose.yaml` (the file itself is parsed and
//! each service started with its image, environment, command and volumes),
//! with the full-set image (`pgha-image build` on the Spilo stand-in, from
//! the real upstream archives) and a real three-member etcd. One cluster serves every assertion:
//!
//! 1. it forms, and the bootstrap ran once; each member advertises its VM's
//!    address (each pod's hostname resolves to 127.0.1.1, as on a Debian VM);
//!    every member derives the same pgsodium key;
//! 2. HAProxy routes rw to the leader, ro to replicas only, any to every
//!    member; the stats page answers;
//! 3. the leader's pod is killed: writes through rw succeed again within
//!    TTL + loop_wait (+ HAProxy's rise), and a vault secret and a
//!    pgsodium-encrypted row written before read back through the new leader;
//! 4. the old member rejoins as a replica when its pod restarts;
//! 5. a rolling upgrade to an image with one more migration (replicas first,
//!    then a switchover): the migration is applied exactly once, by the new
//!    leader's on_role_change.
//!
//! Secure by default (issue 16): the secrets come from `pgha-image secrets`
//! (group from the image), and the cluster is checked for what they buy:
//! clients with the cluster CA connect with `sslmode=verify-full` through
//! HAProxy to the leader and a connection without TLS is refused; replicas
//! stream over TLS; Patroni's REST API refuses an unauthenticated (or wrongly
//! authenticated) switchover and performs an authenticated one; HAProxy's
//! stats page asks for its login; the anon and service_role keys verify with
//! the jwt_secret the database holds and work with PostgREST's session
//! pattern (authenticator, SET ROLE from the role claim, RLS applies). Every
//! connection of this test uses TLS with the cluster CA.
//!
//! The side services' images (etcd, HAProxy) cannot be pulled here: the spec
//! names a local Debian image with both instead (`[images]`).

mod common;

use base64::Engine as _;
use common::cli::pgha_ok;
use common::cluster::{self, Network, Vm, compose_services};
use common::images::{self, TestImage};
use common::wait::wait_until;
use hmac::{Hmac, KeyInit, Mac};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The TLS part of every connection string: the cluster CA, verify-full.
static TLS: OnceLock<String> = OnceLock::new();

/// SQL over TLS, checking the server's certificate against the cluster CA
/// and the address dialled.
fn psql(host: &str, port: u16, user: &str, password: &str, sql: &str) -> Result<String, String> {
    cluster::psql_ssl(host, port, user, password, TLS.get().expect("TLS set"), sql)
}

/// The claims of an HS256 JWT whose signature verifies with `secret`.
fn verified_claims(token: &str, secret: &str) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    mac.verify_slice(&b64.decode(sig).unwrap())
        .unwrap_or_else(|_| panic!("the key does not verify with jwt_secret"));
    serde_json::from_slice(&b64.decode(input.split_once('.').unwrap().1).unwrap()).unwrap()
}

const SCOPE: &str = "h6deploy";
/// Spilo's defaults (bootstrap.dcs): the failover bound is TTL + loop_wait.
const TTL: u64 = 30;
const LOOP_WAIT: u64 = 10;
/// HAProxy's check `inter 3s rise 2`, plus one poll of the test.
const HAPROXY_RISE: u64 = 3 * 2 + 2;
const RW: u16 = 5000;
const RO: u16 = 5001;
const ANY: u16 = 5002;
const STATS: u16 = 7000;
const PG: u16 = 5432;
const REST: u16 = 8008;

/// The same image with one more migration (9001): the bootstrap binary is
/// wrapped to pass `--extra-migrations`, as a newer pgha-image with one more
/// file in sql/ would ship it. The migration records which member applied it.
fn upgrade_image(v1: &str, dir: &Path) -> TestImage {
    let ctx = dir.join("v2");
    std::fs::create_dir_all(ctx.join("migrations")).unwrap();
    std::fs::write(
        ctx.join("migrations/9001_h6_upgrade.sql"),
        "-- The upgrade test's migration: records the member that applied it.\n\
         CREATE TABLE public.h6_upgrade (applied_on text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());\n\
         INSERT INTO public.h6_upgrade (applied_on) VALUES (trim(both E'\\n' from pg_read_file('/etc/hostname')));\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("pgha-bootstrap"),
        "#!/bin/sh\nexec /usr/local/bin/pgha-bootstrap.v1 --extra-migrations /etc/pgha/extra-migrations \"$@\"\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!(
            "FROM {v1}\n\
             COPY migrations/ /etc/pgha/extra-migrations/\n\
             RUN mv /usr/local/bin/pgha-bootstrap /usr/local/bin/pgha-bootstrap.v1\n\
             COPY pgha-bootstrap /usr/local/bin/pgha-bootstrap\n\
             RUN chmod 0755 /usr/local/bin/pgha-bootstrap && chmod -R a+rX /etc/pgha/extra-migrations\n"
        ),
    )
    .unwrap();
    let image = TestImage {
        reference: format!("localhost/pgha-test/h6-deploy-v2:{}", std::process::id()),
    };
    images::run(
        images::podman_cmd()
            .args(["build", "-q", "-t", &image.reference])
            .arg(&ctx),
    );
    image
}

/// This test's own image, removed under the engine lock (a removal racing
/// another test's build makes Podman 4.3 lose cached layers).
struct OwnImage(Option<TestImage>);

impl OwnImage {
    fn reference(&self) -> String {
        self.0.as_ref().unwrap().reference.clone()
    }
}

impl Drop for OwnImage {
    fn drop(&mut self) {
        let _lock = images::engine_lock();
        self.0.take();
    }
}

fn render(spec: &Path, out: &Path) {
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["manifests", "--engine", "podman", "--spec"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pgha-image manifests failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn addr_of<'a>(vms: &'a [Vm], name: &str) -> &'a str {
    &vms.iter().find(|v| v.name == name).unwrap().pod.address
}

fn describe(vms: &[Vm]) -> String {
    let mut s = String::new();
    for vm in vms {
        s.push_str(&format!(
            "--- {} postgres log tail:\n{}\n",
            vm.name,
            vm.pod
                .logs("postgres", 400)
                .lines()
                // Patroni 3.0's tracebacks for HAProxy's checks closing early are noise.
                .filter(|l| l.starts_with("20") && !l.contains("Exception happened during processing"))
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .take(30)
                .rev()
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    s
}

/// `select inet_server_addr()` through HAProxy at `via`:`port`: the member that answered.
fn served_by(via: &str, port: u16, password: &str) -> Result<String, String> {
    psql(via, port, "postgres", password, "SELECT host(inet_server_addr())")
}

#[test]
#[ignore = "slow tier: needs root, Podman pods, Patroni and etcd"]
fn three_vms_form_route_fail_over_rejoin_and_upgrade() {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("h6-deploy").tempdir().unwrap();
    let dir = tmp.path();
    cluster::psql_program();

    // Images: built under the engine lock, which is released before the cluster runs.
    let (v1, v2, tools) = {
        let lock = images::engine_lock();
        let v1 = images::full_set_image(&lock);
        let v2 = upgrade_image(&v1, dir);
        (v1, OwnImage(Some(v2)), cluster::tools_image())
    };
    let t_images = started.elapsed();

    let net = Network::create("h6-deploy");
    let names = ["pg1", "pg2", "pg3"];
    let addrs: Vec<String> = (11..14).map(|n| net.host(n)).collect();

    // The secret files every member mounts: `pgha-image secrets`, below.
    let secrets = dir.join("secrets");
    let spec_text = |image: &str| {
        let mut s = format!(
            "scope = \"{SCOPE}\"\nimage = \"{image}\"\ndcs = \"etcd\"\nhaproxy = \"members\"\n\
             secrets_dir = \"{}\"\n[images]\netcd = \"{tools}\"\nhaproxy = \"{tools}\"\n",
            secrets.display()
        );
        for (n, a) in names.iter().zip(&addrs) {
            s.push_str(&format!(
                "[[member]]\nname = \"{n}\"\naddress = \"{a}\"\ndata_dir = \"{}\"\n",
                dir.join("data").join(n).display()
            ));
        }
        s
    };
    let spec = dir.join("cluster.toml");
    let out = dir.join("deploy");
    std::fs::write(&spec, spec_text(&v1)).unwrap();
    // The group of the files: asked of the image through the engine.
    pgha_ok(&[
        "secrets",
        "--engine",
        "podman",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        secrets.to_str().unwrap(),
    ]);
    render(&spec, &out);
    let patroni_env = cluster::read_env_file(&secrets.join("patroni.env"));
    let password = patroni_env["PGPASSWORD_SUPERUSER"].clone();
    let ca = secrets.join("ca.crt");
    TLS.set(format!("sslmode=verify-full sslrootcert={}", ca.display()))
        .unwrap();
    let secret_file = |f: &str| {
        std::fs::read_to_string(secrets.join(f))
            .unwrap()
            .trim()
            .to_string()
    };

    let vms: Vec<Vm> = names
        .iter()
        .zip(&addrs)
        .map(|(n, a)| Vm::create(&net, "h6-deploy", n, a, &out))
        .collect();
    for vm in &vms {
        let names: Vec<&str> = vm.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["etcd", "postgres", "haproxy"], "{}", vm.name);
        // Every image by its id (nothing is pulled: see cluster::Pod::run_service).
        for svc in &vm.services {
            assert!(
                svc.image.starts_with("sha256:"),
                "{}: {} runs {}",
                vm.name,
                svc.name,
                svc.image
            );
        }
        assert_eq!(
            vm.service("postgres").image,
            format!("sha256:{}", images::image_id(&v1))
        );
        assert_eq!(
            vm.service("etcd").image,
            format!("sha256:{}", images::image_id(&tools))
        );
    }
    // Start order of the README: etcd everywhere, then the rest.
    for vm in &vms {
        vm.pod.run_service(vm.service("etcd"));
    }
    for vm in &vms {
        vm.pod.run_service(vm.service("postgres"));
        vm.pod.run_service(vm.service("haproxy"));
    }
    let hosts: Vec<&str> = addrs.iter().map(String::as_str).collect();

    // 1. Formation; the bootstrap ran once.
    let t0 = Instant::now();
    let leader = cluster::wait_for_leader(&hosts, REST, 2, Duration::from_secs(300));
    let t_form = t0.elapsed();
    let bootstraps: usize = vms
        .iter()
        .map(|vm| {
            let (_, calls) = vm
                .pod
                .exec("postgres", &["cat", "/run/postgresql/post_init.calls"]);
            calls
                .lines()
                // "DATE post_init.sh HUMAN_ROLE DSN" per call; a promotion passes `postgres`, not a DSN.
                .filter(|l| l.contains(" post_init.sh ") && l.contains("dbname="))
                .count()
        })
        .sum();
    assert_eq!(
        bootstraps,
        1,
        "the bootstrap hook must run once in the cluster\n{}",
        describe(&vms)
    );
    let leader_addr = addr_of(&vms, &leader).to_string();
    // The members advertise their own addresses (from SPILO_CONFIGURATION),
    // not what their hostname resolves to, which is loopback as on a VM.
    for vm in &vms {
        let (ok, hosts) = vm.pod.exec("postgres", &["getent", "hosts", &vm.name]);
        assert!(ok && hosts.starts_with("127.0.1.1"), "{}: {hosts}", vm.name);
    }
    let c = cluster::patroni_cluster(&leader_addr, REST).unwrap();
    for m in c["members"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        assert_eq!(m["host"].as_str(), Some(addr_of(&vms, name)), "{c}");
    }
    // The README's check: patronictl in the postgres service.
    let (ok, list) = vms[0]
        .pod
        .exec("postgres", &["patronictl", "-c", "/run/postgres.yml", "list"]);
    assert!(ok && list.contains(&leader) && list.contains("Leader"), "{list}");
    let ledger = psql(
        &leader_addr,
        PG,
        "postgres",
        &password,
        "SELECT count(*) FROM pgha_bootstrap.migrations",
    )
    .unwrap_or_else(|e| panic!("the bootstrap's ledger: {e}"));
    assert!(ledger.parse::<u32>().unwrap() >= 10, "{ledger}");

    // 1b. Patroni's REST API: an unsafe request needs the login of patroni.env.
    let candidate = names.iter().find(|n| **n != leader).unwrap().to_string();
    let body = serde_json::json!({ "leader": leader, "candidate": candidate }).to_string();
    let rest_user = patroni_env["PGHA_RESTAPI_USERNAME"].as_str();
    let rest_password = patroni_env["PGHA_RESTAPI_PASSWORD"].as_str();
    for login in [None, Some((rest_user, "not-the-password"))] {
        let (status, text) = cluster::http_request(&leader_addr, REST, "POST", "/switchover", login, &body)
            .expect("the REST API answers");
        assert_eq!(status, 401, "a switchover with {login:?} must be refused: {text}");
    }
    let c = cluster::patroni_cluster(&leader_addr, REST).unwrap();
    assert!(
        cluster::members(&c)
            .iter()
            .any(|m| m.name == leader && m.role == "leader"),
        "a refused switchover changed the leader: {c}"
    );
    let (status, text) = cluster::http_request(
        &leader_addr,
        REST,
        "POST",
        "/switchover",
        Some((rest_user, rest_password)),
        &body,
    )
    .expect("the REST API answers");
    assert_eq!(status, 200, "an authenticated switchover: {text}");
    let leader = wait_until(
        "the authenticated switchover's candidate leads with both replicas",
        Duration::from_secs(180),
        Duration::from_secs(2),
        || {
            let l = cluster::wait_for_leader(&hosts, REST, 2, Duration::from_secs(120));
            (l == candidate).then_some(l)
        },
        || describe(&vms),
    );
    let leader_addr = addr_of(&vms, &leader).to_string();

    // 1c. TLS: verify-full through every HAProxy reaches the leader (its
    // certificate names each HAProxy address); without TLS is refused.
    for via in &hosts {
        let got = wait_until(
            &format!("a verify-full connection through {via}:{RW} reaches the new leader"),
            Duration::from_secs(60),
            Duration::from_secs(1),
            || {
                psql(
                    via,
                    RW,
                    "postgres",
                    &password,
                    "SELECT host(inet_server_addr()) || ' ' || ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                )
                .ok()
                .filter(|a| a.starts_with(&format!("{leader_addr} ")))
            },
            || format!("{:?}", psql(via, RW, "postgres", &password, "SELECT 1")),
        );
        assert_eq!(got, format!("{leader_addr} true"));
        let plain = cluster::psql(via, RW, "postgres", &password, "SELECT 1");
        let err = plain.expect_err("a connection without TLS must be refused");
        assert!(err.contains("no encryption"), "{err}");
    }
    // A certificate from another CA does not verify: the system's CAs are not the cluster's.
    let foreign = cluster::psql_ssl(
        hosts[0],
        RW,
        "postgres",
        &password,
        "sslmode=verify-full sslrootcert=/etc/ssl/certs/ca-certificates.crt",
        "SELECT 1",
    );
    assert!(
        foreign.is_err(),
        "a server certificate must not verify against foreign CAs"
    );
    // Replicas stream over TLS.
    let streaming = wait_until(
        "both replicas stream over TLS",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            psql(
                &leader_addr,
                PG,
                "postgres",
                &password,
                "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_replication r \
                 JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming'",
            )
            .ok()
            .filter(|v| v == "2/2")
        },
        || {
            format!(
                "{:?}",
                psql(
                    &leader_addr,
                    PG,
                    "postgres",
                    &password,
                    "SELECT * FROM pg_stat_replication"
                )
            )
        },
    );
    assert_eq!(streaming, "2/2");

    // 1d. The API keys: they verify with jwt_secret, which is the one the
    // database holds; PostgREST's pattern (log in as authenticator, SET ROLE
    // to the role claim, claims in request.jwt.claims) and RLS applies.
    let jwt_secret = secret_file("jwt_secret");
    let anon = verified_claims(&secret_file("anon_key"), &jwt_secret);
    let service = verified_claims(&secret_file("service_role_key"), &jwt_secret);
    assert_eq!(
        (anon["role"].as_str(), service["role"].as_str()),
        (Some("anon"), Some("service_role"))
    );
    assert_eq!(
        psql(
            hosts[0],
            RW,
            "postgres",
            &password,
            "SELECT current_setting('app.settings.jwt_secret')"
        )
        .unwrap(),
        jwt_secret
    );
    psql(
        hosts[0],
        RW,
        "postgres",
        &password,
        "CREATE TABLE public.i16_notes (id int, visibility text);\
         INSERT INTO public.i16_notes VALUES (1, 'public'), (2, 'private');\
         ALTER TABLE public.i16_notes ENABLE ROW LEVEL SECURITY;\
         CREATE POLICY i16_public ON public.i16_notes FOR SELECT TO anon USING (visibility = 'public');\
         GRANT SELECT ON public.i16_notes TO anon, service_role;",
    )
    .unwrap_or_else(|e| panic!("the RLS table: {e}"));
    let authenticator_password = secret_file("password");
    let as_claims = |claims: &serde_json::Value| {
        let role = claims["role"].as_str().unwrap();
        psql(
            hosts[1],
            RW,
            "authenticator",
            &authenticator_password,
            &format!(
                "BEGIN; SELECT set_config('request.jwt.claims', '{claims}', true) IS NOT NULL; \
                 SET LOCAL ROLE {role}; \
                 SELECT current_user || ':' || string_agg(id::text, ',' ORDER BY id) FROM public.i16_notes; COMMIT;"
            ),
        )
        .unwrap_or_else(|e| panic!("PostgREST's pattern as {role}: {e}"))
    };
    let anon_rows = as_claims(&anon);
    assert!(
        anon_rows.lines().any(|l| l == "anon:1"),
        "RLS must hide the private row from anon: {anon_rows}"
    );
    let service_rows = as_claims(&service);
    assert!(
        service_rows.lines().any(|l| l == "service_role:1,2"),
        "service_role bypasses RLS: {service_rows}"
    );

    // 2. Routing, through every member's HAProxy.
    let replicas: Vec<String> = addrs.iter().filter(|a| **a != leader_addr).cloned().collect();
    for via in &hosts {
        let got = wait_until(
            &format!("HAProxy on {via}:{RW} reaches the leader"),
            Duration::from_secs(60),
            Duration::from_secs(1),
            || served_by(via, RW, &password).ok().filter(|a| *a == leader_addr),
            || format!("{:?}", served_by(via, RW, &password)),
        );
        assert_eq!(got, leader_addr);
    }
    let via = hosts[0];
    let seen = |port: u16, n: usize| -> std::collections::BTreeSet<String> {
        (0..n)
            .map(|_| served_by(via, port, &password).unwrap_or_else(|e| panic!("{via}:{port}: {e}")))
            .collect()
    };
    // HAProxy checks each backend on its own (inter 3s, rise 2, fall 3): a
    // member up in one backend may still be rising in another, and after the
    // switchover above the old replica stays up on ro until its checks fail.
    // Wait until a backend routes to exactly the members it should before
    // sampling what it routes to (a wait on the count alone passed on a
    // stale set).
    let backend_up = |what: &str, port: u16, expected: &std::collections::BTreeSet<String>| {
        wait_until(
            what,
            Duration::from_secs(60),
            Duration::from_secs(1),
            || {
                let got: Result<std::collections::BTreeSet<String>, String> = (0..3 * expected.len())
                    .map(|_| served_by(via, port, &password))
                    .collect();
                got.ok().filter(|g| g == expected).map(|_| ())
            },
            || format!("{:?}", served_by(via, port, &password)),
        )
    };
    backend_up(
        "HAProxy routes ro to the two replicas",
        RO,
        &replicas.iter().cloned().collect(),
    );
    let ro = seen(RO, 6);
    assert_eq!(
        ro,
        replicas.iter().cloned().collect(),
        "{RO} must reach the replicas only"
    );
    assert_eq!(
        psql(via, RO, "postgres", &password, "SELECT pg_is_in_recovery()").unwrap(),
        "t"
    );
    assert!(psql(via, RO, "postgres", &password, "CREATE TABLE h6_nope (x int)").is_err());
    backend_up(
        "HAProxy routes any to all three members",
        ANY,
        &addrs.iter().cloned().collect(),
    );
    let any = seen(ANY, 9);
    assert_eq!(
        any,
        addrs.iter().cloned().collect(),
        "{ANY} must reach every member"
    );
    // HAProxy's stats page: refused without its login, shown with it.
    let (status, _) = cluster::http_get(via, STATS, "/").expect("stats page");
    assert_eq!(status, 401, "the stats page must ask for a login");
    let haproxy_env = cluster::read_env_file(&secrets.join("haproxy.env"));
    let login = (
        haproxy_env["PGHA_STATS_USER"].as_str(),
        haproxy_env["PGHA_STATS_PASSWORD"].as_str(),
    );
    let (status, _) =
        cluster::http_request(via, STATS, "GET", "/", Some((login.0, "wrong")), "").expect("stats page");
    assert_eq!(status, 401);
    let (status, body) = cluster::http_request(via, STATS, "GET", "/", Some(login), "").expect("stats page");
    assert_eq!(status, 200);
    assert!(body.contains("primary") && body.contains("replicas"), "{body}");

    // The same pgsodium root key on every member: deterministic encryption
    // under a derived key gives the same bytes on each.
    let sealed: Vec<String> = addrs
        .iter()
        .map(|a| {
            psql(
                a,
                PG,
                "postgres",
                &password,
                "SELECT encode(pgsodium.crypto_aead_det_encrypt(\
                 convert_to('same key', 'utf8'), convert_to('h6', 'utf8'), 1::bigint), 'hex')",
            )
            .unwrap_or_else(|e| panic!("{a}: pgsodium: {e}"))
        })
        .collect();
    assert!(
        sealed.iter().all(|s| *s == sealed[0]) && sealed[0].len() > 16,
        "the members derive different pgsodium keys: {sealed:?}"
    );

    // Data written before the failover: a vault secret and a pgsodium-encrypted row.
    psql(
        via,
        RW,
        "postgres",
        &password,
        "CREATE TABLE h6_writes (n serial, at timestamptz DEFAULT now());\
         CREATE TABLE h6_sealed (id int PRIMARY KEY, c bytea);\
         INSERT INTO h6_sealed VALUES (1, pgsodium.crypto_aead_det_encrypt(\
             convert_to('sealed before failover', 'utf8'), convert_to('h6', 'utf8'), 1::bigint));\
         SELECT vault.create_secret('vault before failover', 'h6_secret');",
    )
    .unwrap_or_else(|e| panic!("writing the secrets: {e}"));
    let lsn = psql(via, RW, "postgres", &password, "SELECT pg_current_wal_lsn()").unwrap();
    wait_until(
        "the replicas replay the secrets",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || {
            replicas
                .iter()
                .all(|r| {
                    psql(
                        r,
                        PG,
                        "postgres",
                        &password,
                        &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'"),
                    )
                    .is_ok_and(|v| v == "t")
                })
                .then_some(())
        },
        String::new,
    );

    // 3. Kill the leader's VM.
    let old = vms.iter().find(|v| v.name == leader).unwrap();
    let survivor = vms.iter().find(|v| v.name != leader).unwrap();
    let killed_at = Instant::now();
    old.pod.kill();
    let writes_back = wait_until(
        "a write through rw after the leader's pod died",
        Duration::from_secs(TTL + LOOP_WAIT + HAPROXY_RISE + 30),
        Duration::from_millis(500),
        || {
            psql(
                &survivor.pod.address,
                RW,
                "postgres",
                &password,
                "INSERT INTO h6_writes DEFAULT VALUES",
            )
            .ok()
            .map(|_| killed_at.elapsed())
        },
        || describe(&vms),
    );
    assert!(
        writes_back <= Duration::from_secs(TTL + LOOP_WAIT + HAPROXY_RISE),
        "writes came back after {writes_back:?}: more than TTL {TTL}s + loop_wait {LOOP_WAIT}s + HAProxy's rise {HAPROXY_RISE}s"
    );
    let new_leader = served_by(&survivor.pod.address, RW, &password).unwrap();
    assert_ne!(new_leader, leader_addr);
    let read = |sql: &str| psql(&survivor.pod.address, RW, "postgres", &password, sql);
    assert_eq!(
        read("SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'h6_secret'").unwrap(),
        "vault before failover"
    );
    assert_eq!(
        read(
            "SELECT convert_from(pgsodium.crypto_aead_det_decrypt(c, convert_to('h6', 'utf8'), 1::bigint), 'utf8') \
             FROM h6_sealed WHERE id = 1"
        )
        .unwrap(),
        "sealed before failover"
    );

    // 4. The old member rejoins as a replica.
    old.pod.start();
    let t0 = Instant::now();
    let leader2 = cluster::wait_for_leader(&hosts, REST, 2, Duration::from_secs(180));
    let t_rejoin = t0.elapsed();
    assert_ne!(leader2, leader);
    let c = cluster::patroni_cluster(&new_leader, REST).unwrap();
    let old_state = cluster::members(&c)
        .into_iter()
        .find(|m| m.name == leader)
        .unwrap();
    assert_eq!(old_state.role, "replica", "{c}");

    // 5. Rolling upgrade: render for the new image, replicas first, then a switchover.
    std::fs::write(&spec, spec_text(&v2.reference())).unwrap();
    render(&spec, &out);
    let t0 = Instant::now();
    let upgrade_one = |vm: &Vm| {
        let svc = compose_services(&out.join(&vm.name))
            .into_iter()
            .find(|s| s.name == "postgres")
            .unwrap();
        assert_eq!(svc.image, format!("sha256:{}", images::image_id(&v2.reference())));
        vm.pod.remove_service("postgres");
        vm.pod.run_service(&svc);
        // The new container's Patroni (the old one is gone) runs as a replica.
        wait_until(
            &format!("{} back as a replica on the new image", vm.name),
            Duration::from_secs(180),
            Duration::from_secs(1),
            || cluster::http_get(&vm.pod.address, REST, "/replica").filter(|(s, _)| *s == 200),
            || describe(&vms),
        );
    };
    let replica_vms: Vec<&Vm> = vms.iter().filter(|v| v.name != leader2).collect();
    for vm in &replica_vms {
        upgrade_one(vm);
        cluster::wait_for_leader(&hosts, REST, 2, Duration::from_secs(180));
    }
    assert!(
        psql(
            &new_leader,
            PG,
            "postgres",
            &password,
            "SELECT to_regclass('public.h6_upgrade') IS NULL"
        )
        .unwrap()
            == "t",
        "the new migration must wait for a promotion"
    );
    let target = replica_vms[0];
    let leader_vm = vms.iter().find(|v| v.name == leader2).unwrap();
    let (ok, text) = leader_vm.pod.exec(
        "postgres",
        &[
            "patronictl",
            "-c",
            "/run/postgres.yml",
            "switchover",
            "--candidate",
            &target.name,
            "--force",
        ],
    );
    assert!(ok, "switchover: {text}");
    wait_until(
        "the switchover target leads",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            cluster::patroni_cluster(&target.pod.address, REST)
                .and_then(|c| cluster::members(&c).into_iter().find(|m| m.role == "leader"))
                .filter(|m| m.name == target.name)
        },
        || describe(&vms),
    );
    upgrade_one(leader_vm);
    cluster::wait_for_leader(&hosts, REST, 2, Duration::from_secs(180));
    let applied = wait_until(
        "the new migration, applied by the new leader's on_role_change",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            psql(
                &target.pod.address,
                PG,
                "postgres",
                &password,
                "SELECT string_agg(applied_on, ',') FROM public.h6_upgrade",
            )
            .ok()
        },
        || describe(&vms),
    );
    assert_eq!(applied, target.name, "applied exactly once, on the new leader");
    let ledger = psql(
        &target.pod.address,
        PG,
        "postgres",
        &password,
        "SELECT count(*) FROM pgha_bootstrap.migrations WHERE version::text = '9001'",
    )
    .unwrap();
    assert_eq!(ledger, "1");
    let t_upgrade = t0.elapsed();

    eprintln!(
        "deploy test: images {t_images:?}, formation {t_form:?}, writes back after the leader's pod was killed {writes_back:?}, \
         rejoin {t_rejoin:?}, rolling upgrade {t_upgrade:?}, total {:?}",
        started.elapsed()
    );
    drop(vms);
}
