"""Hardening of the store and of start-up, attacked with the real dpf-server:

* a damaged store (truncated to 0 bytes, deleted, meta revision rolled
  back, bytes flipped) is refused at start, or repaired where that is safe
  (revisions never go backwards), and /readyz reports run-time damage;
* a second server on the same data directory stops without touching it;
* no create is acknowledged before the fsync that covers it (strace);
* the storage quota refuses creates and updates but lets deletes through,
  and a real full disk (a small tmpfs) still lets DELETE free space;
* the data directory is 0700 and the store's files 0600 whatever the umask.

Every server a test starts is stopped by PID; mounts are removed.
"""
import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import time

import pytest

import conftest
from apiutil import call, configmap, path
from conftest import DpfServer, binary, free_port, wait_for


def server_cmd(data_dir, *extra, port=0):
    return [binary("dpf-server", "dpf-server"), "--data-dir", str(data_dir),
            "--bind-address", "127.0.0.1", "--port", str(port),
            "--log-level", "info"] + list(extra)


def run_refused(data_dir, *extra, timeout=60):
    """Start dpf-server expecting it to refuse; returns its output."""
    p = subprocess.run(server_cmd(data_dir, *extra), capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert p.returncode != 0, f"dpf-server started:\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr


# A refused start held the data directory's lock for a moment and wrote its
# PID into the lock file: that file is the lock's, not the server's state.
LOCK = {"dpf-server.lock"}


def tree_state(root, skip=()):
    """{relative path: (mode, size, mtime_ns, sha256)} of every file."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            if rel in skip:
                continue
            st = os.stat(p)
            with open(p, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            out[rel] = (stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns,
                        digest)
    return out


class Server(DpfServer):
    """A DpfServer whose log lives outside the data directory (so the
    directory holds only what the server writes) and that can run under a
    wrapper such as strace."""

    def __init__(self, data_dir, log, extra_args=(), wrapper=(), exe=None):
        super().__init__(str(data_dir), extra_args=extra_args)
        self.log = str(log)
        self.wrapper = list(wrapper)
        self.exe = exe

    def start(self, timeout=60.0):
        assert self.proc is None or self.proc.poll() is not None
        if os.path.exists(self.kubeconfig):
            os.unlink(self.kubeconfig)
        cmd = server_cmd(self.data_dir, "--kubeconfig-out", self.kubeconfig,
                         *self.extra_args, port=self.port)
        if self.exe:
            cmd[0] = self.exe
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.wrapper + cmd, stdout=logf,
                                     stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"dpf-server exited {self.proc.returncode}"
                                   f": {self.log_text()[-3000:]}")
            return os.path.exists(self.kubeconfig)
        wait_for(ready, timeout, what="dpf-server kubeconfig")
        self._load_kubeconfig()
        wait_for(lambda: self.request("GET", "/readyz", auth=False)[0] == 200,
                 timeout, what="dpf-server /readyz")
        return self

    @property
    def pid(self):
        """The server's own PID: under a wrapper, the one the server wrote
        into its data directory's lock file."""
        if not self.wrapper:
            return super().pid
        with open(os.path.join(self.data_dir, "dpf-server.lock")) as f:
            return int(f.read().split()[0])

    def stop(self, timeout=20):
        """SIGTERM the server itself (a wrapper such as strace would only
        detach); the wrapper exits with the server's status."""
        if not self.wrapper or not self.proc or self.proc.poll() is not None:
            return super().stop(timeout)
        server_pid = self.pid
        os.kill(server_pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(server_pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def servers(tmp_path):
    """Factory: servers(data_dir=None, *args) -> started Server; all are
    stopped at teardown and must have exited cleanly."""
    started = []

    def make(data_dir=None, *extra, wrapper=(), exe=None):
        data_dir = data_dir or tmp_path / "data"
        n = len(started)
        srv = Server(data_dir, tmp_path / f"server-{n}.log", extra, wrapper,
                     exe)
        started.append(srv)
        return srv.start()
    yield make
    for srv in started:
        code = srv.stop()
        assert code in (0, -signal.SIGKILL, None), \
            f"dpf-server exited with {code}:\n{srv.log_text()[-3000:]}"


def fill(srv, n, prefix="obj", size=64):
    """Create n ConfigMaps; returns {name: resourceVersion}."""
    out = {}
    for i in range(n):
        name = f"{prefix}-{i:04d}"
        st, o = call(srv, "POST", path("configmaps"),
                     configmap(name, {"v": f"{i}:" + "x" * size}))
        assert st == 201, o
        out[name] = int(o["metadata"]["resourceVersion"])
    return out


def names(srv):
    st, lst = call(srv, "GET", path("configmaps"))
    assert st == 200, lst
    return {i["metadata"]["name"] for i in lst["items"]}


def readyz(srv):
    st, _, body = srv.request("GET", "/readyz?verbose", auth=False)
    return st, body.decode()


# ---------------------------------------------------------------- item 5


def test_truncated_store_is_refused(servers, tmp_path):
    data = tmp_path / "data"
    srv = servers(data)
    fill(srv, 5)
    assert srv.stop() == 0
    db = data / "state.db"
    os.truncate(db, 0)
    before = tree_state(data, skip=LOCK)

    out = run_refused(data)
    assert str(db) in out
    assert "empty" in out and "--init-store" in out
    # The refused start changed nothing: no new empty store, no kubeconfig.
    assert tree_state(data, skip=LOCK) == before
    assert os.path.getsize(db) == 0

    # The operator's explicit choice: start over with an empty store.
    srv.extra_args = ["--init-store"]
    srv.start()
    assert not any(n.startswith("obj-") for n in names(srv))


def test_deleted_store_is_refused(servers, tmp_path):
    data = tmp_path / "data"
    srv = servers(data)
    fill(srv, 3)
    assert srv.stop() == 0
    db = data / "state.db"
    os.unlink(db)
    before = tree_state(data, skip=LOCK)

    out = run_refused(data)
    assert str(db) in out and "does not exist" in out
    assert "--init-store" in out and "backup" in out
    assert not db.exists()
    assert tree_state(data, skip=LOCK) == before


def test_init_store_never_erases_a_store(servers, tmp_path):
    data = tmp_path / "data"
    srv = servers(data)
    made = fill(srv, 3)
    assert srv.stop() == 0
    srv.extra_args = ["--init-store"]
    srv.start()
    assert set(made) <= names(srv)


def test_new_data_dir_needs_no_flag_and_help_documents_it(servers, tmp_path):
    # A brand-new directory (even one holding an unrelated file) counts as
    # "initialise": that is how every fixture starts.
    data = tmp_path / "fresh"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    srv = servers(data)
    assert names(srv) == set()
    out = subprocess.run([binary("dpf-server", "dpf-server"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--init-store" in out and "--quota-backend-bytes" in out
    assert "sync=normal" in out
    bad = subprocess.run(server_cmd(tmp_path / "other",
                                    "--quota-backend-bytes", "lots"),
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert "--quota-backend-bytes" in bad.stderr and "lots" in bad.stderr
    assert not (tmp_path / "other").exists()


def test_rolled_back_meta_revision_does_not_go_backwards(servers, tmp_path):
    data = tmp_path / "data"
    srv = servers(data)
    made = fill(srv, 30)
    top = max(made.values())
    assert srv.stop() == 0
    db = sqlite3.connect(data / "state.db")
    db.execute("UPDATE meta SET v = 2 WHERE k = 'rv'")
    db.commit()
    db.close()

    srv.start()
    assert "store revision was behind its objects" in srv.log_text()
    st, lst = call(srv, "GET", path("configmaps"))
    assert int(lst["metadata"]["resourceVersion"]) >= top
    st, o = call(srv, "POST", path("configmaps"), configmap("after"))
    assert st == 201, o
    assert int(o["metadata"]["resourceVersion"]) > top
    st, o = call(srv, "PUT", path("configmaps", "obj-0000"),
                 dict(configmap("obj-0000", {"v": "new"}),
                      metadata={"name": "obj-0000", "namespace": "default"}))
    assert st == 200, o
    assert int(o["metadata"]["resourceVersion"]) > top


def flip_middle_pages(db_path, pages=3):
    """XOR 64 bytes at the start of the middle pages of the file (page
    headers: a b-tree page among them is certain)."""
    page = 4096
    n = os.path.getsize(db_path) // page
    assert n >= 8, f"database too small to damage ({n} pages)"
    with open(db_path, "r+b") as f:
        for p in range(n // 2 - pages // 2, n // 2 - pages // 2 + pages):
            f.seek(p * page)
            chunk = f.read(64)
            f.seek(p * page)
            f.write(bytes(b ^ 0xFF for b in chunk))


def test_flipped_bytes_are_refused_at_start(servers, tmp_path):
    data = tmp_path / "data"
    srv = servers(data)
    fill(srv, 300, size=1000)
    assert srv.stop() == 0
    db = data / "state.db"
    flip_middle_pages(db)
    before = tree_state(data, skip=LOCK)

    out = run_refused(data)
    assert str(db) in out
    assert "damaged" in out and "integrity_check" in out
    assert "backup" in out
    assert tree_state(data, skip=LOCK) == before


def test_readyz_fails_after_runtime_damage(servers, tmp_path):
    data = tmp_path / "data"
    srv = servers(data)
    fill(srv, 300, size=1000)
    assert srv.stop() == 0  # the WAL is copied into state.db
    srv.start()
    st, body = readyz(srv)
    assert st == 200 and "[+]store ok" in body, body

    flip_middle_pages(data / "state.db")
    # A write makes the readers drop their page caches, as any write
    # would. Lists are served from the watch cache's in-memory index, so
    # the damage shows on a read of the file: a GET of an object whose
    # row sits on a damaged page.
    st, o = call(srv, "POST", path("configmaps"), configmap("zz-last"))
    assert st == 201, o
    failed = None
    for i in range(300):
        st, o = call(srv, "GET", path("configmaps") + f"/obj-{i:04d}")
        if st != 200:
            failed = (st, o)
            break
    assert failed, "no GET read a damaged page"
    assert failed[0] == 500 and "malformed" in json.dumps(failed[1]), failed
    st, body = readyz(srv)
    assert st == 503, body
    assert "[-]store failed: database disk image is malformed" in body
    st, _, plain = srv.request("GET", "/readyz", auth=False)
    assert st == 503 and b"readyz check failed" in plain
    # liveness is not readiness: the process itself is fine
    assert srv.request("GET", "/livez", auth=False)[0] == 200


def test_readyz_fails_when_the_store_file_is_removed(servers, tmp_path):
    data = tmp_path / "data"
    srv = servers(data)
    fill(srv, 2)
    assert readyz(srv)[0] == 200
    os.rename(data / "state.db", tmp_path / "moved.db")
    st, body = readyz(srv)
    assert st == 503, body
    assert "[-]store failed: the database file is gone" in body
    os.rename(tmp_path / "moved.db", data / "state.db")
    assert readyz(srv)[0] == 200


# ---------------------------------------------------------------- item 6


def test_second_server_on_same_data_dir_touches_nothing(servers, tmp_path):
    data = tmp_path / "data"
    first = servers(data)
    fill(first, 2)
    with open(first.kubeconfig, "rb") as f:
        kubeconfig = f.read()
    before = tree_state(data, skip={"state.db", "state.db-wal",
                                    "state.db-shm"})

    p = subprocess.run(server_cmd(data, port=free_port()), capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert str(data) in out
    assert f"holder_pid={first.pid}" in out
    assert "in use by another dpf-server" in out

    with open(first.kubeconfig, "rb") as f:
        assert f.read() == kubeconfig
    assert tree_state(data, skip={"state.db", "state.db-wal",
                                  "state.db-shm"}) == before
    # the first server's users keep their access through the kubeconfig
    r = conftest.kubectl(["get", "configmaps", "-o", "name"],
                         first.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert "configmap/obj-0001" in r.stdout


# ---------------------------------------------------------------- item 7


def release_or_asan_server():
    exe = os.path.join(conftest.BUILD_RELEASE, "dpf-server", "dpf-server")
    return exe if os.path.exists(exe) else None


LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((\d+)<([^>]*)>(.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>")


def parse_strace(text):
    """Events in the order strace saw them: dicts with name, fd path,
    start and end (line numbers), and the call's text (for data)."""
    events, pending = [], {}
    for i, raw in enumerate(text.splitlines()):
        m = LINE.match(raw)
        if not m:
            continue
        pid, rest = m.group(1), m.group(3)
        r = RESUMED.match(rest)
        if r:
            ev = pending.pop((pid, r.group(1)), None)
            if ev:
                ev["end"] = i
                ev["text"] += rest
            continue
        c = CALL.match(rest)
        if not c:
            continue
        ev = {"name": c.group(1), "fd": c.group(3), "start": i, "end": i,
              "text": rest}
        events.append(ev)
        if rest.endswith("<unfinished ...>"):
            pending[(pid, c.group(1))] = ev
    return events


SENDS = {"sendto", "sendmsg", "write", "writev"}
SYNCS = {"fsync", "fdatasync"}


def unsynced_acks(events, creates):
    """Names (of {name: client port}) whose response was sent before an
    fsync of the WAL that started after the WAL write holding the object
    had completed."""
    bad = []
    for name, port in creates.items():
        wal = [e for e in events if e["name"].startswith("pwrite")
               and e["fd"].endswith("state.db-wal") and name in e["text"]]
        assert wal, f"no WAL write holds {name}"
        w = wal[0]
        # the response: the first bytes sent on that client's connection
        sends = [e for e in events if e["name"] in SENDS
                 and e["fd"].startswith("TCP")
                 and f"127.0.0.1:{port}]" in e["text"].split(",")[0]
                 and e["start"] > w["end"]]
        assert sends, f"no response after the WAL write of {name}"
        resp = sends[0]
        covered = any(e["name"] in SYNCS and e["fd"].endswith("state.db-wal")
                      and e["start"] > w["end"] and e["end"] < resp["start"]
                      for e in events)
        if not covered:
            bad.append(name)
    return bad


def traced_creates(servers, tmp_path, extra):
    trace = tmp_path / "strace.txt"
    wrapper = ["strace", "-f", "-ttt", "-yy", "-s", "8192", "-o", str(trace),
               "-e", "trace=pwrite64,pwritev,write,writev,sendto,sendmsg,"
               "fsync,fdatasync"]
    srv = servers(tmp_path / "data", *extra, wrapper=wrapper,
                  exe=release_or_asan_server())
    made = {}
    for i in range(12):
        name = f"durable-{i:03d}"
        conn = srv.connection()
        conn.connect()
        port = conn.sock.getsockname()[1]
        conn.request("POST", path("configmaps"),
                     body=json.dumps(configmap(name)),
                     headers={"Content-Type": "application/json",
                              "Authorization": "Bearer " + srv.token})
        resp = conn.getresponse()
        assert resp.status == 201, resp.read()
        resp.read()
        conn.close()
        made[name] = port
    srv.stop()
    return parse_strace(trace.read_text(errors="replace")), made


def test_no_create_is_acknowledged_before_its_fsync(servers, tmp_path):
    events, made = traced_creates(servers, tmp_path, ())
    assert unsynced_acks(events, made) == []


def test_fsync_check_catches_sync_normal(servers, tmp_path):
    # The same check against the unsafe, explicitly chosen mode: every
    # create is acknowledged without an fsync, and the check says so.
    url = f"sqlite:{tmp_path / 'data' / 'state.db'}?sync=normal"
    events, made = traced_creates(servers, tmp_path, ("--store", url))
    assert unsynced_acks(events, made) == list(made)


# ---------------------------------------------------------------- item 8


def big_configmap(name, kb=200):
    return configmap(name, {"blob": "q" * (kb * 1024)})


def test_quota_refuses_writes_lets_deletes_through(servers, tmp_path):
    quota = 4 * 1024 * 1024
    srv = servers(None, "--quota-backend-bytes", str(quota))
    made = []
    refused = None
    for i in range(60):
        st, o = call(srv, "POST", path("configmaps"), big_configmap(f"b{i}"))
        if st != 201:
            refused = (st, o)
            break
        made.append(f"b{i}")
    assert refused, "the quota never refused a create"
    st, o = refused
    assert st == 507, o
    assert o["reason"] == "InsufficientStorage"
    assert "database space exceeded" in o["message"]
    assert "--quota-backend-bytes" in o["message"]
    assert str(quota) in o["message"]
    assert len(made) >= 5
    # an update that grows an object is refused the same way
    st, o = call(srv, "PUT", path("configmaps", made[0]),
                 big_configmap(made[0], kb=400))
    assert st == 507 and "--quota-backend-bytes" in o["message"], o
    assert "quota alarm raised" in srv.log_text()
    # deletes pass and free space
    for name in made[:3]:
        st, o = call(srv, "DELETE", path("configmaps", name))
        assert st == 200, o
    assert readyz(srv)[0] == 200
    # the alarm clears: creates work again
    st, o = call(srv, "POST", path("configmaps"), big_configmap("again"))
    assert st == 201, o
    assert "quota alarm cleared" in srv.log_text()


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700",
                    "tmpfs", str(mnt)], check=True)
    yield mnt
    if subprocess.run(["umount", str(mnt)]).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_disk(mnt):
    """Write a filler file until the filesystem is full."""
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 64 << 10, 4 << 10, 512):
            block = b"\0" * size
            while True:
                try:
                    f.write(block)
                except OSError:
                    break
    return filler


def test_disk_full_delete_still_works(small_disk, servers):
    # (small_disk first: its unmount runs after the servers are stopped)
    data = small_disk / "data"
    srv = servers(data)
    made = []
    for i in range(6):
        st, o = call(srv, "POST", path("configmaps"),
                      big_configmap(f"d{i}", kb=300))
        assert st == 201, o
        made.append(f"d{i}")
    filler = fill_disk(small_disk)

    st, o = call(srv, "POST", path("configmaps"), big_configmap("nope", 300))
    assert st == 507, o
    assert "disk is full" in o["message"] and "deletes still work" in \
        o["message"]
    # DELETE frees objects although the disk is full
    st, o = call(srv, "DELETE", path("configmaps", made[0]))
    assert st == 200, o
    st, o = call(srv, "GET", path("configmaps", made[0]))
    assert st == 404, o
    st, o = call(srv, "DELETE", path("configmaps", made[1]))
    assert st == 200, o
    assert readyz(srv)[0] == 200
    # space back on the disk: creates resume
    os.unlink(filler)
    st, o = call(srv, "POST", path("configmaps"), big_configmap("back", 300))
    assert st == 201, o
    assert made[2] in names(srv)


# ---------------------------------------------------------------- item 10


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_modes_private_under_umask_022(servers, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    old = os.umask(0o022)
    try:
        srv = servers(data)
        fill(srv, 2)
        files = ["state.db", "state.db-wal", "state.db-shm", "dpf-server.lock",
                 "admin.token", "admin.kubeconfig", "pki/ca.key",
                 "pki/server.key", "pki/admin.key"]
        for f in files:
            assert mode(data / f) == 0o600, f"{f}: {oct(mode(data / f))}"
        assert mode(data) == 0o700
        assert mode(data / "pki") == 0o700
        # nothing but the public certificates is readable by others (and
        # the 0700 directories keep even those to the owner)
        for d, _, fs in os.walk(data):
            for f in fs:
                if not f.endswith(".crt"):
                    assert not mode(os.path.join(d, f)) & 0o077, f
        assert srv.stop() == 0

        # an older server's loose modes are tightened on the next start
        os.chmod(data, 0o755)
        os.chmod(data / "pki", 0o755)
        os.chmod(data / "state.db", 0o644)
        srv.start()
        assert mode(data) == 0o700
        assert mode(data / "pki") == 0o700
        assert mode(data / "state.db") == 0o600
        assert mode(data / "state.db-wal") == 0o600
    finally:
        os.umask(old)
