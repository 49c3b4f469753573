"""ck.show and the pictures of colabkit.board: inline in a notebook, PNG files in a script."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

import colabkit as ck
from colabkit import board


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(board, "_figure_folder", None)
    monkeypatch.setattr(board, "_figures_saved", {})
    board.use_figure_folder(tmp_path / "figures")
    plt.close("all")
    yield tmp_path / "figures"
    plt.close("all")


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_script_saves_numbered_pngs_prints_paths_and_closes(folder, capsys):
    x = torch.linspace(-1, 1, 4 * 3 * 8 * 8).reshape(4, 3, 8, 8)
    ck.show_images(x, nrow=2, title="G(z) after 1,000 steps")
    ck.plot_history({"loss_D": [(0, 1.0), (1, 0.5)], "k_t": [(0, 0.0), (1, 0.1)]}, title="BEGAN, γ = 0.5")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set_title("a curve")
    ck.show()                                   # every open figure
    assert plt.get_fignums() == []              # nothing left open
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["01-g-z-after-1-000-steps.png", "02-began-0-5.png", "03-a-curve.png"]
    printed = capsys.readouterr().out
    for name in names:
        assert f"figure: {folder / name}" in printed
    grid = pixels(folder / names[0])
    assert grid.shape[0] > 200 and grid.shape[1] > 200 and grid.std() > 10   # a picture, not a blank
    with Image.open(folder / names[1]) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_panel_of_a_callers_figure_is_left_to_the_caller(folder):
    fig, axes = plt.subplots(1, 2)
    ck.show_images(torch.zeros(1, 3, 4, 4), ax=axes[0], title="left")
    assert not folder.exists() and plt.fignum_exists(fig.number)
    assert ck.show(fig) == [folder / "01-left.png"]


def test_notebook_shows_inline_and_writes_nothing(folder, monkeypatch):
    shown = []
    monkeypatch.setattr(board, "in_notebook", lambda: True)
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(plt.get_fignums()))
    ck.show_images(torch.zeros(2, 3, 4, 4))
    assert len(shown) == 1 and len(shown[0]) == 1 and plt.get_fignums() == []
    assert not folder.exists()


def test_many_figures_raise_no_open_figures_warning(folder, recwarn):
    for i in range(25):
        ck.show_images(torch.rand(1, 3, 4, 4) * 2 - 1, title=f"sample {i}")
    assert not [w for w in recwarn if "More than 20 figures" in str(w.message)]
    assert len(list(folder.glob("*.png"))) == 25 and plt.get_fignums() == []


def test_setup_points_figures_at_the_runs_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COLABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLABKIT_WORK", str(tmp_path / "work"))
    monkeypatch.setattr(board, "_figure_folder", None)
    run = ck.setup("figures-test", {}, allow_cpu=True, verbose=False)
    assert board._figure_folder == run.work / "figures"
