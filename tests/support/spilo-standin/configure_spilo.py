#!/usr/bin/env python3
"""The stand-in's configure_spilo.py: writes Patroni's configuration the way
Spilo does, from the container's environment, for tests of images derived
from Spilo. Written from the behaviour of zalando/spilo's
postgres-appliance/scripts/configure_spilo.py and launch.sh (tags 3.2-p2 to
4.0-p3), not from its code. What it does, in Spilo's order:

1. Generate a configuration from the environment (defaults in brackets):
   SCOPE [dummy], PGUSER_SUPERUSER/PGPASSWORD_SUPERUSER [postgres/zalando],
   PGUSER_STANDBY/PGPASSWORD_STANDBY [standby/standby], PGPASSWORD_ADMIN
   (adds bootstrap.users.<PGUSER_ADMIN [admin]>), HUMAN_ROLE [zalandos],
   PGPORT [5432], APIPORT [8008], PGDATA, ALLOW_NOSSL (pg_hba: without it,
   non-TLS connections are rejected), SSL_CERTIFICATE_FILE /
   SSL_PRIVATE_KEY_FILE [/run/certs/server.{crt,key}, self-signed when
   absent; an existing key is used as it is, never rewritten], SSL_CA_FILE
   (-> ssl_ca_file, when set).
2. The member address: the first address of getaddrinfo(gethostname()); under
   Kubernetes only (KUBERNETES_SERVICE_HOST set) POD_IP replaces it.
   RESTAPI_CONNECT_ADDRESS replaces it for the REST API only. The member name
   is gethostname().
3. The DCS from the environment: variables named <DCS>_<PARAM> for DCS in
   zookeeper, exhibitor, consul, etcd3, etcd (first present wins, in that
   order) become {dcs: {param: value}}; a *_HOSTS value is read as a YAML list
   ("a:2379,b:2379" is wrapped in [...] first). ETCD3_HOSTS -> etcd3.hosts,
   ETCD_HOST -> etcd.host, CONSUL_HOST -> consul.host, ...
4. SPILO_CONFIGURATION (else PATRONI_CONFIGURATION), YAML that must be a
   mapping, is deep-merged over the generated configuration: the user's value
   wins for scalars, the user's list replaces the generated one, mappings
   merge key by key (a key the user set to null takes the generated value).
5. No DCS key at all in the merged configuration (e.g. etcd3 from the
   variable or from SPILO_CONFIGURATION): a local etcd is started and
   etcd.host = 127.0.0.1:2379 (Spilo's single-node demo mode).
6. postgresql.bin_dir, unless the user set it: the major of PG_VERSION in the
   data directory, else PGVERSION, else the `postgres` on PATH.
7. shared_preload_libraries: when the user's configuration does not set it,
   the generated list gets the preloaded libraries of Spilo's extension table
   for the major appended (spilo_commons.append_extensions, as Spilo; of that
   table the stand-in has pg_cron). When the user sets it, it is
   used as given: Spilo appends nothing.
8. bootstrap.pg_hba given without a replication line gets one inserted first.

Deviations, because this is a test image (Debian bookworm with PostgreSQL 15 or trixie with 17, and
Debian's packages only): no cloud metadata (always Spilo's "local" provider);
no Kubernetes DCS; no WAL-E/WAL-G, pgbouncer, PAM or crontab sections;
shared_buffers 128MB and max_connections 100 instead of sizes from the
memory; logs to stderr instead of csvlog files; the generated preload list is
`pg_stat_statements` (bg_mon, pgextwlist, pg_auth_mon, set_user,
timescaledb and pg_stat_kcache are not in the stand-in); initdb locale
C.UTF-8 (INITDB_LOCALE [C]: Debian minbase has no en_US locale).

Usage: configure_spilo.py [--print | --print-json]   (write the configuration
to stdout as YAML or JSON and touch nothing else; for the tests' snapshots).
"""

import copy
import json
import os
import socket
import subprocess
import sys

import yaml

from spilo_commons import append_extensions

RW_DIR = "/run"
CONFIG_FILE = os.path.join(RW_DIR, "postgres.yml")
PATRONI_DCS = ("zookeeper", "exhibitor", "consul", "etcd3", "etcd")


def env(name, default=""):
    return os.environ.get(name, default)


def merge_user_over(user, generated):
    """Spilo's merge: the user's configuration over the generated one."""
    if isinstance(user, dict) and isinstance(generated, dict):
        for key, value in generated.items():
            user[key] = merge_user_over(user[key], value) if key in user else value
        return user
    if isinstance(user, list) and isinstance(generated, list):
        return user
    return generated if user is None else user


def member_address():
    ip = socket.getaddrinfo(socket.gethostname(), 0, socket.AF_UNSPEC, socket.SOCK_STREAM, 0)[0][4][0]
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        ip = env("POD_IP", ip)
    return ip


def dcs_from_environment():
    found = {}
    for name, value in os.environ.items():
        if "_" not in name:
            continue
        dcs, param = name.lower().split("_", 1)
        if dcs not in PATRONI_DCS:
            continue
        if param == "hosts":
            if not (value.strip().startswith("-") or "[" in value):
                value = "[{0}]".format(value)
            value = yaml.safe_load(value)
        elif param == "discovery_domain":
            param = "discovery_srv"
        found.setdefault(dcs, {})[param] = value
    for dcs in PATRONI_DCS:
        if dcs in found:
            return {dcs: found[dcs]}
    return {}


def postgres_major(bin_dir):
    out = subprocess.check_output([os.path.join(bin_dir, "postgres") if bin_dir else "postgres", "--version"])
    return out.decode().split()[2].split(".")[0]


def generate():
    pgroot = env("PGROOT", "/home/postgres/pgdata/pgroot")
    pgdata = env("PGDATA", os.path.join(pgroot, "data"))
    human = env("HUMAN_ROLE", "zalandos")
    standby_user = env("PGUSER_STANDBY", "standby")
    pgport = env("PGPORT", "5432")
    apiport = env("APIPORT", "8008")
    ip = member_address()
    name = socket.gethostname()
    ssl_cert = env("SSL_CERTIFICATE_FILE", os.path.join(RW_DIR, "certs", "server.crt"))
    ssl_key = env("SSL_PRIVATE_KEY_FILE", os.path.join(RW_DIR, "certs", "server.key"))
    ssl_ca = env("SSL_CA_FILE")
    nossl = bool(env("ALLOW_NOSSL"))

    hba = [
        "local   all             all                                   trust",
        "host    all             all                127.0.0.1/32       md5",
        "host    all             all                ::1/128            md5",
        "local   replication     {0}                    trust".format(standby_user),
        "hostssl replication     {0} all                md5".format(standby_user),
    ]
    if nossl:
        hba.append("host    all             all                all                md5")
    else:
        hba.append("hostnossl all           all                all                reject")
        hba.append("hostssl all             all                all                md5")

    config = {
        "bootstrap": {
            "post_init": '/scripts/post_init.sh "{0}"'.format(human),
            "dcs": {
                "ttl": 30,
                "loop_wait": 10,
                "retry_timeout": 10,
                "maximum_lag_on_failover": 33554432,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "archive_mode": "on",
                        "archive_timeout": "1800s",
                        "wal_level": "hot_standby",
                        "wal_log_hints": "on",
                        "wal_compression": "on",
                        "max_wal_senders": 10,
                        "max_connections": 100,
                        "max_replication_slots": 10,
                        "hot_standby": "on",
                        "tcp_keepalives_idle": 900,
                        "tcp_keepalives_interval": 100,
                        "log_line_prefix": "%t [%p]: [%l-1] %c %x %d %u %a %h ",
                        "log_checkpoints": "on",
                        "log_lock_waits": "on",
                        "log_min_duration_statement": 500,
                        "log_autovacuum_min_duration": 0,
                        "log_connections": "on",
                        "log_disconnections": "on",
                        "log_statement": "ddl",
                        "log_temp_files": 0,
                        "track_functions": "all",
                        "checkpoint_completion_target": 0.9,
                        "autovacuum_max_workers": 5,
                        "autovacuum_vacuum_scale_factor": 0.05,
                        "autovacuum_analyze_scale_factor": 0.02,
                    },
                },
            },
            "initdb": [
                {"encoding": "UTF8"},
                {"locale": "{0}.UTF-8".format(env("INITDB_LOCALE", "C"))},
                "data-checksums",
            ],
        },
        "scope": env("SCOPE", "dummy"),
        "restapi": {
            "listen": ":{0}".format(apiport),
            "connect_address": "{0}:{1}".format(env("RESTAPI_CONNECT_ADDRESS", ip), apiport),
        },
        "postgresql": {
            "pgpass": "/run/postgresql/pgpass",
            "use_unix_socket": True,
            "use_unix_socket_repl": True,
            "name": name,
            "listen": "*:{0}".format(pgport),
            "connect_address": "{0}:{1}".format(ip, pgport),
            "data_dir": pgdata,
            "parameters": {
                "archive_command": "/bin/true",
                "shared_buffers": "128MB",
                "ssl": "on",
                "ssl_cert_file": ssl_cert,
                "ssl_key_file": ssl_key,
                "shared_preload_libraries": "pg_stat_statements",
                "pg_stat_statements.track_utility": "off",
            },
            "pg_hba": hba,
            "authentication": {
                "superuser": {
                    "username": env("PGUSER_SUPERUSER", "postgres"),
                    "password": env("PGPASSWORD_SUPERUSER", "zalando"),
                },
                "replication": {
                    "username": standby_user,
                    "password": env("PGPASSWORD_STANDBY", "standby"),
                },
            },
            "callbacks": {"on_role_change": "/scripts/on_role_change.sh {0} true".format(human)},
            "create_replica_method": ["basebackup_fast_xlog"],
            "basebackup_fast_xlog": {"command": "/scripts/basebackup.sh", "retries": 2},
        },
    }
    if ssl_ca:
        config["postgresql"]["parameters"]["ssl_ca_file"] = ssl_ca
    if "PGPASSWORD_ADMIN" in os.environ:
        config["bootstrap"]["users"] = {
            env("PGUSER_ADMIN", "admin"): {
                "password": env("PGPASSWORD_ADMIN"),
                "options": ["createrole", "createdb"],
            }
        }
    config.update(dcs_from_environment())
    return config, pgdata


def user_configuration():
    text = os.environ.get("SPILO_CONFIGURATION", os.environ.get("PATRONI_CONFIGURATION", ""))
    user = yaml.safe_load(text) or {}
    if not isinstance(user, dict):
        var = "SPILO_CONFIGURATION" if "SPILO_CONFIGURATION" in os.environ else "PATRONI_CONFIGURATION"
        raise SystemExit("configure_spilo.py: {0} should contain a mapping, yet it is a {1}".format(
            var, type(user).__name__))
    return user


def configure():
    generated, _ = generate()
    user = user_configuration()
    config = merge_user_over(copy.deepcopy(user), generated)
    local_etcd = not any(key in PATRONI_DCS for key in config)
    if local_etcd:
        config["etcd"] = {"host": "127.0.0.1:2379"}

    pg = config["postgresql"]
    version_file = os.path.join(pg["data_dir"], "PG_VERSION")
    if os.path.exists(version_file):
        with open(version_file) as f:
            major = f.read().strip()
        if os.access("/usr/lib/postgresql/{0}/bin/postgres".format(major), os.X_OK):
            pg["bin_dir"] = "/usr/lib/postgresql/{0}/bin".format(major)
    if not pg.get("bin_dir"):
        major = env("PGVERSION")
        if not os.access("/usr/lib/postgresql/{0}/bin/postgres".format(major), os.X_OK):
            major = postgres_major("")
        pg["bin_dir"] = "/usr/lib/postgresql/{0}/bin".format(major)

    user_parameters = (user.get("postgresql") or {}).get("parameters") or {}
    if "shared_preload_libraries" not in user_parameters:
        pg["parameters"]["shared_preload_libraries"] = append_extensions(
            str(pg["parameters"]["shared_preload_libraries"]), float(postgres_major(pg["bin_dir"]))
        )

    hba = config["bootstrap"].get("pg_hba")
    if isinstance(hba, list) and not any("replication" in line for line in hba):
        hba.insert(0, "hostssl replication {0} all md5".format(pg["authentication"]["replication"]["username"]))
    return config, local_etcd


def write_certificates():
    cert = env("SSL_CERTIFICATE_FILE", os.path.join(RW_DIR, "certs", "server.crt"))
    key = env("SSL_PRIVATE_KEY_FILE", os.path.join(RW_DIR, "certs", "server.key"))
    if os.path.exists(key):
        return
    os.makedirs(os.path.dirname(key), exist_ok=True)
    subprocess.check_call(
        ["openssl", "req", "-nodes", "-new", "-x509", "-subj", "/CN=spilo.example.org",
         "-keyout", key, "-out", cert],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    subprocess.check_call(["chown", "postgres", key])


def main():
    config, local_etcd = configure()
    text = yaml.safe_dump(config, default_flow_style=False, width=120)
    if sys.argv[1:] == ["--print"]:
        sys.stdout.write(text)
        return
    if sys.argv[1:] == ["--print-json"]:
        json.dump(config, sys.stdout, sort_keys=True)
        return
    old = os.umask(0o077)
    with open(CONFIG_FILE, "w") as f:
        f.write(text)
    os.umask(old)
    subprocess.check_call(["chown", "postgres", CONFIG_FILE])
    write_certificates()
    # Spilo links a runit service for each thing it runs; the stand-in's
    # launch.sh starts etcd when this one exists.
    if local_etcd:
        os.makedirs(os.path.join(RW_DIR, "service", "etcd"), exist_ok=True)


if __name__ == "__main__":
    main()
