"""Helpers for the dts transport system tests (NetFlow, Forward, IPC).

Dts runs the real `dts` daemon on a fresh config dir with a free /metrics
port and a private IPC directory; everything is stopped by PID.
"""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import binary, free_port, wait_for

METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def free_udp_port():
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dts:
    """A dts daemon owned by a test."""

    def __init__(self, tmp_path, ini_lines, update_ms=200, extra_args=()):
        self.dir = tmp_path
        self.extra_args = list(extra_args)
        self.conf = tmp_path / "config"
        self.conf.mkdir(exist_ok=True)
        self.ipc_dir = tmp_path / "ipc"
        self.port = free_port()
        self.log = tmp_path / "dts.log"
        text = [f"update={update_ms}",
                f"prometheus=http://127.0.0.1:{self.port}"] + list(ini_lines)
        (self.conf / "dts_config.ini").write_text("\n".join(text) + "\n")
        self.proc = None

    @property
    def socket_path(self):
        return str(self.ipc_dir / "dts.sock")

    def start(self):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(
            [binary("dts", "dts"), "--config-dir", str(self.conf),
             "--ipc-dir", str(self.ipc_dir), "--log-level", "debug"]
            + self.extra_args,
            stdout=self.logf, stderr=subprocess.STDOUT)
        wait_for(lambda: self.healthy(), timeout=30, what="dts /healthz")
        wait_for(lambda: os.path.exists(self.socket_path), timeout=10,
                 what="dts IPC socket")
        return self

    def healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"dts exited: {self.proc.returncode}\n"
                               + self.log.read_text())
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
            return r.status == 200

    def metrics_text(self, path="/metrics"):
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.read().decode()

    def metrics(self):
        """{(name, labels-text): value} of the current /metrics page."""
        out = {}
        for line in self.metrics_text().splitlines():
            m = METRIC_RE.match(line)
            if m:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
        return out

    def metric(self, name, labels=""):
        return self.metrics().get((name, labels))

    def wait_metric(self, name, pred, labels="", timeout=20):
        """Wait until pred(value) holds for the series; return the value."""
        def check():
            v = self.metric(name, labels)
            return v is not None and pred(v)
        wait_for(check, timeout=timeout, what=f"{name}{labels}")
        return self.metric(name, labels)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
            self.logf.close()
            return rc
        return self.proc.returncode if self.proc else None


def run_example(dts, *args, check=True):
    """Run dts-exporter-example against dts; return CompletedProcess."""
    cmd = [binary("dts", "dts-exporter-example"), "--socket",
           dts.socket_path] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed: {r.stdout}{r.stderr}")
    return r


def wait_file_text(path, needle, timeout=30):
    """Wait until a (log) file contains needle."""
    def check():
        return os.path.exists(path) and needle in open(path, errors="replace").read()
    wait_for(check, timeout=timeout, what=f"{needle!r} in {path}")


def terminate(proc, timeout=20):
    """SIGTERM a process we started and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port_closed_by_peer(sock, timeout=10):
    """True if the peer closed the connection (recv returns b'' or reset)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        if not data:
            return True
    return False
