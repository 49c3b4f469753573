"""colabkit.nbcells: notebook definitions run under the notebook's own file name and line numbers."""

import inspect
import traceback
from pathlib import Path

import pytest

from colabkit import nbcells

REPO = Path(__file__).resolve().parents[1]

NOTEBOOK = '''# %% [markdown]
# # A lesson

# %% tags=["lib"]
SCALE = 2


# %%
print("the lesson itself: not run by nbcells")

# %% tags=["lib"]
def halve(x):
    if x % 2:
        raise ValueError(f"{x} is odd")
    return x // SCALE
'''


def last_frame(exc: BaseException) -> traceback.FrameSummary:
    return traceback.extract_tb(exc.__traceback__)[-1]


def test_a_later_cells_traceback_names_the_file_and_its_line(tmp_path):
    path = tmp_path / "lesson.py"
    path.write_text(NOTEBOOK)
    nb = nbcells.load(path)
    assert nb.halve(4) == 2 and not hasattr(nb, "print")
    with pytest.raises(ValueError) as err:
        nb.halve(3)
    frame = last_frame(err.value)
    raising = NOTEBOOK.splitlines().index('        raise ValueError(f"{x} is odd")') + 1
    assert (frame.filename, frame.lineno) == (str(path.resolve()), raising)
    assert frame.line == 'raise ValueError(f"{x} is odd")'
    assert inspect.getsource(nb.halve).startswith("def halve(x):")
    # the text that ran, even after the file changed on disk
    path.write_text("# %%\n")
    with pytest.raises(ValueError) as err:
        nb.halve(5)
    assert last_frame(err.value).line == 'raise ValueError(f"{x} is odd")'


def test_a_notebook_definition_fails_at_its_line_in_the_py_twin(tmp_path):
    path = REPO / "notebooks" / "02_cyclegan.py"
    nb = nbcells.load(path)
    with pytest.raises(FileNotFoundError) as err:
        nb.list_images(tmp_path)                         # an empty folder
    lines = path.read_text().splitlines()
    raising = next(i for i, line in enumerate(lines, 1) if 'raise FileNotFoundError(f"No images in' in line)
    frame = last_frame(err.value)
    assert Path(frame.filename) == path and frame.lineno == raising, frame
    assert "notebooks/02_cyclegan.py" in "".join(traceback.format_exception(err.value))
