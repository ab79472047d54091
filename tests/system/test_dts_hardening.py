"""dts hardening (issue 11, item 4): what an operator's mistake or an
attacker's input must not do to the daemon.

- a config or level-labels file that is /dev/zero or a FIFO is refused
  with a message naming the file, at start and on reload, and SIGTERM
  still stops dts;
- a second dts does not take the first one's live IPC socket;
- the IPC socket's mode and group are configurable so that an app running
  as another user can connect (and cannot without them).
"""
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import binary, wait_for
from dtsio_util import Dts, run_example, wait_file_text


def run_dts_once(conf_dir, ipc_dir, timeout=20):
    """Start dts on conf_dir and return (returncode, output) when it exits;
    fails if it is still running after timeout."""
    p = subprocess.Popen([binary("dts", "dts"), "--config-dir", str(conf_dir),
                          "--ipc-dir", str(ipc_dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        raise AssertionError("dts did not exit on a bad config file: " + out)
    return p.returncode, out


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_config_file_not_regular_refused_at_start(tmp_path, kind):
    conf = tmp_path / "config"
    conf.mkdir()
    path = conf / "dts_config.ini"
    if kind == "dev-zero":
        os.symlink("/dev/zero", path)
    else:
        os.mkfifo(path)
    rc, out = run_dts_once(conf, tmp_path / "ipc")
    assert rc == 1, out
    assert f"{path}: not a regular file" in out, out


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_level_labels_not_regular_refused_at_start(tmp_path, kind):
    conf = tmp_path / "config"
    conf.mkdir()
    labels = tmp_path / "labels.ini"
    if kind == "dev-zero":
        os.symlink("/dev/zero", labels)
    else:
        os.mkfifo(labels)
    (conf / "dts_config.ini").write_text(
        f"update=200\nlevel-labels-file={labels}\n")
    rc, out = run_dts_once(conf, tmp_path / "ipc")
    assert rc == 1, out
    assert f"{labels}: not a regular file" in out, out


def test_config_replaced_by_fifo_rejected_sigterm_works(tmp_path):
    d = Dts(tmp_path, ["disable-provider=sysfs"]).start()
    try:
        errors = d.metric("dts_config_errors_total")
        path = d.conf / "dts_config.ini"
        tmp = d.conf / "fifo.tmp"
        os.mkfifo(tmp)
        os.rename(tmp, path)  # what an attacker with write access could do
        wait_file_text(d.log, "not a regular file")
        d.wait_metric("dts_config_errors_total", lambda v: v > errors)
        assert d.healthy()
        # and /dev/zero as the level-labels file of a new config
        os.unlink(path)
        labels = tmp_path / "zero.ini"
        os.symlink("/dev/zero", labels)
        path.write_text(f"update=200\ndisable-provider=sysfs\n"
                        f"level-labels-file={labels}\n")
        d.wait_metric("dts_config_errors_total", lambda v: v > errors + 1)
        assert d.healthy()
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 10
    finally:
        d.stop()


def test_second_instance_keeps_first_ipc_socket(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Dts(tmp_path / "a", ["disable-provider=sysfs"]).start()
    second = Dts(tmp_path / "b", ["disable-provider=sysfs"])
    second.ipc_dir = first.ipc_dir  # same DOCA path, by mistake
    try:
        before = os.stat(first.socket_path)
        second.start()
        wait_file_text(second.log, "is in use by a running process")
        after = os.stat(first.socket_path)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
        # the first dts still receives its apps
        run_example(first, "--source-id", "still-first", "--events", "1")
        first.wait_metric(
            "dts_app_example_requests_total", lambda v: v == 42,
            labels='{source_id="still-first",source_tag=""}')
        assert second.stop() == 0
        # the second one's exit does not remove the first one's socket
        assert os.path.exists(first.socket_path)
        run_example(first, "--source-id", "after-second", "--events", "1")
    finally:
        second.stop()
        first.stop()


@pytest.fixture
def open_dir():
    """A directory other users can traverse (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="dts-ipc-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def run_example_as_nobody(socket_path):
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         binary("dts", "dts-exporter-example"), "--socket", socket_path,
         "--source-id", "nobody-app", "--events", "1"],
        capture_output=True, text=True, timeout=60)


def test_ipc_socket_mode_and_group_let_another_user_in(tmp_path, open_dir):
    d = Dts(tmp_path, ["disable-provider=sysfs", "ipc-socket-mode=0660",
                       "ipc-socket-group=nogroup"])
    d.ipc_dir = type(d.ipc_dir)(open_dir)
    d.start()
    try:
        st = os.stat(d.socket_path)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == 65534
        r = run_example_as_nobody(d.socket_path)
        assert r.returncode == 0, r.stdout + r.stderr
        d.wait_metric("dts_app_example_requests_total", lambda v: v == 42,
                      labels='{source_id="nobody-app",source_tag=""}')
    finally:
        assert d.stop() == 0


def test_ipc_socket_default_refuses_another_user(tmp_path, open_dir):
    d = Dts(tmp_path, ["disable-provider=sysfs"])
    d.ipc_dir = type(d.ipc_dir)(open_dir)
    d.start()
    try:
        st = os.stat(d.socket_path)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == os.getgid()
        r = run_example_as_nobody(d.socket_path)
        assert r.returncode == 1
        assert "Permission denied" in r.stderr
    finally:
        assert d.stop() == 0


def test_ipc_socket_bad_group_is_a_config_error(tmp_path):
    conf = tmp_path / "config"
    conf.mkdir()
    (conf / "dts_config.ini").write_text(
        "ipc-socket-group=no-such-group-dts\n")
    rc, out = run_dts_once(conf, tmp_path / "ipc")
    assert rc == 1, out
    assert "ipc-socket-group" in out and "no-such-group-dts" in out, out
