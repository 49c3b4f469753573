"""The "Start here" notebook, run as its script twin in smoke mode.

Its simulated disconnect must resume at the step of session 1's last checkpoint (not at 0, not at
the step where the VM died), and the three loops it trains (uninterrupted, disconnected then resumed,
interrupted then resumed) must end in identical checkpoints. A second run in the same folders (Run all
after a reconnect) must skip the finished training and repeat the demonstrations from step 0.
"""

import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from resume_util import REPO, assert_same, env_for, run_to_end

SCRIPT = REPO / "notebooks" / "00_start_here.py"
RUN = "start-here-smoke"


def _settings():
    """The smoke values of the notebook's settings cell (read from the source, not duplicated here)."""
    src = SCRIPT.read_text()
    smoke = src[src.index("if SMOKE:"):]
    get = lambda name: int(re.search(rf"^\s+{name} = (\d+)", smoke, re.M).group(1))
    return {k: get(k) for k in ("TOTAL_STEPS", "SAVE_EVERY_STEPS", "DISCONNECT_AT", "INTERRUPT_AT")}


def _final(home, loop, total):
    path = home / RUN / loop / "checkpoints" / f"ckpt-{total:09d}.pt"
    return torch.load(path, weights_only=True)


def test_start_here_resumes_after_the_simulated_disconnect(tmp_path):
    s = _settings()
    home, work = tmp_path / "home", tmp_path / "work"
    env = env_for(home, work, COLABKIT_SMOKE=1, MPLBACKEND="Agg")
    env.pop("COLABKIT_SAVE_EVERY_STEPS", None)
    env.pop("COLABKIT_PRECISION", None)
    out = run_to_end([sys.executable, str(SCRIPT)], env, REPO, timeout=300)

    last_ckpt = s["DISCONNECT_AT"] // s["SAVE_EVERY_STEPS"] * s["SAVE_EVERY_STEPS"]
    assert 0 < last_ckpt < s["DISCONNECT_AT"], "the smoke settings should lose a few steps to the disconnect"
    m = re.search(r"session 1 stopped before step (\d+); its last checkpoint was step (\d+)", out)
    assert m and (int(m.group(1)), int(m.group(2))) == (s["DISCONNECT_AT"], last_ckpt), out[-3000:]
    # The new loop of session 2 says where it continues: the checkpoint's step, mid-epoch.
    m = re.search(r"\[disconnect\] resumed from ckpt-(\d{9})\.pt: step (\d+) of (\d+) \(epoch (\d+), batch (\d+)", out)
    assert m, out[-3000:]
    assert int(m.group(1)) == int(m.group(2)) == last_ckpt and int(m.group(3)) == s["TOTAL_STEPS"]
    assert int(m.group(5)) > 0, "the smoke settings are chosen so that the resume lands mid-epoch"
    assert f"session 2 resumed at step {last_ckpt}," in out
    assert "identical to the uninterrupted run" in out
    # Interrupt: the step in progress is finished and saved, so the next session starts right after it.
    after = s["INTERRUPT_AT"] + 1
    assert "Interrupt received" in out and f"stopped at step {after}; checkpoint saved" in out
    assert re.search(rf"\[interrupt\] resumed from ckpt-{after:09d}\.pt: step {after} of", out)

    # Independently of the notebook's own assertions: the final checkpoints agree bit for bit.
    ref = _final(home, "train", s["TOTAL_STEPS"])
    for loop in ("disconnect", "interrupt"):
        got = _final(home, loop, s["TOTAL_STEPS"])
        n = assert_same(ref["state"], got["state"])
        assert n > 50          # weights, batch-norm buffers, both Adams' moments, z_fixed
        assert_same(ref["rng"], got["rng"])
    assert ref["history"] == _final(home, "disconnect", s["TOTAL_STEPS"])["history"]

    # Outside a notebook every figure is saved as a PNG in the run's local folder (its path printed),
    # then closed: the curves, the JPEG comparison and the sample grids can be opened afterwards.
    figures = _figures(out, work)
    assert "More than 20 figures" not in out
    assert [p.parent for p in figures[1:]] == [work / RUN / "figures"] * (len(figures) - 1)
    assert figures[0].parent == work / "figures"          # the one figure drawn before ck.setup
    assert any("g-z-fixed" in p.name for p in figures) and any("history" in p.name for p in figures)

    # Run all again in the same folders, as after a reconnect: the finished loop is restored, not retrained,
    # and the demonstrations start over and pass again.
    again = run_to_end([sys.executable, str(SCRIPT)], env, REPO, timeout=300)
    assert f"[train] resumed from ckpt-{s['TOTAL_STEPS']:09d}.pt" in again and "already complete" in again
    assert f"session 2 resumed at step {last_ckpt}," in again
    assert again.count("identical to the uninterrupted run") == 2
    assert _figures(again, work) == figures                 # the same files, drawn again, not new ones


def _figures(out, work):
    """The PNG files a run printed ("figure: PATH"), each checked to be a real picture."""
    paths = [Path(m) for m in re.findall(r"^figure: (.+\.png)$", out, re.M)]
    assert len(paths) >= 6, out[-3000:]
    assert len(set(paths)) == len(paths)
    for path in paths:
        assert path.is_relative_to(work) and path.stat().st_size > 5000, path
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) >= 100, (path, im.size)
            assert np.asarray(im.convert("L")).std() > 5, f"{path} is blank"
    return paths
