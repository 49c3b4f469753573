"""The notebooks' install cell, run for real in Colab's package versions (.venv-colab): it installs the
course from its GitHub repository (redirected here to this checkout by git's insteadOf), keeps Colab's
torch, and changes none of Colab's packages."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

from colabvm import PY, SITE, freeze, image, install_command, recycle_vm

from colabkit import course

# What the install cell may add to Colab: the course and the one package of its [metrics] extra that
# Colab lacks. Nothing of Colab's own set may be upgraded, downgraded or removed.
ADDED_BY_THE_COURSE = {"colabkit", "torch-fidelity"}


def _dist_info(name: str):
    hits = sorted(SITE.glob(f"{name}-*.dist-info"))
    assert len(hits) == 1, hits
    return hits[0]


def _torch_fingerprint() -> dict:
    """Enough to tell a reinstall: the RECORD (every file and its hash), and the inode and mtime of the
    package's files that a reinstall would write anew."""
    record = _dist_info("torch") / "RECORD"
    files = [SITE / "torch" / "__init__.py", SITE / "torch" / "lib" / "libtorch_cpu.so", record]
    return {"record_sha256": hashlib.sha256(record.read_bytes()).hexdigest(),
            **{str(f.relative_to(SITE)): (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}}


def test_install_cell_keeps_colabs_torch_and_changes_nothing_of_colabs(github, tmp_path):
    recycle_vm()
    want = image()
    before = freeze()
    assert before == want and "colabkit" not in before
    torch_before = _torch_fingerprint()

    env = dict(os.environ, GIT_CONFIG_GLOBAL=github["GIT_CONFIG_GLOBAL"], GIT_CONFIG_NOSYSTEM="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", TMPDIR=str(tmp_path))
    proc = subprocess.run(install_command(), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    after = freeze()
    added = {n: v for n, v in after.items() if n not in before}
    removed = sorted(set(before) - set(after))
    changed = {n: f"{before[n]} -> {after[n]}" for n in before if n in after and before[n] != after[n]}
    print("install cell:", " ".join(install_command()[1:]))
    print("pip added:", added)
    print("pip changed:", changed or "nothing")
    print("pip removed:", removed or "nothing")
    assert set(added) == ADDED_BY_THE_COURSE, added
    assert not changed and not removed, (changed, removed)
    assert _torch_fingerprint() == torch_before, "the install cell reinstalled torch"
    print(f"torch kept: {after['torch']} (RECORD and files untouched)")

    # Installed from "GitHub" (this checkout's snapshot), not from the package index.
    direct = json.loads((_dist_info("colabkit") / "direct_url.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=github["checkout"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert direct["url"] == f"https://github.com/{course.REPO_SLUG}"
    assert direct["vcs_info"] == {"vcs": "git", "requested_revision": course.BRANCH, "commit_id": head}

    probe = (
        "import json, colabkit, colabkit.metrics, colabkit.data, torch, torchvision, torch_fidelity, ipywidgets, "
        "gdown, numpy, matplotlib, scipy, PIL, tensorboard, setuptools\n"
        "from torch.utils.tensorboard import SummaryWriter\n"
        "import tensorboard.notebook\n"
        "print(json.dumps({'colabkit': colabkit.__file__, 'torch': torch.__version__, 'ipywidgets': "
        "ipywidgets.__version__, 'tensorboard': tensorboard.__version__, 'setuptools': setuptools.__version__, "
        "'numpy': numpy.__version__, 'gdown': gdown.__version__}))"
    )
    out = subprocess.run([str(PY), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    print("imports:", got)
    assert got["colabkit"].startswith(str(SITE)), "colabkit must come from the install, not this checkout"
    for name in ("torch", "ipywidgets", "tensorboard", "setuptools", "numpy", "gdown"):
        assert got[name].split("+")[0] == want[name].split("+")[0], (name, got[name], want[name])
