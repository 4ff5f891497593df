#!/usr/bin/env python3
"""The fault suite: drives a release build of rally over HTTP (loopback only) while it
breaks things, and checks that nothing acknowledged is lost and no mail goes out twice.

Scenarios (each bounded in time):
  sqlite-writes   many connections creating events and changing answers on SQLite
  kill-9          rally killed mid create load, restarted; every 201 exists, every mail once
  pg-restart      PostgreSQL restarted under load: fast 503s, then service without a restart
  pool-exhausted  more concurrent slow requests than connections: 503 after a bounded wait
  three-procs     three rally processes on one PostgreSQL: reads agree, each mail once

PostgreSQL scenarios run on a cluster of their own (port 5433) that this script creates
and drops, so restarting it disturbs nothing else. Run: tests/faults/run.sh
"""

import argparse
import concurrent.futures as futures
import email
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from aiosmtpd.controller import Controller

PASSWORD = "Xq7!mVz2pL-faults"
SECRET = "fault-suite-secret-fault-suite-secret-0123456789"
PG_VERSION = None  # found at start
PG_PORT = 5433
PG_CLUSTER = "rallyfaults"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- HTTP -----------------------------------------------------------------------------


def call(port, method, path, body=None, token=None, timeout=15.0):
    """One request; returns (status, parsed body or None, seconds). Status 0 = no answer."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return 0, None, time.monotonic() - started
    finally:
        conn.close()


class Tally:
    """Status counts per class, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"2xx": 0, "4xx": 0, "5xx": 0, "none": 0}
        self.max_latency = 0.0

    def add(self, status, seconds):
        key = "none" if status == 0 else f"{status // 100}xx"
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            self.max_latency = max(self.max_latency, seconds)

    @property
    def total(self):
        return sum(self.counts.values())


# --- SMTP sink --------------------------------------------------------------------------


class Sink:
    """An SMTP server that records each event mail's Message-ID and body."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.messages = []
        self.other = []
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content)
        part = msg.get_payload(decode=True) or b""
        with self.lock:
            # Only the organizers' "New event created" mails are accounted for; the
            # registrations' verification mails are not what these scenarios count.
            if msg.get("Subject") == "New event created":
                self.messages.append((msg.get("Message-ID"), part.decode("utf-8", "replace")))
            else:
                self.other.append(msg.get("Message-ID"))
        return "250 OK"

    def start(self):
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def ids(self):
        with self.lock:
            return [m[0] for m in self.messages]

    def event_ids(self):
        """The event id named in each mail body (`Id: …`)."""
        with self.lock:
            out = []
            for _, body in self.messages:
                for line in body.splitlines():
                    if line.startswith("Id: "):
                        out.append(line[4:].strip())
            return out

    def wait_for(self, n, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(self.ids()) < n:
            time.sleep(0.05)
        return len(self.ids())


# --- rally processes ------------------------------------------------------------------


class Rally:
    def __init__(self, binary, database_url, smtp_port, workdir, **env):
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.env = dict(
            os.environ,
            DATABASE_URL=database_url,
            RALLY_BIND=f"127.0.0.1:{self.port}",
            JWT_SECRET=SECRET,
            ACCESS_TOKEN_TTL="1h",
            SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
            MAIL_POLL_INTERVAL="200ms",
            MAIL_RETRY_BASE="200ms",
            MAIL_RETRY_CAP="1s",
            MAIL_MAX_ATTEMPTS="100",
            SMTP_TIMEOUT="3s",
            MAIL_CLAIM_LEASE="5s",
            DB_POOL_TIMEOUT="2s",
            RUST_LOG="warn",
        )
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc = None
        self.log = open(os.path.join(workdir, f"rally-{self.port}.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve"], env=self.env, cwd=self.workdir, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rally exited with {self.proc.returncode}; see {self.log.name}")
            if call(self.port, "GET", "/healthz", timeout=1)[0] == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError("rally did not answer /healthz within 20 s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        """SIGTERM; returns the exit code and the seconds it took."""
        if not self.alive():
            return self.proc.returncode if self.proc else None, 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "hung"
        return code, time.monotonic() - started


def register_and_login(port, name):
    status, _, _ = call(
        port, "POST", "/api/users/",
        {"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert status == 201, f"register {name}: {status}"
    status, body, _ = call(port, "POST", "/api/token/", {"username": name, "password": PASSWORD})
    assert status == 200, f"login {name}: {status}"
    return body["access"]


# --- PostgreSQL cluster ---------------------------------------------------------------


def pg(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def pg_cluster_up():
    global PG_VERSION
    PG_VERSION = sorted(os.listdir("/etc/postgresql"))[-1]
    pg("pg_dropcluster", "--stop", PG_VERSION, PG_CLUSTER, check=False)
    pg("pg_createcluster", PG_VERSION, PG_CLUSTER, "-p", str(PG_PORT), "--",
       "--auth-local=trust", "--auth-host=trust")
    pg_start()


def pg_start():
    pg("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, PG_CLUSTER, "start")
    wait_pg()


def pg_stop():
    pg("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, PG_CLUSTER, "stop", "-m", "fast")


def wait_pg():
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if pg("pg_isready", "-h", "127.0.0.1", "-p", str(PG_PORT), check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("the fault-suite PostgreSQL did not start")


def pg_cluster_down():
    if PG_VERSION:
        pg("pg_dropcluster", "--stop", PG_VERSION, PG_CLUSTER, check=False)


def pg_database():
    name = f"rally_faults_{uuid.uuid4().hex[:10]}"
    pg("psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-qc", f"CREATE DATABASE {name}")
    return name, f"postgres://postgres@127.0.0.1:{PG_PORT}/{name}"


# --- load helpers ---------------------------------------------------------------------


def run_for(seconds, threads, work, until=None, max_calls=None):
    """Calls work(i) in `threads` threads until `seconds` pass, `until` is set, or
    `max_calls` calls were made (bounds the mail each scenario has to wait for)."""
    stop = time.monotonic() + seconds
    until = until or threading.Event()
    calls = {"n": 0}
    lock = threading.Lock()

    def loop(i):
        while time.monotonic() < stop and not until.is_set():
            with lock:
                if max_calls is not None and calls["n"] >= max_calls:
                    return
                calls["n"] += 1
            work(i)

    with futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(loop, range(threads)))


def create_event(port, token, tally, acked, lock):
    name = f"ev-{uuid.uuid4().hex[:12]}"
    status, body, secs = call(port, "POST", "/api/events/", {"name": name, "date": "2026-12-01"}, token)
    tally.add(status, secs)
    if status == 201:
        with lock:
            acked.append(body["id"])


def found_events(port, ids):
    return sum(1 for i in ids if call(port, "GET", f"/api/events/{i}/")[0] == 200)


def count_all(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/events/?limit=1")
    resp = conn.getresponse()
    resp.read()
    return int(resp.getheader("X-Total-Count"))


# --- scenarios ------------------------------------------------------------------------


def sqlite_writes(ctx):
    sink = Sink(free_port()).start()
    rally = Rally(ctx.binary, os.path.join(ctx.tmp, "writes.sqlite3"), sink.port, ctx.tmp).start()
    tokens = [register_and_login(rally.port, f"w{i}") for i in range(6)]
    seed = []
    lock = threading.Lock()
    tally = Tally()
    for t in tokens:
        create_event(rally.port, t, Tally(), seed, lock)
    acked = []

    def work(i):
        token = tokens[i % len(tokens)]
        if random.random() < 0.6:
            create_event(rally.port, token, tally, acked, lock)
        else:
            target = random.choice(seed)
            status, _, secs = call(
                rally.port, "POST", f"/api/events/{target}/change_attendee_status/",
                {"status": random.choice(["Going", "Maybe", "Not Going"])}, token,
            )
            tally.add(status, secs)

    run_for(ctx.seconds, 16, work, max_calls=ctx.max_calls)
    found = found_events(rally.port, acked)
    expected_mails = len(acked) + len(seed)
    delivered = sink.wait_for(expected_mails, 60)
    time.sleep(0.5)
    ok = tally.counts["5xx"] == 0 and tally.counts["none"] == 0 and found == len(acked)
    ok = ok and len(sink.ids()) == expected_mails and len(set(sink.ids())) == expected_mails
    code, _ = rally.stop()
    sink.stop()
    return dict(tally=tally, acked=len(acked), found=found, mails=(expected_mails, delivered),
                ok=ok and code == 0, note=f"exit {code}")


def kill_9(ctx):
    smtp_port = free_port()
    path = os.path.join(ctx.tmp, "kill9.sqlite3")
    rally = Rally(ctx.binary, path, smtp_port, ctx.tmp).start()
    tokens = [register_and_login(rally.port, f"k{i}") for i in range(4)]
    acked, lock, tally = [], threading.Lock(), Tally()
    killed = threading.Event()

    def kill_soon():
        # Mid-load: after a share of the creates have been acknowledged.
        while len(acked) < ctx.max_calls // 3:
            time.sleep(0.01)
        rally.kill9()
        killed.set()

    killer = threading.Thread(target=kill_soon)
    killer.start()
    # The mail server is down while rally dies: every mail is still in the outbox.
    run_for(ctx.seconds * 3, 8, lambda i: create_event(rally.port, tokens[i % 4], tally, acked, lock),
            until=killed, max_calls=ctx.max_calls)
    killer.join()
    sink = Sink(smtp_port).start()
    rally2 = Rally(ctx.binary, path, smtp_port, ctx.tmp)
    rally2.port = rally.port
    rally2.env["RALLY_BIND"] = f"127.0.0.1:{rally.port}"
    rally2.start()
    found = found_events(rally2.port, acked)
    stored = count_all(rally2.port)
    delivered = sink.wait_for(stored, 60)
    time.sleep(1.0)
    ids = sink.ids()
    mailed_events = sink.event_ids()
    ok = (found == len(acked) and len(ids) == stored and len(set(ids)) == stored
          and len(set(mailed_events)) == stored and tally.counts["5xx"] == 0)
    code, _ = rally2.stop()
    sink.stop()
    return dict(tally=tally, acked=len(acked), found=found, mails=(stored, delivered), ok=ok and code == 0,
                note=f"{stored} events stored (acknowledged or not); restart exit {code}")


def pg_restart(ctx):
    _, url = pg_database()
    sink = Sink(free_port()).start()
    rally = Rally(ctx.binary, url, sink.port, ctx.tmp).start()
    token = register_and_login(rally.port, "pgr")
    acked, lock = [], threading.Lock()
    before, during, after = Tally(), Tally(), Tally()
    phase = {"now": before}
    outage = {}

    def work(i):
        t = phase["now"]
        if random.random() < 0.1:
            create_event(rally.port, token, t, acked, lock)
        else:
            status, _, secs = call(rally.port, "GET", "/api/events/", timeout=15)
            t.add(status, secs)
        time.sleep(0.01)

    def chaos():
        time.sleep(2)
        phase["now"] = during
        pg_stop()
        outage["down"] = time.monotonic()
        time.sleep(4)
        pg_start()
        outage["up"] = time.monotonic()
        # Service is back when a read succeeds again.
        while call(rally.port, "GET", "/api/events/?limit=1")[0] != 200:
            time.sleep(0.05)
        outage["recovered"] = time.monotonic() - outage["up"]
        phase["now"] = after

    chaos_thread = threading.Thread(target=chaos)
    chaos_thread.start()
    run_for(12, 6, work, max_calls=ctx.max_calls * 20)
    chaos_thread.join()
    found = found_events(rally.port, acked)
    stored = count_all(rally.port)
    delivered = sink.wait_for(stored + 0, 30)
    time.sleep(0.5)
    ids = sink.ids()
    alive = rally.alive()
    tally = Tally()
    for t in (before, during, after):
        for k, v in t.counts.items():
            tally.counts[k] += v
    tally.max_latency = max(before.max_latency, during.max_latency, after.max_latency)
    ok = (alive and before.counts["5xx"] == 0 and after.counts["5xx"] == 0
          and after.counts["2xx"] > 0 and during.max_latency < 8 and outage["recovered"] < 10
          and found == len(acked) and len(ids) == len(set(ids)) == stored)
    code, _ = rally.stop()
    sink.stop()
    return dict(tally=tally, acked=len(acked), found=found, mails=(stored, delivered), ok=ok and code == 0,
                note=(f"outage 503s: {during.counts['5xx']}, slowest call during outage "
                      f"{during.max_latency:.1f}s, recovered {outage['recovered']:.1f}s after restart"))


def pool_exhausted(ctx):
    name, url = pg_database()
    sink = Sink(free_port()).start()
    rally = Rally(ctx.binary, url, sink.port, ctx.tmp, DB_POOL_SIZE=4, DB_POOL_TIMEOUT="1s").start()
    token = register_and_login(rally.port, "pool")
    create_event(rally.port, token, Tally(), [], threading.Lock())
    # A session elsewhere holds the events table for 4 s: each list request holds a
    # pooled connection while it waits for the lock.
    locker = subprocess.Popen(
        ["psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-d", name, "-qc",
         "BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    tally = Tally()
    with futures.ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda _: call(rally.port, "GET", "/api/events/", timeout=20), range(24)))
    for status, _, secs in results:
        tally.add(status, secs)
    locker.wait(20)
    slow_503 = max((s for st, _, s in results if st == 503), default=0.0)
    after = call(rally.port, "GET", "/api/events/")[0]
    ok = (tally.counts["5xx"] > 0 and all(st in (200, 503) for st, _, _ in results)
          and slow_503 < 3.0 and tally.max_latency < 8 and after == 200 and rally.alive())
    code, _ = rally.stop()
    sink.stop()
    return dict(tally=tally, acked=0, found=0, mails=(0, 0), ok=ok and code == 0,
                note=f"slowest 503 {slow_503:.1f}s (pool 4, wait 1s); after the lock: {after}")


def three_procs(ctx):
    _, url = pg_database()
    sink = Sink(free_port()).start()
    procs = [Rally(ctx.binary, url, sink.port, ctx.tmp).start() for _ in range(3)]
    tokens = [register_and_login(procs[i].port, f"t{i}") for i in range(3)]
    acked, lock, tally = [], threading.Lock(), Tally()
    disagreements = []

    def work(i):
        writer = procs[i % 3]
        reader = procs[(i + 1) % 3]
        mine = []
        create_event(writer.port, tokens[i % 3], tally, mine, lock)
        for event_id in mine:
            with lock:
                acked.append(event_id)
            status, body, secs = call(reader.port, "GET", f"/api/events/{event_id}/")
            tally.add(status, secs)
            if status != 200:
                disagreements.append(event_id)
            status, _, secs = call(
                procs[(i + 2) % 3].port, "POST", f"/api/events/{event_id}/change_attendee_status/",
                {"status": "Going"}, tokens[(i + 2) % 3],
            )
            tally.add(status, secs)

    run_for(ctx.seconds, 9, work, max_calls=ctx.max_calls)
    # De-duplicate acked (each id was appended once per create).
    acked = list(dict.fromkeys(acked))
    found = sum(
        1 for i, event_id in enumerate(acked)
        if call(procs[i % 3].port, "GET", f"/api/events/{event_id}/")[0] == 200
    )
    stored = count_all(procs[0].port)
    delivered = sink.wait_for(stored, 30)
    time.sleep(1.0)
    ids = sink.ids()
    ok = (not disagreements and found == len(acked) and tally.counts["5xx"] == 0
          and len(ids) == stored and len(set(ids)) == stored)
    codes = [p.stop()[0] for p in procs]
    sink.stop()
    return dict(tally=tally, acked=len(acked), found=found, mails=(stored, delivered),
                ok=ok and codes == [0, 0, 0], note=f"read-after-write misses: {len(disagreements)}")


SCENARIOS = {
    "sqlite-writes": (sqlite_writes, False),
    "kill-9": (kill_9, False),
    "pg-restart": (pg_restart, True),
    "pool-exhausted": (pool_exhausted, True),
    "three-procs": (three_procs, True),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/rally")
    parser.add_argument("--seconds", type=float, default=5.0, help="load duration per scenario")
    parser.add_argument("--max-creates", type=int, default=1500,
                        help="create calls per scenario at most (each one is a mail to wait for)")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run only these")
    args = parser.parse_args()

    class Ctx:
        binary = os.path.abspath(args.binary)
        seconds = args.seconds
        max_calls = args.max_creates
        tmp = tempfile.mkdtemp(prefix="rally-faults-")

    names = args.only or list(SCENARIOS)
    needs_pg = any(SCENARIOS[n][1] for n in names)
    rows, failed = [], []
    try:
        if needs_pg:
            pg_cluster_up()
        for name in names:
            fn, _ = SCENARIOS[name]
            started = time.monotonic()
            try:
                row = fn(Ctx)
            except Exception as exc:  # a scenario that blows up is a failure, reported
                row = dict(tally=Tally(), acked=0, found=0, mails=(0, 0), ok=False, note=f"error: {exc!r}")
            row["name"], row["secs"] = name, time.monotonic() - started
            rows.append(row)
            if not row["ok"]:
                failed.append(name)
            print(f"{name}: {'ok' if row['ok'] else 'FAILED'} ({row['secs']:.1f}s) {row['note']}", flush=True)
    finally:
        pg_cluster_down()

    header = f"{'scenario':<15} {'requests':>8} {'2xx':>6} {'4xx':>5} {'5xx':>5} {'none':>5} " \
             f"{'acked':>6} {'found':>6} {'mails exp':>9} {'mails got':>9}  result"
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        t = r["tally"]
        print(f"{r['name']:<15} {t.total:>8} {t.counts['2xx']:>6} {t.counts['4xx']:>5} {t.counts['5xx']:>5} "
              f"{t.counts['none']:>5} {r['acked']:>6} {r['found']:>6} {r['mails'][0]:>9} {r['mails'][1]:>9}  "
              f"{'ok' if r['ok'] else 'FAILED'}")
    print()
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    if failed:
        print(f"logs in {Ctx.tmp}")
    else:
        shutil.rmtree(Ctx.tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
