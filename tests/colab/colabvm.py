"""The Colab VM of the tests in tests/colab/ (conftest.py holds the fixtures): Colab's package versions
(.venv-colab, built by tests/colab/build_env.sh from requirements-colab.txt), the course installed by the
notebooks' own install cell from this checkout (git's url.<base>.insteadOf redirects GitHub to it), and
notebooks run through a real Jupyter kernel of that environment with google.colab imported before the
first cell."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV = REPO / ".venv-colab"
PY = VENV / "bin" / "python"
IMAGE = VENV / "colab-image.txt"
VM = HERE / "vm"
SITE = next(iter(sorted(VENV.glob("lib/python3.*/site-packages"))), VENV / "lib")

from colabkit import course

# --- the image: what a fresh Colab VM has -----------------------------------------------------------

def freeze() -> dict[str, str]:
    """{normalised name: version} of every distribution in .venv-colab."""
    out = subprocess.run([str(PY), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True)
    return _parse(out.stdout)


def _parse(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==|@)\s*(.+)$", line.strip())
        if m:
            found[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2).strip()
    return found


def image() -> dict[str, str]:
    if not PY.exists() or not IMAGE.exists():
        pytest.fail(f"The Colab environment is missing: run tests/colab/build_env.sh first (it builds {VENV} "
                    "from tests/colab/requirements-colab.txt), or leave these tests out with -m 'not colab_env'.")
    return _parse(IMAGE.read_text())


def pip(*args, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([str(PY), "-m", "pip", *args], capture_output=True, text=True, env=env, check=check)


def recycle_vm() -> None:
    """Put .venv-colab back to the image, as Colab recycles a VM: remove what an install cell added and
    put back any version it changed (pip's cache makes that quick)."""
    want, have = image(), freeze()
    extra = sorted(set(have) - set(want))
    if extra:
        pip("uninstall", "-y", *extra)
    changed = [f"{n}=={v}" for n, v in want.items() if have.get(n) != v]
    if changed:
        pip("install", "-q", "--no-deps", *changed)


# --- the course's repository, as GitHub would serve it ---------------------------------------------

def make_github(root: Path) -> dict:
    """A git repository holding this working tree (tracked and untracked, not ignored files) on branch
    main, and a git config that sends https://github.com/<slug> there. Returns the env for git/pip."""
    checkout = root / "gan-papers"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, checkout / name)
    gitenv = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                  GIT_COMMITTER_EMAIL="t@t", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    for cmd in (["init", "-q", "-b", course.BRANCH], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(["git", *cmd], cwd=checkout, env=gitenv, check=True)
    config = root / "gitconfig"
    config.write_text(f'[url "file://{checkout}"]\n\tinsteadOf = https://github.com/{course.REPO_SLUG}\n')
    return {"GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1", "checkout": str(checkout)}


def install_command() -> list[str]:
    """The notebooks' install cell, word for word (tests/test_notebooks.py checks each notebook holds it)."""
    return [str(PY), "-m", "pip", "install", "-q", course.install_spec()]


# --- a notebook in a Colab kernel --------------------------------------------------------------------

def vm_env(vm: Path, github: dict, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COLABKIT_", "COLABVM_", "JUPYTER", "VIRTUAL_ENV", "PYTHON", "MPLBACKEND"))}
    env.update(PATH=f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONPATH=str(VM),
               COLABVM_CONTENT=str(vm / "content"), COLABVM_DRIVE=str(vm / "drive-store" / "MyDrive"),
               TMPDIR=str(vm / "tmp"), COLABKIT_SMOKE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYDEVD_DISABLE_FILE_VALIDATION="1",
               GIT_CONFIG_GLOBAL=github["GIT_CONFIG_GLOBAL"], GIT_CONFIG_NOSYSTEM="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class ColabVM:
    """One Colab VM after another: `run_all` starts a fresh VM (empty /content, the image's packages) with
    the same Drive, and runs every cell of a notebook in a new kernel."""

    def __init__(self, root: Path, github: dict, **env):
        self.root, self.github, self.extra = Path(root), github, env
        self.mydrive = root / "drive-store" / "MyDrive"
        self.content = root / "content"
        kdir = root / "kernels" / "colabvm"
        kdir.mkdir(parents=True, exist_ok=True)
        (kdir / "kernel.json").write_text(json.dumps({
            "argv": [str(PY), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.exec_lines=import colab_vm"],
            "display_name": "Python 3 (Colab stand-in)", "language": "python"}))

    def new_vm(self) -> None:
        """The VM is recycled: /content and /tmp are gone, the packages are the image's again."""
        self.kill_tensorboards()
        for d in (self.content, self.root / "tmp"):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        recycle_vm()

    def kill_tensorboards(self) -> list[int]:
        """Stop the TensorBoard servers this VM's kernels started (their records are in the VM's TMPDIR)."""
        pids = []
        for info in (self.root / "tmp" / ".tensorboard-info").glob("pid-*.info"):
            try:
                pid = json.loads(info.read_text())["pid"]
                os.kill(pid, signal.SIGKILL)
                pids.append(pid)
            except (OSError, ValueError, KeyError):
                pass
        return pids

    def run_all(self, notebook: Path, *, kill_when=None, then=None, fresh=True, timeout=600) -> dict:
        """Run all cells. `kill_when()`: SIGKILL the kernel once it returns true (polled). `then(client, nb)`:
        called with the kernel still up after the last cell. Returns outputs and timings."""
        import nbformat
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync
        from nbclient import NotebookClient
        from nbclient.exceptions import DeadKernelError

        if fresh:
            self.new_vm()
        nb = nbformat.read(notebook, as_version=4)
        ksm = KernelSpecManager(kernel_dirs=[str(self.root / "kernels")])
        km = AsyncKernelManager(kernel_name="colabvm", kernel_spec_manager=ksm)
        # widget_registry={}: nbclient's own stand-in for Output widgets sends comm messages to the kernel on
        # the shell channel while it waits on that channel for the cell's reply, and now and then the cell
        # never returns (jupyter/nbclient#312; seen here with the play cells). Colab's front end is not
        # nbclient: pictures drawn into an Output area just stay among the cell's outputs here.
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="colabvm")
        client.widget_registry = {}
        pid_file = self.root / "kernel.pid"
        pid_file.unlink(missing_ok=True)
        killed, stop = threading.Event(), threading.Event()

        def watch():
            try:
                while not stop.is_set():
                    if kill_when():
                        pid = int(pid_file.read_text())
                        os.kill(pid, signal.SIGKILL)
                        result["killed_pid"] = pid
                        killed.set()
                        return
                    time.sleep(0.01)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        result = {"killed": False, "text": "", "extra": None}
        errors: list[BaseException] = []
        t0 = time.monotonic()
        watcher = threading.Thread(target=watch, daemon=True) if kill_when else None
        env = vm_env(self.root, self.github, **self.extra)
        try:
            with client.setup_kernel(env=env, cwd=str(self.content)):
                if watcher:
                    watcher.start()
                try:
                    for i, cell in enumerate(nb.cells):
                        if cell.cell_type == "code":
                            (self.root / "cell").write_text(f"{i} {time.monotonic() - t0:.1f}s {cell.source[:80]!r}")
                            client.execute_cell(cell, i)
                    if then is not None:
                        result["extra"] = then(client, nb)
                except DeadKernelError:
                    if not killed.is_set():
                        raise
        finally:
            stop.set()
            if km.has_kernel:   # nbclient leaves a kernel manager it was given to its owner
                run_sync(km.shutdown_kernel)(now=True)
            self.kill_tensorboards()
            result["seconds"] = time.monotonic() - t0
            result["killed"] = killed.is_set()
            result["text"] = cell_text(nb)
        if errors:
            raise AssertionError(f"the kill watcher failed: {errors[0]!r}") from errors[0]
        if kill_when and not killed.is_set():
            raise AssertionError("the kernel finished before it could be killed:\n" + result["text"][-3000:])
        return result


def cell_text(cells) -> str:
    """Everything the cells (a notebook or a list of cells) printed: streams, results, errors, in order."""
    parts = []
    for cell in getattr(cells, "cells", cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") in ("execute_result", "display_data"):
                parts.append(out.get("data", {}).get("text/plain", "") + "\n")
            elif out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])) + "\n")
    return "".join(parts)


def run_code(client, nb, source: str) -> dict:
    """Run one more cell in the notebook's kernel (as a learner would type it). Returns the cell."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    client.execute_cell(cell, len(nb.cells) - 1)
    return cell

