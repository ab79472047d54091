"""The repository stands on its own: a fresh clone passes `make check`.

The test clones this repository's HEAD into a new temporary directory that
has no `shared` folder beside it and runs `make check` there, the way a new
user would after `git clone`. It proves that no build step, test or fuzz
replay needs the shared folder: DPF's verbatim manifests are then reported
as not checked (one line from the unit tests, one pytest skip) and
examples/ is checked instead.

What the inner run may reuse from this machine: the Debian packages
(scripts/install-deps finds them all and needs no network) and kubectl 1.20,
which install-deps would otherwise download into .deps/ with
`apt-get download`; it is copied from this checkout's .deps/.

The inner `make check` runs with DPF_STANDALONE_INNER=1, so inside it this
test skips itself with one line instead of cloning again; its builds, lint,
unit and fuzz suites are whole, and of the system tests it runs those whose
outcome depends on the shared folder being absent (scripts/test lists
them), since this outer run covers the rest on the same commit. Committed state only:
uncommitted changes are not in the clone."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import REPO

INNER = "DPF_STANDALONE_INNER"
# generous: two builds and every suite on a shared 2-core machine
TIMEOUT = 75 * 60

if os.environ.get(INNER):
    pytest.skip("standalone: inside the fresh clone's make check; "
                "not cloning again", allow_module_level=True)


def git(*args, cwd=REPO):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def say(capsys, line):
    """One line on the terminal even under pytest -q."""
    with capsys.disabled():
        print(f"\n{line}", flush=True)


def test_fresh_clone_passes_make_check(capsys):
    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        pytest.skip(f"standalone: {REPO} is not a git checkout, nothing to "
                    f"clone ({head.stderr.strip()})")
    sha = head.stdout.strip()
    if git("status", "--porcelain", "--untracked-files=no").stdout.strip():
        say(capsys, f"standalone: testing HEAD {sha[:12]}; uncommitted "
            "changes are not in the clone")

    top = tempfile.mkdtemp(prefix="dpf-standalone-")
    clone = os.path.join(top, "dpf")
    log = os.path.join(top, "make-check.log")
    try:
        r = subprocess.run(["git", "clone", "--quiet", REPO, clone],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        r = git("checkout", "--quiet", "--detach", sha, cwd=clone)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(os.path.join(top, "shared"))
        assert not os.path.exists(os.path.join(clone, "build"))
        k120 = os.path.join(REPO, ".deps")
        if os.path.isdir(k120):
            shutil.copytree(k120, os.path.join(clone, ".deps"),
                            symlinks=True)

        # a user's environment: none of this run's DPF_* or sanitizer
        # settings leak into the clone's make check
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": os.environ.get("HOME", "/root"),
               "LANG": "C.UTF-8", INNER: "1"}
        start = time.monotonic()
        with open(log, "w") as out:
            r = subprocess.run(["make", "check"], cwd=clone, env=env,
                               stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=TIMEOUT)
        took = time.monotonic() - start
        with open(log, errors="replace") as f:
            text = f.read()
        tail = "\n".join(text.splitlines()[-60:])
        assert r.returncode == 0, \
            f"make check in a fresh clone failed ({r.returncode}); " \
            f"full log {log}:\n{tail}"
        assert not os.path.exists(os.path.join(top, "shared"))

        # it ran everything: builds, lint, unit and fuzz suites, pytest
        assert "install-deps: all" in text, tail
        assert "lint: grep rules" in text, tail
        for suite in ("unit", "fuzz"):
            assert re.search(rf"dpf:{suite} / \S+\s+OK", text), \
                f"no {suite} test ran:\n{tail}"
        assert not re.search(r"^Fail:\s+[1-9]", text, re.M), tail
        assert re.search(r"dpf:unit / schema\s+OK", text), tail
        assert re.search(r"dpf:unit / yamljson\s+OK", text), tail
        summary = text.rstrip().splitlines()[-1]
        assert re.search(r"\d+ passed", summary), summary
        assert not re.search(r"failed|error", summary), summary
        # examples/ was checked; DPF's manifests were not, and it says so
        assert re.search(r"dpf:unit / schema-dpf-fixtures\s+SKIP", text), \
            tail
        # one line each from the two unit-test programs and from pytest
        line = "shared/fixtures not present; DPF's verbatim manifests " \
               "not checked"
        assert text.count(line) >= 3, \
            f"no line saying DPF's manifests were not checked:\n{tail}"
        assert "test_fixtures.py" in text and "SKIPPED" in text, tail
        assert "standalone: inside the fresh clone" in text, tail
        assert "scripts/test: fresh-clone run, system tests:" in text, tail
        say(capsys, f"standalone: make check in a fresh clone of "
            f"{sha[:12]} without ../shared passed in {took:.0f} s")
        shutil.rmtree(top)
    finally:
        # the clone and its builds go; on failure the log stays (named in
        # the assertion message)
        shutil.rmtree(clone, ignore_errors=True)
