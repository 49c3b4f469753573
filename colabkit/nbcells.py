"""Load the definition cells of a notebook's py:percent twin without running the whole lesson.

Cells whose header carries a tag, e.g. `# %% tags=["lib"]`, hold the paper's code (networks,
losses, the training step). Benchmarks and tests execute just those cells, so the code they
measure is the notebook's own, with no copy to drift from it.
"""

from __future__ import annotations

import linecache
import re
import sys
import types
from pathlib import Path

_HEADER = re.compile(r"^# %%(.*)$")


def cells(path: str | Path) -> list[tuple[str, str]]:
    """(header, source) for every cell of a py:percent file."""
    return [(header, source) for header, source, _ in _cells_at(Path(path).read_text())]


def _cells_at(text: str) -> list[tuple[str, str, int]]:
    """(header, source, line of the header) for every cell; the source starts on the next line."""
    out, header, at, lines = [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            if header is not None:
                out.append((header, "\n".join(lines), at))
            header, at, lines = m.group(1), number, []
        elif header is not None:
            lines.append(line)
    if header is not None:
        out.append((header, "\n".join(lines), at))
    return out


def exec_cell(source: str, namespace: dict, filename: str) -> None:
    """Execute one cell's source in `namespace`, as a kernel does: the source is registered with
    linecache under `filename` (as IPython registers each cell), so tracebacks show its lines and
    ck.settings() can read the cell that calls it."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)


def load(path: str | Path, tag: str = "lib", namespace: dict | None = None) -> types.SimpleNamespace:
    """Execute, in order, the cells tagged `tag`; return what they define."""
    if namespace is None:
        # A real module in sys.modules, so that what needs one (dataclasses, pickling) works.
        stem = re.sub(r"\W", "_", Path(path).stem)
        module = types.ModuleType(f"nbcells_{stem}")
        sys.modules[module.__name__] = module
        ns = module.__dict__
    else:
        ns = namespace
    filename = str(Path(path).resolve())
    text = Path(path).read_text()
    # The text executed, for tracebacks, even if the file changes on disk afterwards.
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    found = 0
    for header, source, at in _cells_at(text):
        if "[markdown]" in header or not re.search(rf"tags=\[[^\]]*[\"']{re.escape(tag)}[\"']", header):
            continue
        # Compiled under the file's own name, padded so that line numbers are the file's: a traceback
        # (and inspect.getsource) shows the notebook's .py twin at the right line.
        exec(compile("\n" * at + source, filename, "exec"), ns)
        found += 1
    if not found:
        raise ValueError(f"{path} has no cells tagged {tag!r}")
    return types.SimpleNamespace(**{k: v for k, v in ns.items() if not k.startswith("__")})
