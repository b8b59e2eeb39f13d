#!/usr/bin/env python3
"""pgha-backup: the backup service of a deployment rendered by `pgha-image manifests`.

    pgha-backup.py [serve]        every BACKUP_EVERY seconds, pg_dump each of
                                  BACKUP_DATABASES from a replica (PGHOST:PGPORT,
                                  HAProxy's read-only port) into BACKUP_DIR
    pgha-backup.py once           one backup now, then exit (0 ok, 1 failed)
    pgha-backup.py verify FILE    check FILE against its FILE.sha256
    pgha-backup.py restore FILE [DATABASE]
                                  restore FILE (checksum verified first) into
                                  DATABASE [postgres] of a new cluster started
                                  from the same image and secrets, at
                                  PGHOST:PGPORT (its leader: HAProxy's rw port)

A dump is written as `.NAME.partial`, synced, hashed; its checksum file
`NAME.sha256` (sha256sum's format) is renamed into place first, the dump
last: a file under a final `.dump` name is always complete and has its
checksum. An interrupted run leaves only `.partial` files, removed by the
next start. The newest BACKUP_KEEP dumps of each database are kept.

Its state is in BACKUP_DIR/status.json (written by rename) and served on
BACKUP_LISTEN:BACKUP_PORT: /status (JSON) and /metrics (Prometheus text).
Only the standard library and PostgreSQL's client programs are used.
"""

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

ENV = os.environ
# The superuser's password as Spilo's environment names it (compose's env_file).
if "PGPASSWORD" not in ENV and "PGPASSWORD_SUPERUSER" in ENV:
    ENV["PGPASSWORD"] = ENV["PGPASSWORD_SUPERUSER"]
DIR = ENV.get("BACKUP_DIR", "/backups")
# What the bootstrap of a new cluster made itself: never restored over.
BOOTSTRAP_LEDGER = "pgha_bootstrap"
# Descriptions pg_restore --list prints with more than one word, longest first.
MULTIWORD = sorted([
    "TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "FK CONSTRAINT", "CHECK CONSTRAINT", "DEFAULT ACL",
    "EVENT TRIGGER", "MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "LARGE OBJECT", "FOREIGN TABLE",
    "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "USER MAPPING", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA", "ROW SECURITY", "OPERATOR CLASS", "OPERATOR FAMILY", "SHELL TYPE",
    "PROCEDURAL LANGUAGE", "DATABASE PROPERTIES",
], key=len, reverse=True)
EVERY = int(ENV.get("BACKUP_EVERY", "86400"))
KEEP = int(ENV.get("BACKUP_KEEP", "7"))
DATABASES = [d for d in ENV.get("BACKUP_DATABASES", "postgres").split(",") if d]
LISTEN = ENV.get("BACKUP_LISTEN", "127.0.0.1")
PORT = int(ENV.get("BACKUP_PORT", "9188"))
STATUS = os.path.join(DIR, "status.json")
# psql/pg_dump of the major the cluster runs (Spilo keeps each under this path).
BIN = "/usr/lib/postgresql/%s/bin" % ENV.get("PGVERSION", "15")

state_lock = threading.Lock()
state = {
    "schedule_seconds": EVERY,
    "keep": KEEP,
    "databases": DATABASES,
    "running": False,
    "last_attempt": None,
    "last_success": None,
    "last_error": None,
    "successes": 0,
    "failures": 0,
    "last": [],
}
stop = threading.Event()


def log(msg):
    sys.stderr.write("%s pgha-backup: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), msg))
    sys.stderr.flush()


def program(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else name


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".partial")
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_path(os.path.dirname(path))


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_state():
    with state_lock:
        text = json.dumps(state, indent=2, sort_keys=True) + "\n"
    write_atomic(STATUS, text)


def load_state():
    try:
        with open(STATUS) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return
    for key in ("last_attempt", "last_success", "last_error", "successes", "failures", "last"):
        if key in old:
            state[key] = old[key]


def clean_leftovers():
    """Remove what an interrupted run left: partial files, a checksum without its dump."""
    for name in os.listdir(DIR):
        path = os.path.join(DIR, name)
        if name.startswith(".") and name.endswith(".partial"):
            log("removing %s, left by an interrupted run" % name)
            os.unlink(path)
        elif name.endswith(".dump.sha256") and not os.path.exists(path[: -len(".sha256")]):
            log("removing %s: its dump was never completed" % name)
            os.unlink(path)


def source_of(database):
    """(in_recovery, address) of the server PGHOST:PGPORT reaches."""
    out = subprocess.run(
        [program("psql"), "-X", "-At", "-d", database, "-c", "SELECT pg_is_in_recovery(), host(inet_server_addr())"],
        capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError("cannot reach %s:%s: %s" % (ENV.get("PGHOST"), ENV.get("PGPORT"), out.stderr.strip()))
    recovery, addr = out.stdout.strip().split("|")
    return recovery == "t", addr


def dump(database, stamp):
    final = "%s-%s.dump" % (database, stamp)
    partial = os.path.join(DIR, "." + final + ".partial")
    sum_partial = os.path.join(DIR, "." + final + ".sha256.partial")
    in_recovery, addr = source_of(database)
    if not in_recovery:
        raise RuntimeError(
            "%s:%s reached %s, which is not a replica: the backup reads from replicas only"
            % (ENV.get("PGHOST"), ENV.get("PGPORT"), addr)
        )
    started = time.time()
    out = subprocess.run(
        [program("pg_dump"), "-Fc", "-d", database, "-f", partial], capture_output=True, text=True
    )
    if out.returncode != 0:
        if os.path.exists(partial):
            os.unlink(partial)
        raise RuntimeError("pg_dump %s failed: %s" % (database, out.stderr.strip()))
    fsync_path(partial)
    digest = sha256_of(partial)
    with open(sum_partial, "w") as f:
        f.write("%s  %s\n" % (digest, final))
        f.flush()
        os.fsync(f.fileno())
    os.rename(sum_partial, os.path.join(DIR, final + ".sha256"))
    os.rename(partial, os.path.join(DIR, final))
    fsync_path(DIR)
    return {
        "database": database,
        "file": final,
        "sha256": digest,
        "size": os.path.getsize(os.path.join(DIR, final)),
        "seconds": round(time.time() - started, 3),
        "source": addr,
        "source_in_recovery": in_recovery,
    }


def prune(database):
    dumps = sorted(n for n in os.listdir(DIR) if n.startswith(database + "-") and n.endswith(".dump"))
    for old in dumps[: max(0, len(dumps) - KEEP)]:
        log("retention: removing %s" % old)
        for name in (old, old + ".sha256"):
            try:
                os.unlink(os.path.join(DIR, name))
            except FileNotFoundError:
                pass


def run_once():
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    with state_lock:
        state["running"] = True
        state["last_attempt"] = now
    save_state()
    results = []
    try:
        for database in DATABASES:
            results.append(dump(database, stamp))
            prune(database)
    except Exception as e:  # reported in the state and the log, retried on schedule
        log("backup failed: %s" % e)
        with state_lock:
            state["running"] = False
            state["last_error"] = str(e)
            state["failures"] += 1
        save_state()
        return False
    with state_lock:
        state["running"] = False
        state["last_success"] = now
        state["last_error"] = None
        state["successes"] += 1
        state["last"] = results
    save_state()
    for r in results:
        log("backed up %s from %s into %s (%d bytes, sha256 %s)" % (
            r["database"], r["source"], r["file"], r["size"], r["sha256"]))
    return True


def metrics():
    with state_lock:
        s = dict(state)
    lines = [
        "# HELP pgha_backup_last_success_timestamp_seconds When the last complete backup started (0: none yet).",
        "# TYPE pgha_backup_last_success_timestamp_seconds gauge",
        "pgha_backup_last_success_timestamp_seconds %s" % (s["last_success"] or 0),
        "# HELP pgha_backup_last_attempt_timestamp_seconds When the last backup attempt started.",
        "# TYPE pgha_backup_last_attempt_timestamp_seconds gauge",
        "pgha_backup_last_attempt_timestamp_seconds %s" % (s["last_attempt"] or 0),
        "# HELP pgha_backup_schedule_seconds Seconds between two backups.",
        "# TYPE pgha_backup_schedule_seconds gauge",
        "pgha_backup_schedule_seconds %d" % s["schedule_seconds"],
        "# HELP pgha_backup_running 1 while a backup runs.",
        "# TYPE pgha_backup_running gauge",
        "pgha_backup_running %d" % (1 if s["running"] else 0),
        "# HELP pgha_backup_successes_total Complete backups.",
        "# TYPE pgha_backup_successes_total counter",
        "pgha_backup_successes_total %d" % s["successes"],
        "# HELP pgha_backup_failures_total Failed backups.",
        "# TYPE pgha_backup_failures_total counter",
        "pgha_backup_failures_total %d" % s["failures"],
        "# HELP pgha_backup_last_size_bytes Size of the last dump of each database.",
        "# TYPE pgha_backup_last_size_bytes gauge",
    ]
    for r in s["last"]:
        lines.append('pgha_backup_last_size_bytes{database="%s"} %d' % (r["database"], r["size"]))
    return "\n".join(lines) + "\n"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/metrics":
            body, kind = metrics().encode(), "text/plain; version=0.0.4"
        elif self.path == "/status":
            with state_lock:
                s = dict(state)
            s["now"] = time.time()
            body, kind = (json.dumps(s, sort_keys=True) + "\n").encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve():
    os.makedirs(DIR, exist_ok=True)
    clean_leftovers()
    load_state()
    with state_lock:
        state["running"] = False
    save_state()
    server = http.server.ThreadingHTTPServer((LISTEN, PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log("every %ds, keeping %d, databases %s, from %s:%s; status on %s:%d" % (
        EVERY, KEEP, ",".join(DATABASES), ENV.get("PGHOST"), ENV.get("PGPORT"), LISTEN, PORT))
    while not stop.is_set():
        last = state["last_attempt"] or 0
        wait = last + EVERY - time.time()
        if wait > 0 and stop.wait(wait):
            break
        run_once()
    server.shutdown()


def verify(path):
    with open(path + ".sha256") as f:
        want, name = f.read().split()
    if name != os.path.basename(path):
        sys.exit("%s.sha256 names %s, not %s" % (path, name, os.path.basename(path)))
    got = sha256_of(path)
    if got != want:
        sys.exit("%s: sha256 %s, but its .sha256 file says %s" % (path, got, want))
    print("%s: OK" % path)


def query(database, sql):
    out = subprocess.run([program("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit("cannot query %s at %s:%s: %s" % (database, ENV.get("PGHOST"), ENV.get("PGPORT"), out.stderr.strip()))
    return [line for line in out.stdout.splitlines() if line]


def toc_entry(line):
    """(description, schema, rest) of a `pg_restore --list` line, or None for comments."""
    if line.startswith(";") or "; " not in line:
        return None
    words = line.split("; ", 1)[1].split(" ")[2:]  # drop tableoid and oid
    text = " ".join(words)
    desc = next((d for d in MULTIWORD if text.startswith(d + " ")), words[0])
    rest = text[len(desc) + 1:].split(" ")
    return desc, rest[0], rest[1:]


def restore(path, database):
    """Restore what the dump holds beyond what the new cluster's bootstrap made.

    The new cluster (same image, same secrets) was bootstrapped: its roles,
    Supabase's schemas, the extensions and the ledger exist. From the dump
    are restored: every object of a schema the new database lacks (public's
    too), each schema, extension, event trigger and publication it lacks,
    and the rows of every table that is still empty there (auth's users,
    vault's secrets, pgsodium's keys, …). Tables the bootstrap seeded (its
    ledger, the services' migration tables) keep the new cluster's rows. All
    in one transaction: an error restores nothing.
    """
    verify(path)
    target = database
    if query(target, "SELECT pg_is_in_recovery()") != ["f"]:
        sys.exit("%s:%s is a replica: restore through the leader (HAProxy's rw port)" % (
            ENV.get("PGHOST"), ENV.get("PGPORT")))
    schemas = set(query(target, "SELECT nspname FROM pg_namespace"))
    extensions = set(query(target, "SELECT extname FROM pg_extension"))
    triggers = set(query(target, "SELECT evtname FROM pg_event_trigger"))
    publications = set(query(target, "SELECT pubname FROM pg_publication"))
    # Tables that hold rows in the new cluster: the bootstrap seeded them.
    filled = set(query(target, (
        "SELECT n.nspname || ' ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND (xpath('/row/n/text()', query_to_xml(format("
        "'SELECT count(*) AS n FROM (SELECT 1 FROM %I.%I LIMIT 1) x', n.nspname, c.relname), "
        "false, true, '')))[1]::text::int > 0")))
    listing = subprocess.run([program("pg_restore"), "--list", path], capture_output=True, text=True)
    if listing.returncode != 0:
        sys.exit("pg_restore --list %s: %s" % (path, listing.stderr.strip()))
    keep, skipped = [], []
    for line in listing.stdout.splitlines():
        entry = toc_entry(line)
        if entry is None:
            continue
        desc, schema, rest = entry
        name = rest[0] if rest else ""
        if schema == BOOTSTRAP_LEDGER:
            ok = False
        elif desc == "TABLE DATA":
            ok = ("%s %s" % (schema, name)) not in filled
        elif desc == "SEQUENCE SET":
            ok = True
        elif schema == "-":
            if desc == "SCHEMA":
                ok = name not in schemas
            elif desc == "EXTENSION":
                ok = name not in extensions
            elif desc == "COMMENT" and rest[:1] == ["EXTENSION"]:
                ok = rest[1] not in extensions
            elif desc == "EVENT TRIGGER":
                ok = name not in triggers
            elif desc == "PUBLICATION":
                ok = name not in publications
            else:
                ok = False
        else:
            ok = schema == "public" or schema not in schemas
        (keep if ok else skipped).append(line)
    fd, listfile = tempfile_in("/tmp")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(keep) + "\n")
    try:
        out = subprocess.run([program("pg_restore"), "--exit-on-error", "--single-transaction", "-d", target,
                              "-L", listfile, path], capture_output=True, text=True)
    finally:
        os.unlink(listfile)
    if out.returncode != 0:
        sys.exit("pg_restore failed (nothing was restored: one transaction): %s" % out.stderr.strip())
    log("restored %d entries of %s into %s at %s:%s; left %d to the new cluster's bootstrap" % (
        len(keep), os.path.basename(path), target, ENV.get("PGHOST"), ENV.get("PGPORT"), len(skipped)))


def tempfile_in(directory):
    import tempfile
    return tempfile.mkstemp(prefix="pgha-restore-", suffix=".list", dir=directory)


def main(argv):
    command = argv[1] if len(argv) > 1 else "serve"
    if command == "serve":
        serve()
    elif command == "once":
        os.makedirs(DIR, exist_ok=True)
        clean_leftovers()
        load_state()
        sys.exit(0 if run_once() else 1)
    elif command == "verify" and len(argv) == 3:
        verify(argv[2])
    elif command == "restore" and len(argv) in (3, 4):
        restore(argv[2], argv[3] if len(argv) == 4 else "postgres")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
