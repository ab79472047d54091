"""Helpers the benchmark programs share: a process's and its threads' CPU
time, its children and its memory from /proc, a free loopback port, and
a TLS context from a kubeconfig (its CA, and its client certificate or
token). Imported by the scripts beside it (`python3 bench/NAME.py` puts
this folder on sys.path)."""
import base64
import os
import shutil
import socket
import ssl
import tempfile

import yaml


def proc_stat(path):
    """(name, fields after the name) of a /proc/PID/stat or
    /proc/PID/task/TID/stat file; fields[11] and [12] are utime and stime
    in clock ticks. OSError when the process is gone."""
    with open(path) as f:
        raw = f.read()
    return (raw[raw.index("(") + 1:raw.rindex(")")],
            raw.rsplit(")", 1)[1].split())


def _ticks_s(fields):
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of process pid (all its threads), in seconds."""
    return _ticks_s(proc_stat(f"/proc/{pid}/stat")[1])


def thread_cpu(pid):
    """{thread name: cpu seconds} of pid's live threads, summed by name."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            name, fields = proc_stat(f"/proc/{pid}/task/{t}/stat")
        except OSError:
            continue
        out[name] = out.get(name, 0) + _ticks_s(fields)
    return out


def children(pid):
    """The pids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fields = proc_stat(f"/proc/{d}/stat")[1]
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def proc_status(pid):
    """/proc/PID/status as {field: text}: "VmRSS" -> "1234 kB"."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def status_kb(status, key):
    """A /proc/PID/status size (or count) as an int; 0 when absent."""
    v = status.get(key)
    return int(v.split()[0]) if v else 0


def proc_kb(pid, key):
    """One /proc/PID/status size (or count) of pid: proc_kb(pid, "VmRSS")."""
    return status_kb(proc_status(pid), key)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubeconfig_tls(kubeconfig_text, ca_file=None):
    """(server URL, ssl context, headers) for the kubeconfig's first
    cluster and user: its CA (or ca_file, or the system's), its client
    certificate and key, or its bearer token. Host names are not
    checked (the servers here are reached by address)."""
    k = yaml.safe_load(kubeconfig_text)
    cl = k["clusters"][0]["cluster"]
    user = k["users"][0]["user"]
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file \
        else ssl.create_default_context()
    if "certificate-authority-data" in cl:
        ctx.load_verify_locations(cadata=base64.b64decode(
            cl["certificate-authority-data"]).decode())
    ctx.check_hostname = False
    headers = {"Content-Type": "application/json"}
    if "token" in user:
        headers["Authorization"] = "Bearer " + user["token"]
    if "client-certificate-data" in user:
        d = tempfile.mkdtemp(prefix="dpf-bench-cert-")
        try:
            cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            with open(cert, "wb") as f:
                f.write(base64.b64decode(user["client-certificate-data"]))
            with open(key, "wb") as f:
                f.write(base64.b64decode(user["client-key-data"]))
            ctx.load_cert_chain(cert, key)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return cl["server"], ctx, headers
