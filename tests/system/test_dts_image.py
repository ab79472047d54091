"""dts packaged as DOCA ships it: scripts/build-image builds the OCI image
from the release build, a local docker-registry (127.0.0.1, a free port)
takes the push and serves the pull, and the pulled image runs under runc
and crun as an OCI bundle in a network namespace the test creates: first
as the static pod's init container (telemetry-init.sh with a preset and
enable-fluent-forward.sh), then as dts itself, whose /metrics carries the
topology labels of DOCA's config-dpu level_labels.ini. Everything started
is stopped by PID / container id; the temp dirs are pytest's."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD_RELEASE, REPO, free_port, wait_for
from dts_helpers import ns_curl, series, parse_metrics

TOOLS = ("umoci", "skopeo", "docker-registry", "runc", "crun")
MISSING = [t for t in TOOLS if not shutil.which(t)]
if MISSING:
    pytest.fail(f"{', '.join(MISSING)} missing: run scripts/install-deps",
                pytrace=False)

POD = os.path.join(REPO, "deploy", "dts", "doca_telemetry_standalone.yaml")


def _version():
    with open(os.path.join(REPO, "meson.build")) as f:
        for line in f:
            if line.strip().startswith("version"):
                return line.split("'")[1]
    raise AssertionError("no version in meson.build")


def _run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=120,
                       **kw)
    assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r


class Registry:
    """docker-registry on 127.0.0.1:<free port>, storage in tmp."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "registry")
        os.makedirs(self.dir)
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "config.yml")
        with open(self.cfg, "w") as f:
            f.write("version: 0.1\n"
                    "log: {level: warn}\n"
                    "storage: {filesystem: {rootdirectory: %s/data}}\n"
                    "http: {addr: 127.0.0.1:%d}\n" % (self.dir, self.port))
        self.proc = None

    def start(self):
        log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.cfg],
                                     stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        wait_for(lambda: self.get("/v2/")[0] == 200, 20,
                 what="docker-registry /v2/")
        return self

    def get(self, path):
        if self.proc.poll() is not None:
            raise RuntimeError("docker-registry exited %d" %
                               self.proc.returncode)
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except OSError:
            return 0, ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """The image scripts/build-image makes from the release build."""
    dts = os.path.join(BUILD_RELEASE, "dts", "dts")
    if not os.path.exists(dts):
        pytest.fail(f"{dts} not built (DPF_BUILD_RELEASE={BUILD_RELEASE})",
                    pytrace=False)
    out = str(tmp_path_factory.mktemp("img") / "oci")
    r = _run([os.path.join(REPO, "scripts", "build-image"),
              "--build", BUILD_RELEASE, "--out", out])
    assert f"oci:{out}:{_version()}" in r.stdout, r.stdout
    return out


def _runtime(name):
    """The command that runs OCI runtime `name`. crun refuses a hybrid
    cgroup layout whose cgroup2 hierarchy holds controllers ("cgroups in
    hybrid mode not supported", docs/services/dts.md, "Packaging"); on such
    a host crun runs in a private mount namespace where that hierarchy is
    hidden, so it manages the v1 hierarchies as runc does. Nothing outside
    that namespace changes."""
    unified = "/sys/fs/cgroup/unified/cgroup.controllers"
    if name == "crun" and os.path.exists(unified) and \
            open(unified).read().strip():
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs none /sys/fs/cgroup/unified && '
                'exec crun "$@"', "crun"]
    return [name]


def _bundle_config(bundle, ns, args, mounts, env=()):
    """Adapt umoci's config.json: no terminal (nobody attaches one), the
    test's netns instead of a new one, the DOCA mounts, our command."""
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    proc = cfg["process"]
    proc["terminal"] = False
    proc["args"] = list(args)
    proc["env"] = [e for e in proc.get("env", [])] + list(env)
    nss = cfg["linux"]["namespaces"]
    for n in nss:
        if n["type"] == "network":
            n["path"] = f"/var/run/netns/{ns}"
    for src, dst, ro in mounts:
        cfg["mounts"].append({"destination": dst, "type": "bind",
                              "source": src,
                              "options": ["rbind", "ro" if ro else "rw"]})
    cfg["root"]["readonly"] = True
    with open(path, "w") as f:
        json.dump(cfg, f)


def test_image_contents_and_size(image):
    """The image is small, names dts as its entrypoint with DOCA's mounts,
    and holds the init scripts and presets."""
    size = sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(os.path.join(image, "blobs"))
               for f in fs)
    assert size < 16 * 1024 * 1024, f"image is {size} bytes"
    with open(os.path.join(image, "index.json")) as f:
        idx = json.load(f)
    (m,) = idx["manifests"]
    assert m["annotations"]["org.opencontainers.image.ref.name"] == \
        _version()
    blob = lambda d: os.path.join(image, "blobs", *d.split(":"))  # noqa
    with open(blob(m["digest"])) as f:
        manifest = json.load(f)
    with open(blob(manifest["config"]["digest"])) as f:
        conf = json.load(f)["config"]
    assert conf["Entrypoint"] == ["/usr/bin/dts"]
    assert conf["Cmd"] == ["--config-dir=/config",
                           "--ipc-dir=/tmp/ipc_sockets"]
    assert set(conf["Volumes"]) == {"/config", "/data", "/tmp/ipc_sockets"}
    assert "9100/tcp" in conf["ExposedPorts"]


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_image_from_registry_runs_and_serves_metrics(image, runtime,
                                                    tmp_path, netns):
    ver = _version()
    reg = Registry(str(tmp_path)).start()
    ns = netns("dtsimg")
    ids = []
    main = None
    try:
        # push the built image, see it in the registry's catalog
        ref = f"docker://127.0.0.1:{reg.port}/dpf/dts:{ver}"
        _run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
              f"oci:{image}:{ver}", ref])
        code, body = reg.get("/v2/_catalog")
        assert code == 200 and "dpf/dts" in json.loads(body)["repositories"]
        code, body = reg.get("/v2/dpf/dts/tags/list")
        assert ver in json.loads(body)["tags"]

        # pull it back into a fresh layout and unpack two bundles from it
        pulled = str(tmp_path / "pulled")
        _run(["skopeo", "copy", "-q", "--src-tls-verify=false", ref,
              f"oci:{pulled}:{ver}"])
        host = {d: tmp_path / "host" / d for d in
                ("config", "data", "ipc_sockets", "config-dpu")}
        for d in host.values():
            d.mkdir(parents=True)
        (host["config-dpu"] / "level_labels.ini").write_text(
            "[global_labels]\nrack=r7\nsu=3\n")
        mounts = [(str(host["config"]), "/config", False),
                  (str(host["data"]), "/data", False),
                  (str(host["ipc_sockets"]), "/tmp/ipc_sockets", False),
                  (str(host["config-dpu"]),
                   "/opt/mellanox/doca/telemetry/config-dpu", True)]
        fport = free_port()

        # the init container as the static pod runs it, with the edits the
        # pod's comments document: a preset that turns Prometheus on and
        # Forward to a receiver
        pod = _pod()
        (init,) = pod["spec"]["initContainers"]
        assert init["command"] == ["/bin/sh", "-c"]
        assert init["args"] == ["/usr/bin/telemetry-init.sh"]
        init_cmd = init["command"] + [
            init["args"][0] + " && /usr/bin/enable-fluent-forward.sh "
            f"-i=127.0.0.1 -p={fport}"]
        env = ["DTS_CONFIG_DIR=host_netq"]
        b1 = str(tmp_path / "bundle-init")
        _run(["umoci", "unpack", "--image", f"{pulled}:{ver}", b1])
        _bundle_config(b1, ns, init_cmd, mounts, env)
        cid = f"dtsimg-init-{runtime}-{os.getpid()}"
        ids.append(cid)
        rt = _runtime(runtime)
        r = subprocess.run(rt + ["run", "--bundle", b1, cid],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "from preset host_netq" in r.stdout, r.stdout
        ini = (host["config"] / "dts_config.ini").read_text()
        assert "prometheus=http://0.0.0.0:9100" in ini
        assert "fluentbit-config-dir=/config/fluent_bit_configs" in ini
        exp = (host["config"] / "fluent_bit_configs" /
               "forward.exp").read_text()
        assert f"port={fport}" in exp and "enable=1" in exp

        # dts itself, with the image's own entrypoint and command
        (ctr,) = pod["spec"]["containers"]
        b2 = str(tmp_path / "bundle-main")
        _run(["umoci", "unpack", "--image", f"{pulled}:{ver}", b2])
        with open(os.path.join(b2, "config.json")) as f:
            args = json.load(f)["process"]["args"]
        assert args == ctr["command"] + ctr["args"][:2], args
        _bundle_config(b2, ns, args, mounts)
        cid = f"dtsimg-main-{runtime}-{os.getpid()}"
        ids.append(cid)
        log = open(tmp_path / "main.log", "ab")
        main = subprocess.Popen(rt + ["run", "--bundle", b2, cid],
                                stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
        log.close()

        def scraped():
            if main.poll() is not None:
                raise RuntimeError(
                    f"{runtime} exited {main.returncode}: "
                    + (tmp_path / "main.log").read_text()[-3000:])
            code, body = ns_curl(ns, "http://127.0.0.1:9100/metrics", 2)
            return body if code == 200 else None
        body = wait_for(scraped, 30, interval=0.3, what="/metrics in image")
        m = parse_metrics(body)
        # the sysfs provider sees the netns's lo, with the config-dpu labels
        assert series(m, "dts_net_rx_bytes_total", device="lo", rack="r7",
                      su="3"), body[:3000]
        assert series(m, "dts_fluent_forward_destinations") == [1.0]
        # the exporter-library socket is where the pod mounts it
        wait_for(lambda: (host["ipc_sockets"] / "dts.sock").exists(), 10,
                 what="dts.sock in the ipc_sockets mount")
        # SIGTERM through the runtime stops dts cleanly
        _run(rt + ["kill", cid, "TERM"])
        assert main.wait(30) == 0, (tmp_path / "main.log").read_text()
        main = None
    finally:
        if main is not None and main.poll() is None:
            subprocess.run(_runtime(runtime) + ["kill", ids[-1], "KILL"],
                           capture_output=True)
            try:
                main.wait(10)
            except subprocess.TimeoutExpired:
                main.kill()
                main.wait()
        for cid in ids:
            subprocess.run(_runtime(runtime) + ["delete", "-f", cid],
                           capture_output=True)
        reg.stop()


def _pod():
    import yaml
    with open(POD) as f:
        return yaml.safe_load(f)
