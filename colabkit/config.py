"""A run's settings, collected from the notebook's settings cell, so that none escapes the changed-settings check.

    SEED = 0
    LR = 2e-4                 # ...every setting, a plain name with a comment...
    NUM_WORKERS = 2
    cfg = ck.settings(speed_only=["NUM_WORKERS"])

`ck.settings()` reads the code of the cell that calls it and takes every name that cell assigns
above the call (inside `if SMOKE:` too), with the value it has now. `ck.setup(name, cfg)` stores the
result with each checkpoint, and a later session whose values differ stops (colabkit.loop). A
setting added to the cell is guarded from then on; none has to be copied into a dict by hand.

`speed_only` names settings that change how fast a run trains, never what it computes (data loader
processes, a compiled or graph-replayed step). They are kept apart under cfg["speed"]: recorded in
each checkpoint, and allowed to change between sessions (the loop prints a note when they do).
"""

from __future__ import annotations

import ast
import json
import linecache
import os
import re
import sys
from collections.abc import Iterable


class SetupError(RuntimeError):
    """The run cannot be set up as asked (a setting, the device, Drive); the message says what to do."""

SPEED = "speed"   # cfg[SPEED]: the speed-only settings, which may differ from the checkpoint's

_CELL_MARK = re.compile(r"^# %%")
_NEW_SCOPE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
              ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def is_speed_key(key: str) -> bool:
    """True for a diff_config key inside cfg["speed"] (or the whole section, added or removed)."""
    return key == SPEED or key.startswith(SPEED + ".")


def settings(speed_only: Iterable[str] = ()) -> dict:
    """Every name the calling cell assigns above this call, with its current value, as a plain dict.

    Call it at the top level of the settings cell, after the last setting. In a Jupyter/Colab
    kernel the cell's code comes from IPython's cache of it; in a script (a notebook's py:percent
    twin) from the file, the cell being the lines between its `# %%` markers.
    """
    frame = sys._getframe(1)
    if frame.f_code.co_name != "<module>":
        raise SetupError("Call ck.settings() at the top level of the settings cell, not inside a function: "
                         "it collects the names that cell assigns.")
    names = cell_settings(frame.f_code.co_filename, frame.f_lineno, frame.f_globals)
    return build(names, frame.f_locals, speed_only)


def build(names: list[str], namespace: dict, speed_only: Iterable[str] = ()) -> dict:
    """cfg from `names` looked up in `namespace`; the `speed_only` ones go under cfg["speed"]."""
    speed_only = list(speed_only)
    unknown = [n for n in speed_only if n not in names]
    if unknown:
        raise SetupError(f"speed_only names {unknown}, which the settings cell does not assign; "
                         f"its settings are {names}.")
    if SPEED in names:
        raise SetupError(f"A setting may not be called {SPEED!r}: cfg[{SPEED!r}] holds the speed-only settings.")
    cfg: dict = {}
    speed: dict = {}
    for name in names:
        if name not in namespace:   # assigned only in a branch not taken (e.g. under `if SMOKE:`)
            continue
        value = namespace[name]
        try:
            plain = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            raise SetupError(
                f"The setting {name} = {value!r} is not a plain value (a number, string, bool, None, or a "
                "list/tuple/dict of them), so a checkpoint cannot record it. Write it as a plain value "
                f"(e.g. a name in a string) and build the object below the settings. ({exc})") from exc
        (speed if name in speed_only else cfg)[name] = plain
    if speed:
        cfg[SPEED] = speed
    return cfg


def cell_settings(filename: str, lineno: int, module_globals: dict | None = None) -> list[str]:
    """The names assigned, at the top level of the cell holding line `lineno` of `filename`, by the
    statements before the one on that line; in order of first assignment."""
    if os.path.isfile(filename):   # a script edited since it was cached; IPython's cells are not files
        linecache.checkcache(filename)
    lines = linecache.getlines(filename, module_globals)
    if not lines:
        raise SetupError(f"ck.settings() reads the code of the cell that calls it and found none for {filename!r}. "
                         "Call it in the settings cell of a notebook or in a script file; code run with exec() "
                         "needs its source in linecache first (colabkit.nbcells.exec_cell does that).")
    start = 0          # 0-based index of the cell's first line
    end = len(lines)
    for i, line in enumerate(lines):
        if _CELL_MARK.match(line):
            if i < lineno:
                start = i + 1
            else:
                end = i
                break
    source = "".join(lines[start:end])
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise SetupError(f"ck.settings() could not parse the cell that calls it ({filename}, line {lineno}): {exc}") \
            from exc
    call = lineno - start   # the call's line, counted from the cell's first line (1-based, as ast does)
    names: list[str] = []
    for stmt in tree.body:
        if stmt.end_lineno >= call:
            break
        for name in _stored_names(stmt):
            if not name.startswith("_") and name not in names:
                names.append(name)
    return names


def _stored_names(node: ast.AST) -> list[str]:
    """Names bound by assignments in `node`, at its own scope (not in functions or comprehensions)."""
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, _NEW_SCOPE):
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.append((n.lineno, n.col_offset, n.id))
        stack.extend(ast.iter_child_nodes(n))
    return [name for *_, name in sorted(out)]
