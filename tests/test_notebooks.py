"""Notebook hygiene: twins in sync, no outputs, badges and install cells pointing at this repository."""

import json
import re
from pathlib import Path

import jupytext
import pytest

from colabkit import course

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TWINS = sorted((REPO / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS][:1] == ["00_start_here"]
    assert len(NOTEBOOKS) >= 4


def test_every_notebook_has_its_twin_and_back():
    assert {p.stem for p in NOTEBOOKS} == {p.stem for p in TWINS}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    for c in cells:
        if c["cell_type"] == "code":
            assert c.get("outputs") == [] and c.get("execution_count") is None, c["source"][:80]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_twin_in_sync(nb):
    a = jupytext.read(nb)
    b = jupytext.read(nb.with_suffix(".py"))
    src = lambda n: [(c.cell_type, c.source.strip()) for c in n.cells]
    assert src(a) == src(b), f"run: jupytext --sync {nb.relative_to(REPO)}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_points_at_this_notebook(nb):
    first = jupytext.read(nb).cells[0]
    assert first.cell_type == "markdown"
    assert course.badge(f"notebooks/{nb.name}") in first.source


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_install_cell_uses_this_repository_and_leaves_torch_alone(nb):
    code = [c.source for c in jupytext.read(nb).cells if c.cell_type == "code"]
    install = code[0]
    assert 'if "google.colab" in sys.modules' in install
    assert course.install_spec() in install
    code_only = "\n".join(line.split("#")[0] for line in install.splitlines())
    assert not re.search(r"\btorch(vision)?\b", code_only), "never reinstall torch on Colab"


def test_readme_badges_and_test_command():
    readme = (REPO / "README.md").read_text()
    for nb in NOTEBOOKS:
        assert course.colab_url(f"notebooks/{nb.name}") in readme, nb.name
    m = re.search(r"<!-- test-command -->\s*```bash\n(.*?)\n```", readme, re.S)
    assert m, "README must hold the test command in a marked block"
    command = m.group(1).strip().splitlines()[-1]
    assert command in (REPO / ".ci" / "run").read_text()
    assert command in (REPO / ".github" / "workflows" / "ci.yml").read_text()
