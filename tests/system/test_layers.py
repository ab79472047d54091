"""The layer rule (docs/architecture.md, "Layers"): make lint fails on an
include from a higher layer. The test clones the repository into a scratch
directory, plants one upward include and runs the project's lint there."""
import os
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _clone(tmp_path):
    dst = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", ROOT, str(dst)],
                   check=True)
    return dst


def test_layers_clean_tree_passes(tmp_path):
    repo = _clone(tmp_path)
    r = subprocess.run(["scripts/check-layers"], cwd=repo,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


def test_lint_fails_on_upward_include(tmp_path):
    repo = _clone(tmp_path)
    util = repo / "lib" / "base" / "util.c"
    text = util.read_text()
    # base (rank 0) including the store layer (rank 2)
    util.write_text(text.replace('#include "lib/base/util.h"\n',
                                 '#include "lib/base/util.h"\n'
                                 '#include "lib/store/store.h"\n', 1))
    r = subprocess.run(["scripts/lint"], cwd=repo, capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert ("lib/base/util.c:" in r.stdout and
            "includes lib/store/store.h: lib/base (rank 0) includes higher "
            "layer lib/store (rank 2)" in r.stdout), r.stdout


def test_lint_fails_on_sibling_and_program_includes(tmp_path):
    repo = _clone(tmp_path)
    ipc = repo / "lib" / "telemetry" / "datafile.c"
    ipc.write_text('#include "lib/net/http-server.h"\n' + ipc.read_text())
    cli = repo / "dpfctl" / "manifest.c"
    cli.write_text('#include "dpf-server/server.h"\n' + cli.read_text())
    r = subprocess.run(["scripts/check-layers"], cwd=repo,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "lib/telemetry and lib/net are layers of one rank" in r.stdout
    assert "program dpfctl includes program dpf-server" in r.stdout
