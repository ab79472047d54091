"""The static pod and DOCA's init scripts without a container runtime: the
kubelet-standalone YAML parses and names the image scripts/build-image
builds, with DOCA's paths; telemetry-init.sh presets produce the
documented configuration (the default one byte for byte what dts writes
itself, Prometheus off as DOCA ships it); enable-fluent-forward.sh turns
Forward on; dts runs each preset. The image itself:
test_dts_image.py."""
import os
import pathlib
import subprocess

import yaml

from conftest import REPO, free_port, wait_for
from dts_helpers import Dts, ns_curl, series

DEPLOY = os.path.join(REPO, "deploy", "dts")
PRESETS = os.path.join(DEPLOY, "presets")


def _version():
    with open(os.path.join(REPO, "meson.build")) as f:
        for line in f:
            if line.strip().startswith("version"):
                return line.split("'")[1]


def _script(name, *args, cfg, preset=None):
    env = dict(os.environ, DTS_CONFIG=str(cfg), DTS_PRESETS_DIR=PRESETS)
    env.pop("DTS_CONFIG_DIR", None)
    if preset is not None:
        env["DTS_CONFIG_DIR"] = preset
    return subprocess.run([os.path.join(DEPLOY, name), *args], env=env,
                          capture_output=True, text=True, timeout=30)


def test_static_pod_yaml_names_the_built_image_and_doca_paths():
    with open(os.path.join(DEPLOY, "doca_telemetry_standalone.yaml")) as f:
        pod = yaml.safe_load(f)
    spec = pod["spec"]
    (init,) = spec["initContainers"]
    (main,) = spec["containers"]
    # the image scripts/build-image makes (its tag: the project version)
    want = f"dpf/dts:{_version()}"
    assert init["image"] == want and main["image"] == want
    with open(os.path.join(REPO, "scripts", "build-image")) as f:
        assert '"docker-archive:$archive:dpf/dts:$tag"' in f.read()
    # DOCA's names and init step
    assert init["name"] == "init-telemetry-service"
    assert main["name"] == "doca-telemetry-service"
    assert init["command"] + init["args"] == \
        ["/bin/sh", "-c", "/usr/bin/telemetry-init.sh"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert os.path.isfile(os.path.join(PRESETS, env["DTS_CONFIG_DIR"],
                                       "dts_config.ini"))
    vols = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    mounts = {m["mountPath"]: vols[m["name"]] for m in main["volumeMounts"]}
    assert mounts == {
        "/config": "/opt/mellanox/doca/services/telemetry/config",
        "/data": "/opt/mellanox/doca/services/telemetry/data",
        "/tmp/ipc_sockets":
            "/opt/mellanox/doca/services/telemetry/ipc_sockets",
        "/opt/mellanox/doca/telemetry/config-dpu":
            "/opt/mellanox/doca/telemetry/config-dpu",
    }
    (im,) = init["volumeMounts"]
    assert im["mountPath"] == "/config" and \
        vols[im["name"]] == mounts["/config"]
    # off by default: no probe that would restart a dts without endpoint
    assert "livenessProbe" not in main
    for s in ("telemetry-init.sh", "enable-fluent-forward.sh",
              "telemetry-run.sh"):
        assert os.access(os.path.join(DEPLOY, s), os.X_OK), s


def test_default_preset_is_what_dts_writes_and_prometheus_is_off(
        netns, tmp_path):
    ns = netns("dtpk")
    dts = Dts(ns, str(tmp_path / "builtin"), port=9100)
    try:
        dts.start(wait=False)
        ini = os.path.join(dts.config_dir, "dts_config.ini")
        wait_for(lambda: "prometheus endpoint off" in dts.log_text(), 20,
                 what="dts started without an endpoint")
        assert dts.proc.poll() is None
        assert "telemetry-init: wrote default configuration" in \
            dts.log_text()
        builtin = open(ini).read()
        # nothing listens on DOCA's port
        assert ns_curl(ns, "http://127.0.0.1:9100/metrics", 2)[0] == 0
    finally:
        assert dts.stop() == 0
    r = _script("telemetry-init.sh", cfg=tmp_path / "cfg")
    assert r.returncode == 0, r.stderr
    assert "from preset default" in r.stdout
    script = (tmp_path / "cfg" / "dts_config.ini").read_text()
    assert script == builtin
    assert "\n#prometheus=http://0.0.0.0:9100\n" in script
    assert "\nprometheus=" not in script


def test_netq_preset_with_forward_runs_dts(netns, tmp_path):
    ns = netns("dtpq")
    dts = Dts(ns, str(tmp_path / "run"), port=9100)
    cfg = pathlib.Path(dts.config_dir)
    fport = free_port()
    r = _script("telemetry-init.sh", cfg=cfg, preset="host_netq")
    assert r.returncode == 0, r.stderr
    ini = (cfg / "dts_config.ini").read_text()
    for line in ("enable-provider=sysfs", "enable-provider=ethtool",
                 "prometheus=http://0.0.0.0:9100",
                 "fluentbit-config-dir=/config/fluent_bit_configs"):
        assert f"\n{line}\n" in ini, line
    exp = (cfg / "fluent_bit_configs" / "forward.exp").read_text()
    assert "enable=0" in exp
    # bad arguments are refused with a message naming them
    r = _script("enable-fluent-forward.sh", "-i=127.0.0.1", "-p=70000",
                cfg=cfg)
    assert r.returncode == 2 and "-p=70000: not a port" in r.stderr
    r = _script("enable-fluent-forward.sh", "-i=a b", "-p=1", cfg=cfg)
    assert r.returncode == 2 and "not a host name" in r.stderr
    r = _script("enable-fluent-forward.sh", "-i=127.0.0.1",
                f"-p={fport}", cfg=cfg)
    assert r.returncode == 0, r.stderr
    exp = (cfg / "fluent_bit_configs" / "forward.exp").read_text()
    assert "enable=1" in exp and f"port={fport}" in exp and \
        "host=127.0.0.1" in exp and "tag=doca_telemetry" in exp
    ini = (cfg / "dts_config.ini").read_text()
    # outside a container the directory is the config dir itself
    assert f"\nfluentbit-config-dir={cfg}/fluent_bit_configs\n" in ini
    assert ini.count("fluentbit-config-dir") == 1
    # a second telemetry-init keeps the operator's file
    (cfg / "dts_config.ini").write_text(ini + "update=500\n")
    r = _script("telemetry-init.sh", cfg=cfg, preset="inventory_netq")
    assert r.returncode == 0 and "already configured" in r.stdout
    assert (cfg / "dts_config.ini").read_text().endswith("update=500\n")

    try:
        dts.start()
        m = dts.metrics()
        assert series(m, "dts_update_period_seconds") == [0.5]
        assert series(m, "dts_provider_up", provider="ethtool") == [1.0]
        assert series(m, "dts_fluent_forward_destinations") == [1.0]
    finally:
        assert dts.stop() == 0


def test_unknown_preset_is_refused(tmp_path):
    r = _script("telemetry-init.sh", cfg=tmp_path / "c", preset="nope")
    assert r.returncode == 1
    assert "DTS_CONFIG_DIR=nope: no such preset" in r.stderr
    assert "host_netq" in r.stderr
    assert not (tmp_path / "c" / "dts_config.ini").exists()
    r = _script("telemetry-init.sh", cfg=tmp_path / "c", preset="../etc")
    assert r.returncode == 1 and "not a preset name" in r.stderr
