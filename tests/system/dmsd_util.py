"""Helpers for the dmsd tests: a CA with server and client certificates
(openssl), the gNMI/gNOI Python client generated from lib/gnmi/proto with
Debian's grpc_tools at test time, and a dmsd process started and stopped by
PID."""
import json
import os
import select
import signal
import subprocess
import sys
import time

import shutil

from conftest import REPO, DpfServer, binary, free_port


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out",
            f"{name}.crt", cwd=d)


def make_cert(d, ca, name, cn, server=False, ip="127.0.0.1"):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        if server:
            f.write(f"subjectAltName=IP:{ip},DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt",
            "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", f"{name}.crt", cwd=d)


def control_plane_ca(d):
    """Start dpf-server once on a fresh data directory so that it creates
    the control plane's CA (its PKI bootstrap), and copy that CA's
    certificate and key into d as ca.crt / ca.key."""
    data = os.path.join(d, "dpf-server")
    os.makedirs(data)
    srv = DpfServer(data)
    try:
        srv.start()
    finally:
        srv.stop()
    for f in ("ca.crt", "ca.key"):
        shutil.copy(os.path.join(data, "pki", f), os.path.join(d, f))


def make_pki(d, control_plane=False):
    """The control plane's CA ("ca": dpf-server's own CA when control_plane
    is true, else a fresh one), the DMS server certificate, DPF's client
    certificate, a client the -allowed_users list does not name, and a
    client from another CA, all issued by openssl."""
    if control_plane:
        control_plane_ca(d)
    else:
        make_ca(d, "ca")
    make_ca(d, "otherca")
    make_cert(d, "ca", "server", "dpu1-dms-server-cert", server=True)
    make_cert(d, "ca", "client", "dpf-provisioning-client")
    make_cert(d, "ca", "stranger", "someone-else")
    make_cert(d, "otherca", "foreign", "dpf-provisioning-client")
    return d


def gen_client(d):
    """Generate gnmi_pb2, gnoi_os_pb2, ... from lib/gnmi/proto into d and
    import them."""
    protos = os.path.join(REPO, "lib", "gnmi", "proto")
    files = ["gnmi.proto", "gnoi_types.proto", "gnoi_os.proto",
             "gnoi_system.proto", "gnoi_file.proto"]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", protos,
                    "--python_out", d, "--grpc_python_out", d] + files,
                   check=True)
    sys.path.insert(0, d)
    import gnmi_pb2, gnmi_pb2_grpc, gnoi_os_pb2, gnoi_os_pb2_grpc  # noqa
    import gnoi_system_pb2, gnoi_system_pb2_grpc, gnoi_types_pb2  # noqa
    import gnoi_file_pb2, gnoi_file_pb2_grpc  # noqa
    sys.path.remove(d)
    return {m.__name__: m for m in (gnmi_pb2, gnmi_pb2_grpc, gnoi_os_pb2,
                                    gnoi_os_pb2_grpc, gnoi_system_pb2,
                                    gnoi_system_pb2_grpc, gnoi_types_pb2,
                                    gnoi_file_pb2, gnoi_file_pb2_grpc)}


class Dmsd:
    def __init__(self, workdir, pki, rshim, extra=(), images=None,
                 auth=None, bind="127.0.0.1", start=True):
        self.port = free_port()
        self.images = images or os.path.join(workdir, "bfb")
        self.log = os.path.join(workdir, "dmsd.log")
        self.args = [binary("dmsd", "dmsd"),
                     "-bind_address", f"{bind}:{self.port}", "-v", "99"] + \
            (auth if auth is not None else ["-auth", "cert"]) + [
                     "-ca", os.path.join(pki, "ca.crt"),
                     "-tls_key_file", os.path.join(pki, "server.key"),
                     "-tls_cert_file", os.path.join(pki, "server.crt"),
                     "-image_folder", self.images, "-target_pci", "4b:00",
                     "-exec_timeout", "120", "-disable_unbind_at_activate",
                     "-reboot_status_check", "none",
                     "-rshim", rshim] + list(extra)
        if start:
            self.start()

    def start(self):
        mark = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while "serving gNMI and gNOI" not in self.logtext()[mark:]:
            assert self.proc.poll() is None, self.logtext()
            assert time.time() < deadline, "dmsd did not start"
            time.sleep(0.05)

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class DmsdTargets:
    """One `dmsd --targets -` process: request() writes one control line
    and returns its reply line, parsed."""

    def __init__(self, workdir, extra=(), preexec_fn=None):
        self.log = os.path.join(workdir, "dmsd-targets.log")
        self.proc = subprocess.Popen(
            [binary("dmsd", "dmsd"), "--targets", "-", "-v", "99",
             "-exec_timeout", "120", "-reboot_status_check", "none",
             "-disable_unbind_at_activate"] + list(extra),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.log, "ab"), preexec_fn=preexec_fn)
        self.buf = b""
        self.lines = 0  # lines sent so far

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def send(self, line):
        data = line if isinstance(line, bytes) else line.encode()
        self.lines += data.count(b"\n")
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def reply(self, timeout=60):
        deadline = time.time() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.time()
            assert left > 0, "no reply; log:\n" + self.logtext()[-3000:]
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                assert chunk, "stdout closed; log:\n" + self.logtext()[-3000:]
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, obj, timeout=60):
        self.send((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        return self.reply(timeout)

    def close(self, timeout=60):
        """EOF on stdin; the exit code."""
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
