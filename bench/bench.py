#!/usr/bin/env python3
"""rally vs the Django peer: one machine, one run, one table.

Started by bench/run.sh, which prepares what this needs (release binary, wrk, the
Django peer's virtualenv, MailDev, PostgreSQL) and passes it in the environment.
Standard library only, except the chart (matplotlib, from bench/run.sh's venv).

Stages:
  compare  rally on SQLite, rally on PostgreSQL and the Django peer (gunicorn, SQLite),
           each on a fresh database seeded over HTTP with the same data, then the same
           wrk phases against each: table, CSV, chart, memory, budget.
  growth   rally's list latency with 1k, 100k and 1M events (seeded by `rally seed`),
           default page / search / organizer / date range, on SQLite and PostgreSQL.
"""

import argparse
import concurrent.futures
import csv
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WRK_DIR = os.path.join(HERE, "wrk")

JWT_SECRET = "rally-bench-jwt-secret-0123456789abcdef0123456789"
PASSWORD = "Xq7!mVz2pL-bench"  # passes Django's validators, and rally's
ORGANIZERS = 20  # users who organize the events
USERS = 30  # all users: 30 distinct users are needed for 30 attendances on one event
EVENTS = 200
ATTENDANCES = 30
STATUSES = ["Going", "Maybe", "Not Going"]

# name, method, path (with {event}), wrk mode (None: plain GET)
PHASES = [
    ("list", "GET", "/api/events/", None),
    ("list_all", "GET", "/api/events/?limit=1000", None),
    ("detail", "GET", "/api/events/{event}/", None),
    ("create", "POST", "/api/events/", "create"),
    ("status", "POST", "/api/events/{event}/change_attendee_status/", "status"),
    ("token", "POST", "/api/token/", "token"),
]
PHASE_TITLES = {
    "list": "GET /api/events/ (default page)",
    "list_all": "GET /api/events/?limit=1000 (all 200, info)",
    "detail": "GET /api/events/{id}/ (30 attendances)",
    "create": "POST /api/events/",
    "status": "POST /api/events/{id}/change_attendee_status/",
    "token": "POST /api/token/ (argon2id vs PBKDF2)",
}
BACKENDS = [
    ("rally-sqlite", "rally, SQLite"),
    ("rally-postgres", "rally, PostgreSQL"),
    ("django", "Django, SQLite"),
]
GROWTH_QUERIES = [
    ("default", "/api/events/"),
    ("search", "/api/events/?search=rust%20berlin"),
    ("organizer", "/api/events/?organizer={organizer}"),
    ("date_range", "/api/events/?date_after=2025-03-01&date_before=2025-03-31"),
]

BUDGET = {
    "ratio": {"list": 30, "detail": 30, "status": 30, "create": 15},
    "p99_ms": {"list": 10, "detail": 10},
    "rss_mib": 64,
    "growth_p50_factor": 2,
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- HTTP, processes


def http(base, method, path, body=None, token=None, timeout=60):
    """One request; returns (status, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(status_body, want, what):
    status, body = status_body
    if status != want:
        raise RuntimeError(f"{what}: expected {want}, got {status}: {str(body)[:300]}")
    return body


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(base, path, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            if http(base, "GET", path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base}{path} did not answer within {seconds}s")


def stop(proc, seconds=15):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_status(pid):
    """VmRSS and VmHWM of a process, in KiB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        out[key] = int(m.group(1)) if m else 0
    return out


def proc_pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class MemoryWatch:
    """Polls the server's memory every 100 ms: rally's one process, or the gunicorn
    workers (the master's children) summed."""

    def __init__(self, pid, workers):
        self.pid, self.workers = pid, workers
        self.peak_rss = 0  # KiB: rally's VmRSS, or the workers' summed VmRSS
        self.peak_pss = 0  # KiB: workers' summed PSS (shared pages counted once)
        self.hwm = 0  # KiB: rally's VmHWM, or the sum of the workers' VmHWM
        self.worker_count = 0
        self.phase_peak = 0  # KiB: like peak_rss, since the last reset_phase()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self):
        if not self.workers:
            st = proc_status(self.pid)
            if st:
                self.peak_rss = max(self.peak_rss, st["VmRSS"])
                self.phase_peak = max(self.phase_peak, st["VmRSS"])
                self.hwm = max(self.hwm, st["VmHWM"])
            return
        pids = children(self.pid)
        stats = [(p, proc_status(p)) for p in pids]
        stats = [(p, s) for p, s in stats if s]
        self.worker_count = max(self.worker_count, len(stats))
        total = sum(s["VmRSS"] for _, s in stats)
        self.peak_rss = max(self.peak_rss, total)
        self.phase_peak = max(self.phase_peak, total)
        self.hwm = max(self.hwm, sum(s["VmHWM"] for _, s in stats))
        self._ticks = getattr(self, "_ticks", 0) + 1
        if self._ticks % 5 == 0:  # smaps_rollup is costlier to read
            self.peak_pss = max(self.peak_pss, sum(proc_pss(p) for p, _ in stats))

    def _run(self):
        while not self._stop.wait(0.1):
            self._sample()

    def finish(self):
        self._sample()
        self._stop.set()
        self._thread.join()


def cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def machine_busy(seconds=1.0):
    """Share of all cores busy over `seconds` (0..1): the servers are idle when this runs,
    so anything else is another program competing for the CPU."""
    t0, i0 = cpu_times()
    time.sleep(seconds)
    t1, i1 = cpu_times()
    return 1 - (i1 - i0) / max(1, t1 - t0)


OURS = ("rally", "wrk", "postgres", "gunicorn", "python", "node", "psql")
TICK = os.sysconf("SC_CLK_TCK")


def ours_cpu():
    """CPU seconds used so far by the long-lived processes of the benchmark (servers,
    PostgreSQL, MailDev), by pid."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        if comm.startswith(OURS):
            fields = raw[raw.rindex(")") + 2 :].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


class CpuWatch:
    """How much of the machine something other than the benchmark used during a phase:
    all busy time, minus the servers', PostgreSQL's, MailDev's and wrk's own."""

    def __init__(self):
        self.t0, self.i0 = cpu_times()
        self.ours0 = ours_cpu()

    def foreign_share(self, wrk_cpu):
        t1, i1 = cpu_times()
        ours1 = ours_cpu()
        busy = ((t1 - self.t0) - (i1 - self.i0)) / TICK
        total = (t1 - self.t0) / TICK
        ours = sum(v - self.ours0.get(pid, 0.0) for pid, v in ours1.items()) + wrk_cpu
        return max(0.0, busy - ours) / total if total else 0.0


def wait_quiet(args, what):
    """Waits (bounded) for other programs to leave the CPU alone; returns the busy share seen."""
    deadline = time.time() + args.quiet_timeout
    busy = machine_busy()
    while busy > args.quiet_threshold and time.time() < deadline:
        log(f"  machine {busy:.0%} busy before {what}: waiting for it to settle")
        time.sleep(5)
        busy = machine_busy()
    if busy > args.quiet_threshold:
        log(f"  WARNING: machine still {busy:.0%} busy before {what}; measuring anyway")
    return busy


# ---------------------------------------------------------------- servers


class Server:
    name = ""
    title = ""

    def __init__(self, args, out):
        self.args, self.out = args, out
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.memory = None

    def stop(self):
        if self.memory:
            self.memory.finish()
        stop(self.proc)


class Rally(Server):
    def __init__(self, args, out, name, title, database_url, extra_env=None):
        super().__init__(args, out)
        self.name, self.title, self.database_url = name, title, database_url
        self.extra_env = extra_env or {}

    def env(self):
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "RALLY_BIND": f"127.0.0.1:{self.port}",
                "JWT_SECRET": JWT_SECRET,
                "ACCESS_TOKEN_TTL": "1h",
                "SMTP_URL": f"smtp://127.0.0.1:{self.args.smtp_port}",
                # As the Django peer (gunicorn at warning, no access log): no line per request.
                "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn"),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self):
        logf = open(os.path.join(self.out, f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen(
            [self.args.rally, "serve"], env=self.env(), stdout=logf, stderr=logf
        )
        wait_http(self.base, "/healthz", self.proc)
        self.memory = MemoryWatch(self.proc.pid, workers=False)

    def mail_pending(self):
        r = subprocess.run(
            [self.args.rally, "mail", "status"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        m = re.search(r"^pending:\s+(\d+)", r.stdout, re.M)
        return int(m.group(1)) if m else None


class Django(Server):
    name, title = "django", "Django, SQLite"

    def start(self):
        env = dict(os.environ)
        for key in list(env):
            if key.startswith(("DATABASE_URL", "DB_POOL", "RALLY_")):
                env.pop(key)
        env.update(
            {
                "PEER_VENV": self.args.django_venv,
                "DJANGO_DATABASE_URL": os.path.join(self.out, "django.sqlite3"),
                "JWT_SECRET": JWT_SECRET,
                "ACCESS_TOKEN_TTL": "1h",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(self.args.smtp_port),
            }
        )
        logf = open(os.path.join(self.out, "django.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.args.django_dir, "run.sh"), str(self.port)],
            env=env,
            stdout=logf,
            stderr=logf,
        )
        wait_http(self.base, "/api/events/", self.proc, seconds=300)
        self.memory = MemoryWatch(self.proc.pid, workers=True)

    def mail_pending(self):
        return 0  # sent inline, in the request


# ---------------------------------------------------------------- seeding over HTTP


def seed_http(server, workers=8):
    """30 users (the first 20 organize), 200 events, 30 answers on the first event."""
    base = server.base
    names = [f"bench{i:02d}" for i in range(USERS)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda n: expect(
                    http(
                        base,
                        "POST",
                        "/api/users/",
                        {"username": n, "email": f"{n}@example.com", "password": PASSWORD},
                    ),
                    201,
                    f"register {n}",
                ),
                names,
            )
        )
        tokens = list(
            pool.map(
                lambda n: expect(
                    http(base, "POST", "/api/token/", {"username": n, "password": PASSWORD}),
                    200,
                    f"login {n}",
                )["access"],
                names,
            )
        )

        def create(i):
            day = datetime.date(2026, 1, 1) + datetime.timedelta(days=(i * 7) % 730)
            body = {"name": f"Seed event {i:03d} {STATUSES[i % 3]}", "date": day.isoformat()}
            return expect(
                http(base, "POST", "/api/events/", body, token=tokens[i % ORGANIZERS]),
                201,
                f"create event {i}",
            )["id"]

        event_ids = list(pool.map(create, range(EVENTS)))
        event = event_ids[0]
        list(
            pool.map(
                lambda i: expect(
                    http(
                        base,
                        "POST",
                        f"/api/events/{event}/change_attendee_status/",
                        {"status": STATUSES[i % 3]},
                        token=tokens[i],
                    ),
                    200,
                    f"answer {i}",
                ),
                range(ATTENDANCES),
            )
        )
    detail = expect(http(base, "GET", f"/api/events/{event}/"), 200, "detail")
    assert len(detail["attendances"]) == ATTENDANCES, detail
    return {"event": event, "tokens": tokens, "usernames": names}


# ---------------------------------------------------------------- wrk


def run_wrk(url, connections, seconds, mode=None, mode_args=(), threads=2, timeout_s=30):
    script = os.path.join(WRK_DIR, "post.lua" if mode else "get.lua")
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "-s",
        script,
        url,
    ]
    if mode:
        cmd += ["--", mode, *mode_args]
    before = os.times()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    after = os.times()
    wrk_cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    m = re.search(r"^BENCH_RESULT (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    res = json.loads(m.group(1))
    e = res["errors"]
    secs = res["duration_us"] / 1e6
    return {
        "rps": res["requests"] / secs if secs else 0.0,
        "requests": res["requests"],
        "p50_ms": res["latency_us"]["p50"] / 1000,
        "p90_ms": res["latency_us"]["p90"] / 1000,
        "p99_ms": res["latency_us"]["p99"] / 1000,
        "max_ms": res["latency_us"]["max"] / 1000,
        "non2xx": e["status"],
        "socket_errors": e["connect"] + e["read"] + e["write"] + e["timeout"],
        "mb": res["bytes"] / 1e6,
        "wrk_cpu_s": wrk_cpu,
    }


def run_phases(server, data, args):
    results = {}
    # Warm-up: connections opened, pools filled, code paged in.
    run_wrk(server.base + "/api/events/", args.connections, 2, threads=args.threads)
    for name, _method, path, mode in PHASES:
        if args.phases and name not in args.phases:
            continue
        url = server.base + path.format(event=data["event"])
        if mode == "token":
            mode_args = [PASSWORD, *data["usernames"]]
        elif mode:
            mode_args = data["tokens"]
        else:
            mode_args = []
        server.memory.phase_peak = 0
        r = measured(args, name, lambda: run_wrk(
            url, args.connections, args.duration, mode, mode_args, threads=args.threads))
        r["rss_mib"] = server.memory.phase_peak / 1024
        results[name] = r
        log(
            f"  {name:9s} {r['rps']:9.1f} req/s  p50 {r['p50_ms']:8.2f}  p90 {r['p90_ms']:8.2f}"
            f"  p99 {r['p99_ms']:8.2f} ms  non-2xx {r['non2xx']}  socket errors {r['socket_errors']}"
            f"  RSS {r['rss_mib']:.0f} MiB"
        )
        if name == "create":
            drain(server, args)
    return results


def measured(args, what, run):
    """Runs a measurement on a quiet machine; a run during which other programs took more
    than --foreign-limit of the CPU is thrown away and repeated (at most --retries times).
    Writes (create, status) are repeated too: the data they add is not read again."""
    for attempt in range(1 + args.retries):
        wait_quiet(args, what)
        watch = CpuWatch()
        r = run()
        r["foreign_cpu"] = watch.foreign_share(r["wrk_cpu_s"])
        if r["foreign_cpu"] <= args.foreign_limit:
            break
        log(f"  {what}: other programs took {r['foreign_cpu']:.0%} of the CPU during the run"
            + ("; again" if attempt < args.retries else "; keeping it, flagged"))
    return r


def drain(server, args):
    """Lets rally's mail sender finish the create phase's mail before the next phase, so
    that it does not run under (or borrow CPU from) the next measurement."""
    started = time.time()
    pending = server.mail_pending()
    while pending and time.time() - started < args.drain_timeout:
        time.sleep(2)
        pending = server.mail_pending()
    took = time.time() - started
    server.drain = {"pending_after": pending, "seconds": took}
    if pending is not None and server.name != "django":
        log(f"  outbox: {pending} mails pending after {took:.0f}s of draining")


# ---------------------------------------------------------------- PostgreSQL


def pg_admin(sql):
    subprocess.run(
        ["psql", args_global.pg_admin_url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        check=True,
        capture_output=True,
    )


def pg_url(db):
    """rally's URL for database `db`. TLS is off by default (BENCH_PG_SSLMODE): the server
    is on loopback, and libpq's default (prefer) encrypts every query there for nothing."""
    base = args_global.pg_admin_url.split("?", 1)[0].rsplit("/", 1)[0]
    return f"{base}/{db}?sslmode={os.environ.get('BENCH_PG_SSLMODE', 'disable')}"


class PgDatabases:
    def __init__(self):
        self.names = []

    def create(self, suffix=""):
        name = f"rally_bench_{secrets.token_hex(4)}{suffix}"
        pg_admin(f"CREATE DATABASE {name}")
        self.names.append(name)
        return name

    def drop_all(self):
        for name in self.names:
            try:
                pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except subprocess.CalledProcessError as e:
                log(f"could not drop {name}: {e.stderr}")
        self.names = []


# ---------------------------------------------------------------- stages


def compare(args, out, pgdbs):
    results, memory, drains = {}, {}, {}
    servers = []
    if "rally-sqlite" in args.backends:
        servers.append(
            Rally(args, out, "rally-sqlite", "rally, SQLite", os.path.join(out, "rally.sqlite3"))
        )
    if "rally-postgres" in args.backends:
        servers.append(
            Rally(args, out, "rally-postgres", "rally, PostgreSQL", pg_url(pgdbs.create()))
        )
    if "django" in args.backends:
        servers.append(Django(args, out))
    for server in servers:
        log(f"== {server.title} on 127.0.0.1:{server.port}")
        clear_maildev(args)
        try:
            server.start()
            t = time.time()
            data = seed_http(server)
            log(f"  seeded over HTTP in {time.time() - t:.1f}s")
            server.memory.peak_rss = server.memory.hwm = 0  # measure the load, not the seeding
            results[server.name] = run_phases(server, data, args)
            server.memory.finish()
            memory[server.name] = {
                "peak_rss_kib": server.memory.peak_rss,
                "hwm_kib": server.memory.hwm,
                "pss_kib": server.memory.peak_pss,
                "workers": server.memory.worker_count or 1,
            }
            drains[server.name] = getattr(server, "drain", None)
        finally:
            server.stop()
    return results, memory, drains


def clear_maildev(args):
    try:
        urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{args.maildev_web_port}/email/all", method="DELETE"
            ),
            timeout=30,
        ).read()
    except OSError as e:
        log(f"  (could not clear MailDev: {e})")


def total_count(url, seconds=120):
    """X-Total-Count of a list URL. A slow query's load (a substring search on SQLite
    scans the table) can leave requests queued after wrk stops; their 503s pass."""
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=seconds) as resp:
                return int(resp.headers.get("X-Total-Count", "0"))
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.time() > deadline:
                raise
            time.sleep(1)


def growth(args, out, pgdbs):
    """p50/p99 of four list queries at each size, for each backend."""
    rows = []
    sizes = args.growth_sizes
    targets = []
    if "rally-sqlite" in args.backends:
        targets.append(("rally-sqlite", os.path.join(out, "growth.sqlite3")))
    if "rally-postgres" in args.backends:
        targets.append(("rally-postgres", pg_url(pgdbs.create("_growth"))))
    for name, url in targets:
        have = 0
        for size in sizes:
            add = size - have
            env = dict(os.environ, DATABASE_URL=url, RUST_LOG="warn")
            t = time.time()
            cmd = [args.rally, "seed", "--events", str(add), "--users", "0" if have else str(args.growth_users)]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"rally seed failed: {r.stdout}{r.stderr}")
            log(f"== {name}: {size:,} events (+{add:,} seeded in {time.time() - t:.1f}s)")
            have = size
            server = Rally(args, out, f"growth-{name}", name, url)
            try:
                server.start()
                first = expect(http(server.base, "GET", "/api/events/?limit=1"), 200, "list")
                organizer = first[0]["organizer"]["id"]
                for qname, path in GROWTH_QUERIES:
                    path = path.format(organizer=organizer)
                    sep = "&" if "?" in path else "?"
                    matches = total_count(server.base + path + sep + "limit=1")
                    run_wrk(server.base + path, args.growth_connections, 1, threads=args.threads)
                    res = measured(args, f"{name} {qname}", lambda: run_wrk(
                        server.base + path,
                        args.growth_connections,
                        args.growth_duration,
                        threads=args.threads,
                    ))
                    rows.append(
                        {
                            "backend": name,
                            "events": size,
                            "query": qname,
                            "matches": matches,
                            "rps": res["rps"],
                            "p50_ms": res["p50_ms"],
                            "p99_ms": res["p99_ms"],
                            "non2xx": res["non2xx"],
                        }
                    )
                    log(
                        f"  {qname:10s} matches {matches:>9,}  {res['rps']:9.1f} req/s"
                        f"  p50 {res['p50_ms']:8.2f}  p99 {res['p99_ms']:8.2f} ms  non-2xx {res['non2xx']}"
                    )
            finally:
                server.stop()
    return rows


# ---------------------------------------------------------------- reporting


def fmt_ms(v):
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def ratio_of(results, backend, phase):
    d = results.get("django", {}).get(phase)
    r = results.get(backend, {}).get(phase)
    if not d or not r or not d["rps"]:
        return None
    return r["rps"] / d["rps"]


def table_markdown(results, memory):
    lines = [
        "| phase | backend | req/s | p50 ms | p90 ms | p99 ms | non-2xx | × Django |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for phase, *_ in PHASES:
        for backend, title in BACKENDS:
            r = results.get(backend, {}).get(phase)
            if not r:
                continue
            ratio = ratio_of(results, backend, phase) if backend != "django" else None
            lines.append(
                f"| {PHASE_TITLES[phase] if backend == first_backend(results, phase) else ''} "
                f"| {title} | {r['rps']:,.0f} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p90_ms'])} "
                f"| {fmt_ms(r['p99_ms'])} | {r['non2xx'] + r['socket_errors']} "
                f"| {f'{ratio:.1f}×' if ratio else ''} |"
            )
    if memory:
        lines.append("")
        lines.append("| memory under load | peak |")
        lines.append("|---|--:|")
        for backend, title in BACKENDS:
            m = memory.get(backend)
            if not m:
                continue
            if backend == "django":
                lines.append(
                    f"| {title}: {m['workers']} gunicorn workers, summed RSS "
                    f"(PSS {m['pss_kib'] / 1024:.0f} MiB) | {m['peak_rss_kib'] / 1024:.0f} MiB |"
                )
            else:
                lines.append(f"| {title}: the rally process (VmHWM) | {m['hwm_kib'] / 1024:.1f} MiB |")
    return "\n".join(lines)


def first_backend(results, phase):
    for backend, _ in BACKENDS:
        if phase in results.get(backend, {}):
            return backend
    return None


def growth_markdown(rows):
    if not rows:
        return ""
    sizes = sorted({r["events"] for r in rows})
    head = "| backend | query | " + " | ".join(f"{s:,} events p50 / p99 ms" for s in sizes) + " |"
    lines = [head, "|---|---|" + "--:|" * len(sizes)]
    for backend, title in BACKENDS:
        for qname, _ in GROWTH_QUERIES:
            cells = []
            for s in sizes:
                r = next(
                    (x for x in rows if x["backend"] == backend and x["query"] == qname and x["events"] == s),
                    None,
                )
                cells.append(f"{fmt_ms(r['p50_ms'])} / {fmt_ms(r['p99_ms'])}" if r else "")
            if any(cells):
                lines.append(f"| {title} | {qname} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def budget_lines(results, memory, growth_rows):
    out = []

    def line(ok, text):
        out.append(("PASS" if ok else "FAIL", text))

    for backend, title in BACKENDS[:2]:
        if backend not in results:
            continue
        for phase, need in BUDGET["ratio"].items():
            ratio = ratio_of(results, backend, phase)
            if ratio is not None:
                line(ratio >= need, f"{title}: {phase} {ratio:.1f}× Django (≥ {need}×)")
        for phase, limit in BUDGET["p99_ms"].items():
            r = results[backend].get(phase)
            if r:
                line(r["p99_ms"] <= limit, f"{title}: {phase} p99 {r['p99_ms']:.2f} ms (≤ {limit} ms)")
        m = memory.get(backend)
        if m:
            mib = m["hwm_kib"] / 1024
            line(mib <= BUDGET["rss_mib"], f"{title}: peak RSS {mib:.1f} MiB (≤ {BUDGET['rss_mib']} MiB)")
        tok = ratio_of(results, backend, "token")
        if tok is not None:
            out.append(("INFO", f"{title}: token {tok:.2f}× Django (argon2id m=19 MiB t=2 p=1 vs PBKDF2; no budget)"))
    for backend, title in BACKENDS[:2]:
        rows = [r for r in growth_rows if r["backend"] == backend and r["query"] == "default"]
        if len(rows) >= 2:
            lo = min(rows, key=lambda r: r["events"])
            hi = max(rows, key=lambda r: r["events"])
            f = hi["p50_ms"] / lo["p50_ms"] if lo["p50_ms"] else float("inf")
            line(
                f <= BUDGET["growth_p50_factor"],
                f"{title}: default page p50 {hi['p50_ms']:.2f} ms at {hi['events']:,} events = "
                f"{f:.2f}× its {lo['p50_ms']:.2f} ms at {lo['events']:,} (≤ {BUDGET['growth_p50_factor']}×)",
            )
    return out


def write_csv(path, results, memory, growth_rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["kind", "backend", "phase_or_query", "events", "rps", "p50_ms", "p90_ms", "p99_ms",
             "non2xx", "socket_errors", "ratio_vs_django", "peak_rss_mib", "matches"]
        )
        for backend, _ in BACKENDS:
            for phase, *_ in PHASES:
                r = results.get(backend, {}).get(phase)
                if not r:
                    continue
                ratio = ratio_of(results, backend, phase) if backend != "django" else None
                w.writerow(
                    ["phase", backend, phase, "", f"{r['rps']:.1f}", f"{r['p50_ms']:.3f}",
                     f"{r['p90_ms']:.3f}", f"{r['p99_ms']:.3f}", r["non2xx"], r["socket_errors"],
                     f"{ratio:.2f}" if ratio else "", "", ""]
                )
            m = memory.get(backend)
            if m:
                kib = m["peak_rss_kib"] if backend == "django" else m["hwm_kib"]
                w.writerow(["memory", backend, "", "", "", "", "", "", "", "", "", f"{kib / 1024:.1f}", ""])
        for r in growth_rows:
            w.writerow(
                ["growth", r["backend"], r["query"], r["events"], f"{r['rps']:.1f}",
                 f"{r['p50_ms']:.3f}", "", f"{r['p99_ms']:.3f}", r["non2xx"], "", "", "", r["matches"]]
            )


def draw_chart(path, results, memory, growth_rows):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no chart")
        return False
    phases = [p for p, *_ in PHASES if any(p in results.get(b, {}) for b, _ in BACKENDS)]
    backends = [(b, t) for b, t in BACKENDS if b in results]
    colors = {"rally-sqlite": "#c2410c", "rally-postgres": "#1d4ed8", "django": "#6b7280"}
    panels = 3 if growth_rows else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), dpi=80)
    width = 0.8 / max(1, len(backends))
    for ax, key, label in ((axes[0], "rps", "requests/s (log)"), (axes[1], "p99_ms", "p99 latency, ms (log)")):
        for i, (b, title) in enumerate(backends):
            vals = [results[b].get(p, {}).get(key, 0) or 0 for p in phases]
            xs = [x + (i - (len(backends) - 1) / 2) * width for x in range(len(phases))]
            ax.bar(xs, vals, width, label=title, color=colors[b])
            if key == "rps" and b != "django":
                for x, p in zip(xs, phases):
                    ratio = ratio_of(results, b, p)
                    if ratio:
                        ax.annotate(f"{ratio:.0f}×", (x, results[b][p]["rps"]), ha="center",
                                    va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                                    textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xticks(range(len(phases)))
        ax.set_xticklabels(phases, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title("requests/s (× Django over rally's bars)", fontsize=9)
    axes[1].axhline(BUDGET["p99_ms"]["list"], color="black", linestyle="--", linewidth=0.8)
    mem = " · ".join(
        f"{t} {(memory[b]['peak_rss_kib'] if b == 'django' else memory[b]['hwm_kib']) / 1024:.0f}"
        for b, t in backends
        if b in memory
    )
    axes[1].set_title(f"p99 (dashed: 10 ms budget)\npeak RSS MiB: {mem}", fontsize=8)
    if growth_rows:
        ax = axes[2]
        for b, title in BACKENDS[:2]:
            for qname, style in (("default", "-"), ("search", ":"), ("organizer", "--"), ("date_range", "-.")):
                rows = sorted(
                    (r for r in growth_rows if r["backend"] == b and r["query"] == qname),
                    key=lambda r: r["events"],
                )
                if rows:
                    ax.plot(
                        [r["events"] for r in rows],
                        [r["p50_ms"] for r in rows],
                        style,
                        marker="o",
                        color=colors[b],
                        label=f"{title.split(', ')[1]} {qname}",
                    )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events in the database", fontsize=9)
        ax.set_ylabel("list p50, ms (16 connections, log)", fontsize=9)
        ax.set_title("growth", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"rally vs Django, {os.cpu_count()} cores, wrk {args_global.connections} connections"
                 f" × {args_global.duration} s per phase", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- main


def main():
    global args_global
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default="compare,growth", help="compare,growth (default: both)")
    p.add_argument("--backends", default="rally-sqlite,rally-postgres,django")
    p.add_argument("--phases", default="", help="comma-separated subset of " + ",".join(x[0] for x in PHASES))
    p.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", 10)))
    p.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", 64)))
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_WRK_THREADS", 2)))
    p.add_argument("--drain-timeout", type=int, default=300,
                   help="seconds to let rally's mail sender finish the create phase's mail")
    p.add_argument("--quiet-threshold", type=float, default=0.15,
                   help="wait before a phase while other programs keep this share of the CPU busy")
    p.add_argument("--quiet-timeout", type=int, default=300)
    p.add_argument("--foreign-limit", type=float, default=0.05,
                   help="repeat a run during which other programs used more than this share of the CPU")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--growth-sizes", default=os.environ.get("BENCH_GROWTH_SIZES", "1000,100000,1000000"))
    p.add_argument("--growth-users", type=int, default=1000)
    p.add_argument("--growth-duration", type=int, default=int(os.environ.get("BENCH_GROWTH_DURATION", 5)))
    p.add_argument("--growth-connections", type=int, default=16)
    p.add_argument("--publish", action="store_true", help="also write bench/results.png and bench/results.md")
    args = p.parse_args()
    args.stages = [s for s in args.stages.split(",") if s]
    args.backends = [b for b in args.backends.split(",") if b]
    args.phases = [x for x in args.phases.split(",") if x]
    args.growth_sizes = [int(s) for s in args.growth_sizes.split(",") if s]
    args.rally = os.environ["RALLY_BIN"]
    args.django_dir = os.environ["DJANGO_PEER_DIR"]
    args.django_venv = os.environ["DJANGO_VENV"]
    args.smtp_port = int(os.environ.get("MAILDEV_SMTP", 1025))
    args.maildev_web_port = int(os.environ.get("MAILDEV_WEB", 1080))
    args.pg_admin_url = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    args_global = args

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(HERE, "out", stamp)
    os.makedirs(out, exist_ok=True)
    log(f"output: {out}")
    pgdbs = PgDatabases()
    results, memory, drains, growth_rows = {}, {}, {}, []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if "compare" in args.stages:
            results, memory, drains = compare(args, out, pgdbs)
        if "growth" in args.stages:
            growth_rows = growth(args, out, pgdbs)
    finally:
        pgdbs.drop_all()

    meta = {
        "when": stamp,
        "machine": f"{os.cpu_count()} cores, {platform_line()}",
        "wrk": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s",
        "rally_commit": git_rev(),
    }
    table = table_markdown(results, memory) if results else ""
    gtable = growth_markdown(growth_rows)
    budget = budget_lines(results, memory, growth_rows)
    report = [f"{meta['machine']}; {meta['wrk']}; rally {meta['rally_commit']}; {stamp}", ""]
    if table:
        report += [table, ""]
    if drains:
        for b, d in drains.items():
            if d and b != "django":
                report.append(
                    f"- {b}: outbox after the create phase drained in {d['seconds']:.0f} s"
                    + (f" ({d['pending_after']} still pending)" if d["pending_after"] else "")
                )
        report.append("")
    if gtable:
        report += ["Growth: list latency at 16 connections, "
                   f"{args.growth_duration} s per query", "", gtable, ""]
    if budget:
        report += ["Budget:", ""] + [f"- {s}: {t}" for s, t in budget] + [""]
    text = "\n".join(report)
    print(text)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "memory": memory, "drains": drains,
                   "growth": growth_rows, "budget": budget}, f, indent=1)
    csv_path = os.path.join(out, "results.csv")
    write_csv(csv_path, results, memory, growth_rows)
    png = os.path.join(out, "results.png")
    charted = draw_chart(png, results, memory, growth_rows)
    latest = os.path.join(HERE, "out", "latest")
    if os.path.islink(latest) or os.path.exists(latest):
        os.remove(latest)
    os.symlink(stamp, latest)
    log(f"\nwrote {csv_path}" + (f", {png}" if charted else ""))
    if args.publish:
        if charted:
            shutil.copy(png, os.path.join(HERE, "results.png"))
        shutil.copy(os.path.join(out, "results.md"), os.path.join(HERE, "results.md"))
        log("published bench/results.png and bench/results.md")


def platform_line():
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            return m.group(1).strip() if m else ""
    except OSError:
        return ""


def git_rev():
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return "?"


args_global = None

if __name__ == "__main__":
    main()
