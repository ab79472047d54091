"""Helpers the benchmark programs share: a process's CPU time from /proc,
a free loopback port, and a TLS context from a kubeconfig (its CA, and
its client certificate or token). Imported by the scripts beside it
(`python3 bench/NAME.py` puts this folder on sys.path)."""
import base64
import os
import shutil
import socket
import ssl
import tempfile

import yaml


def cpu_seconds(pid):
    """utime + stime of process pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
