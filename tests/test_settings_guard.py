"""The changed-settings guard cannot miss a setting: for each notebook, every name its settings cell
assigns is changed in turn and a resume must stop with ck.ConfigMismatch naming it, except the
speed-only settings, pinned here by name, which must resume with a note.

The settings cell runs as the notebook's script twin runs it (the cells before it, then its own
statements up to `cfg = ...`, compiled under the notebook's file name and line numbers); no
training. Which names are settings is found by running the cell (the names it binds), not by
asking ck.settings, so a name ck.settings overlooked, or a cfg written by hand that leaves one
out, fails here.
"""

import ast
import re
import types

import pytest
import torch
from resume_util import REPO, isolate_colabkit

import colabkit as ck
from colabkit import nbcells
from colabkit.config import SPEED

# The speed-only settings of each notebook: they alone may differ from a checkpoint's. Adding a
# name to a notebook's speed_only list fails here until it is added here too, on purpose.
SPEED_ONLY = {
    "00_start_here": {"ALLOW_CPU"},
    "01_began": {"NUM_WORKERS"},
    "02_cyclegan": {"STEP", "CUDA_GRAPHS", "COMPILE", "NUM_WORKERS"},
    "03_stackgan": {"WORKERS"},
}
# Names the settings cell assigns below its `cfg = ...`: the run and what follows from the device
# ck.setup picked, not settings. Anything else there would escape cfg.
BELOW_CFG = {
    "00_start_here": set(),
    "01_began": {"run", "CUDA", "CHANNELS_LAST"},
    "02_cyclegan": set(),
    "03_stackgan": {"run", "device", "CHANNELS_LAST", "MEMORY_FORMAT"},
}


def changed(value):
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, (tuple, list)):
        return type(value)([changed(value[0]), *value[1:]]) if value else [0]
    if isinstance(value, dict):
        return {**value, "changed": 1}
    if value is None:
        return 1
    raise TypeError(f"no change defined for {value!r}")


def is_setting(value) -> bool:
    return not isinstance(value, (types.ModuleType, type)) and not callable(value)


class SettingsCell:
    """A notebook's settings cell (the code cell that assigns `cfg`), split around that statement."""

    def __init__(self, path):
        self.path = path
        cells = nbcells.cells(path)
        marks = [i for i, line in enumerate(path.read_text().splitlines()) if nbcells._HEADER.match(line)]
        assert len(marks) == len(cells)
        found = []
        for k, (header, source) in enumerate(cells):
            if "[markdown]" in header:
                continue
            tree = ast.parse(source)
            ast.increment_lineno(tree, marks[k] + 1)   # the cell's first line is the line after its marker
            at = [i for i, s in enumerate(tree.body) if isinstance(s, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "cfg" for t in s.targets)]
            if at:
                found.append((k, tree, at))
        assert len(found) == 1 and len(found[0][2]) == 1, f"{path.name}: one `cfg = ...` in one cell expected"
        k, tree, (i,) = found[0]
        self.before_cells = [src for h, src in cells[:k] if "[markdown]" not in h]
        self.above = self._compile(tree.body[:i])
        self.cfg_statement = self._compile(tree.body[i:i + 1])
        self.below = tree.body[i + 1:]

    def _compile(self, statements):
        return compile(ast.Module(body=statements, type_ignores=[]), str(self.path), "exec")

    def run(self):
        """Execute the earlier code cells and the cell down to `cfg = ...`; return the namespace and
        the settings: the names the cell bound, with their values."""
        ns = {"__name__": "__main__"}
        for src in self.before_cells:
            exec(compile(src, str(self.path), "exec"), ns)
        before = dict(ns)
        exec(self.above, ns)
        bound = {k: v for k, v in ns.items() if k != "__builtins__" and (k not in before or v is not before[k])}
        return ns, {k: v for k, v in bound.items() if is_setting(v)}

    def cfg(self, ns, **override):
        """cfg as the cell's `cfg = ...` builds it, with some settings given other values first."""
        ns = {**ns, **override}
        exec(self.cfg_statement, ns)
        return ns["cfg"]

    def names_below(self):
        return {n.id for s in self.below for n in ast.walk(s)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


@pytest.fixture
def home(tmp_path, monkeypatch):
    isolate_colabkit(monkeypatch, tmp_path / "home", tmp_path / "work")
    monkeypatch.setenv("COLABKIT_ALLOW_CPU", "1")   # ck.setup without a GPU outside smoke mode
    monkeypatch.delenv("COLABKIT_PRECISION", raising=False)
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)   # smoke settings cells set one thread


def open_loop(cfg, capsys):
    """A run with these settings, and its loop resumed from the checkpoint (ConfigMismatch if refused)."""
    run = ck.setup("guard", cfg, verbose=False)
    capsys.readouterr()
    loop = run.loop("train", total_steps=1, state={"s": ck.State(v=0)}, progress=False)
    return loop, capsys.readouterr().out


@pytest.mark.parametrize("smoke", [False, True], ids=["full", "smoke"])
@pytest.mark.parametrize("name", sorted(SPEED_ONLY))
def test_every_setting_is_guarded(name, smoke, home, monkeypatch, capsys):
    if smoke:
        monkeypatch.setenv("COLABKIT_SMOKE", "1")
    cell = SettingsCell(REPO / "notebooks" / f"{name}.py")
    ns, settings = cell.run()
    assert len(settings) >= 10, f"{name}: the settings cell bound only {sorted(settings)}"
    cfg = cell.cfg(ns)
    loop, _ = open_loop(cfg, capsys)
    for _ in loop:   # one step: a checkpoint with these settings
        pass

    escaped, refused = [], []
    for key, value in settings.items():
        new = changed(value)
        try:
            loop, out = open_loop(cell.cfg(ns, **{key: new}), capsys)
        except ck.ConfigMismatch as err:
            lines = re.findall(r"^  (\S+): checkpoint", str(err), re.M)
            if key in SPEED_ONLY[name] or lines != [key]:
                refused.append(f"{key}: {lines}")
            continue
        if key not in SPEED_ONLY[name]:
            escaped.append(f"{key} = {value!r} → {new!r}")
        elif not (loop.resumed_from == 1 and f"{key} " in out and "speed-only" in out):
            refused.append(f"{key}: resumed from {loop.resumed_from}, printed {out!r}")
    assert not escaped, f"{name}: changed, and the guard let the run continue: {escaped}"
    assert not refused, f"{name}: the guard refused a speed-only setting, or named the wrong ones: {refused}"

    speed = cfg.get(SPEED, {})
    missing = [k for k in settings if k not in cfg and k not in speed]
    assert not missing, f"{name}: settings left out of cfg: {missing}"
    assert set(speed) == SPEED_ONLY[name], f"{name}: speed-only settings {sorted(speed)}"
    stray = cell.names_below() - BELOW_CFG[name]
    assert not stray, f"{name}: {sorted(stray)} assigned below `cfg = ...` in the settings cell escape cfg"


# --- ck.settings itself --------------------------------------------------------------------------

CELL = '''\
# %%
import colabkit as ck
# %%
SMOKE = True
A = 1
if SMOKE:
    B, (C, D) = 2, (3, 4)
E = F = "x"
G: int = 5
G += 1
squares = [i * i for i in range(3)]
_private = 0
cfg = ck.settings(speed_only=["G"])
H = 7
# %%
I = 8
'''


def run_script(tmp_path, text):
    path = tmp_path / f"cell{len(list(tmp_path.iterdir()))}.py"
    path.write_text(text)
    ns = {"__name__": "__main__"}
    exec(compile(text, str(path), "exec"), ns)
    return ns


def test_settings_collects_every_name_assigned_above_the_call(tmp_path):
    cfg = run_script(tmp_path, CELL)["cfg"]
    assert cfg == {"SMOKE": True, "A": 1, "B": 2, "C": 3, "D": 4, "E": "x", "F": "x", "squares": [0, 1, 4],
                   "speed": {"G": 6}}
    assert list(cfg) == ["SMOKE", "A", "B", "C", "D", "E", "F", "squares", "speed"]   # the cell's order


def test_settings_errors_say_what_to_do(tmp_path):
    with pytest.raises(ck.SetupError, match=r"speed_only names \['NUM_WORKER'\].*settings are \['A'\]"):
        run_script(tmp_path, "import colabkit as ck\nA = 1\ncfg = ck.settings(speed_only=['NUM_WORKER'])\n")
    with pytest.raises(ck.SetupError, match="T = tensor.*not a plain value.*build the object below"):
        run_script(tmp_path, "import torch\nimport colabkit as ck\nT = torch.zeros(1)\ncfg = ck.settings()\n")
    with pytest.raises(ck.SetupError, match="found none for '<string>'.*exec_cell"):
        exec("import colabkit as ck\nA = 1\ncfg = ck.settings()\n", {"__name__": "__main__"})
    with pytest.raises(ck.SetupError, match="top level"):
        run_script(tmp_path, "import colabkit as ck\ndef f():\n    return ck.settings()\nf()\n")


def test_setup_seeds_from_the_SEED_setting(home):
    assert ck.setup("s", {"SEED": 7}, verbose=False).seed == 7
    assert ck.setup("s", {"seed": 5}, verbose=False).seed == 5


def test_settings_reads_the_cell_in_a_kernel(tmp_path):
    # In Jupyter and Colab a cell is compiled from IPython's cache of its source, not from a file.
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell()
    shell.run_cell("import colabkit as ck", store_history=True)
    shell.run_cell("LR = 2e-4\nNUM_WORKERS = 2\nBETAS = (0.5, 0.999)\ncfg = ck.settings(speed_only=['NUM_WORKERS'])\n"
                   "later = 1", store_history=True).raise_error()
    assert shell.user_ns["cfg"] == {"LR": 2e-4, "BETAS": [0.5, 0.999], "speed": {"NUM_WORKERS": 2}}
    shell.run_cell("LR = 1e-4\ncfg = ck.settings()", store_history=True).raise_error()   # a re-run, same kernel
    assert shell.user_ns["cfg"] == {"LR": 1e-4}   # this cell's names only, not the kernel's
