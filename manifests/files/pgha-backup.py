#!/usr/bin/env python3
"""pgha-backup: the backup service of a deployment rendered by `pgha-image manifests`.

    pgha-backup.py [serve]        every BACKUP_EVERY seconds, pg_dump each of
                                  BACKUP_DATABASES from a replica (PGHOST:PGPORT,
                                  HAProxy's read-only port) into BACKUP_DIR
    pgha-backup.py once           one backup now, then exit (0 ok, 1 failed)
    pgha-backup.py verify FILE    check FILE against its FILE.sha256

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
DIR = ENV.get("BACKUP_DIR", "/backups")
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
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
