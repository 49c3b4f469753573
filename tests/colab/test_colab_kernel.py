"""Each notebook as a learner runs it on Colab, in Colab's package versions (.venv-colab): a real Jupyter
kernel with google.colab imported before the first cell, Run all from the install cell on (which pip-
installs the course from this checkout), the kernel SIGKILLed after the first complete checkpoint of the
training loop, the VM recycled (/content and the installed course gone, Drive kept), and Run all again:
the notebook resumes mid-epoch and ends bit for bit (state and RNG) where an uninterrupted run ends. The
resumed kernel then drives the notebook's play widgets as Colab's front end does (ipywidgets 7.7.1) and
starts TensorBoard with ck.tensorboard (tensorboard 2.20 + setuptools 75.2), whose HTTP API must list
the run's scalars."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import torch
from colabvm import REPO, ColabVM, cell_text, run_code

from colabkit import assert_identical

NB = REPO / "notebooks"


def _newest_complete_step(folder):
    steps = [int(p.name[5:14]) for p in folder.glob("ckpt-*.pt") if (folder / (p.name + ".sha256")).is_file()]
    return max(steps, default=None)


def _finals(mydrive, run):
    """{loop: (file name, payload)} of the newest checkpoint of each loop of a run on Drive."""
    out = {}
    for folder in sorted((mydrive / "colabkit" / run).glob("*/checkpoints")):
        last = sorted(folder.glob("ckpt-*.pt"))[-1]
        out[folder.parent.name] = (last.name, torch.load(last, map_location="cpu", weights_only=True))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 60):
    t0, last = time.monotonic(), None
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError) as e:
            last = e
            time.sleep(0.5)
    raise AssertionError(f"TensorBoard did not answer {url}: {last}")


# --- the play sections, driven as the browser drives them (colab_frontend in tests/colab/vm) ------------


PRELUDE = """
import colab_frontend as fe
from IPython import get_ipython
_pngs = []
_pub = get_ipython().display_pub
_publish = _pub.publish
def _counting(data, *args, **kwargs):
    _pngs.extend(["png"] if "image/png" in data else [])
    return _publish(data, *args, **kwargs)
_pub.publish = _counting
def drew():   # pictures displayed (into the widgets' Output areas) since the last call
    n = len(_pngs)
    _pngs.clear()
    return n
"""

PLAY = {
    "00_start_here": None,   # no widgets in this notebook
    "01_began": """
seen = []
_draw = draw
def draw(alpha):
    g, r = _draw(alpha)
    seen.append((float(alpha), g.float().cpu().clone()))
    return g, r
drew()
fe.update(slider, value=0.25)
assert drew() == 1, "moving the slider should draw one figure"
assert slider.value == 0.25 and [a for a, _ in seen] == [0.25], seen
assert torch.equal(seen[-1][1], generate_and_reconstruct(0.25)[0].float().cpu())
a_before = ends["a"].clone()
fe.click(button)
assert drew() == 1
assert len(seen) == 2 and seen[-1][0] == 0.25 and not torch.equal(ends["a"], a_before)
print("PLAY-OK slider", slider.value, "resampled", len(seen))
""",
    "02_cyclegan": """
import numpy as np
from PIL import Image as _Image
shown_in = []
_show = show
def show(image):
    grid = _show(image)
    shown_in.append((image.size, np.asarray(image.convert("RGB")).copy(), grid))
    return grid
drew()
fe.update(picker, index=1)
assert drew() == 1, "picking a test image should draw one figure"
assert picker.value == choices[1][1], picker.value
assert np.array_equal(shown_in[-1][1], np.asarray(load_rgb(choices[1][1]).convert("RGB")))
pixels = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
buf = io.BytesIO()
_Image.fromarray(pixels).save(buf, format="PNG")
fe.upload(upload, "my_horse.png", buf.getvalue())
assert drew() == 1, "an upload should draw one figure"
assert isinstance(upload.value, dict) and list(upload.value) == ["my_horse.png"], upload.value
assert upload.value["my_horse.png"]["content"] == buf.getvalue()
assert upload.value["my_horse.png"]["metadata"]["size"] == len(buf.getvalue())
assert len(shown_in) == 2 and shown_in[-1][0] == (56, 40) and np.array_equal(shown_in[-1][1], pixels)
rows = shown_in[-1][2]   # yours both ways, then the authors' released generators where there are some
assert len(rows) == 2 + sum(d in official for d in ("xy", "yx")), [[t for t, _ in row] for row in rows]
assert all(im.shape == (1, 3, CROP_SIZE, CROP_SIZE) and torch.isfinite(im).all()
           for row in rows for _, im in row if im is not None)
print("PLAY-OK picked", picker.index, "uploaded", list(upload.value))
""",
    "03_stackgan": """
drawn, varied_calls = [], []
_draw, _vary = draw, vary_word
def draw(phi, title):
    s0, img = _draw(phi, title)
    drawn.append((title, tuple(img.shape)))
    return s0, img
def vary_word(text, word, replacements):
    img = _vary(text, word, replacements)
    varied_calls.append((text, word, replacements, None if img is None else tuple(img.shape)))
    return img
drew()
fe.update(w_pick, index=1)
assert drew() == 1, "picking a caption should draw one figure"
i, j = test_choices[1][1]
assert w_pick.value == (i, j) and drawn[-1] == (textwrap.shorten(captions["test"][i][j], 90), (1, 3, W, W)), drawn
typed = "a small red bird with black wings and a short beak"
fe.update(w_text, value=typed)
assert drew() == 1
assert encoder is not None, "the install-on-demand sentence encoder should be there on Colab"
assert drawn[-1] == (textwrap.shorten(typed, 90), (1, 3, W, W)), drawn
z_before = play["z"].clone()
fe.click(w_z)
assert drew() == 1
assert not torch.equal(play["z"], z_before) and len(drawn) == 3
fe.update(w_with, value="blue, green")
fe.click(w_vary)
assert drew() == 1
assert varied_calls[-1] == (typed, "red", ["blue", "green"], (3, 3, W, W)), varied_calls
print("PLAY-OK caption", w_pick.index, "typed, new z, varied", varied_calls[-1][3])
""",
}

TB_START = """
import colabkit as ck
cmd = ck.tensorboard(run.work / "tb", port={port}, start=True)
print("TB-COMMAND", cmd)
"""
TB_STOP = """
import os, signal, time
from tensorboard import manager
infos = manager.get_all()
for info in infos:
    os.kill(info.pid, signal.SIGTERM)
folder, t0 = manager._get_info_dir(), time.monotonic()
left = lambda: sorted(n for n in os.listdir(folder) if n.startswith("pid-"))
while left() and time.monotonic() - t0 < 30:   # each server removes its record as it exits
    time.sleep(0.2)
print("TB-STOPPED", sorted(i.port for i in infos), "left:", left())
"""


def _play_and_tensorboard(name, loop, total):
    def then(client, nb):
        res = {}
        if PLAY[name]:
            cell = run_code(client, nb, PRELUDE + PLAY[name])
            res["play"] = cell_text([cell])
        port = res["tb_port"] = _free_port()
        cell = run_code(client, nb, TB_START.format(port=port))
        res["tb_start"] = cell_text([cell])
        res["tb_start_js"] = "".join(o.get("data", {}).get("application/javascript", "") for o in cell.outputs)
        try:
            base = f"http://127.0.0.1:{port}"
            tags = _get_json(base + "/data/plugin/scalars/tags")
            res["tb_tags"] = {r: sorted(t) for r, t in tags.items()}
            tag = sorted(tags.get(loop, {}))[0] if tags.get(loop) else None
            if tag:
                q = urllib.parse.urlencode({"run": loop, "tag": tag})
                res["tb_points"] = (tag, [p[1] for p in _get_json(f"{base}/data/plugin/scalars/scalars?{q}")])
        finally:
            cell = run_code(client, nb, TB_STOP)
            res["tb_stop"] = cell_text([cell])
        return res
    return then


CASES = {
    # notebook: (run name, the loop to kill, its smoke total or None, extra env)
    "00_start_here": ("start-here-smoke", "train", None, {}),
    "01_began": ("began-cifar10-gamma0.5-smoke", "train", 60, {"COLABKIT_SAVE_EVERY_STEPS": 1}),
    "02_cyclegan": ("cyclegan-horse2zebra-smoke", "train", 40, {"COLABKIT_SAVE_EVERY_STEPS": 1}),
    "03_stackgan": ("stackgan-cub-smoke", "stage2", None, {"COLABKIT_SAVE_EVERY_STEPS": 1}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_notebook_in_colab_kernel_killed_and_run_all_again(name, github, tmp_path):
    run, loop, total, extra = CASES[name]
    notebook = NB / f"{name}.ipynb"
    timings = {}

    ref_vm = ColabVM(tmp_path / "ref", github, **extra)
    ref = ref_vm.run_all(notebook)
    timings["uninterrupted"] = ref["seconds"]
    assert "Successfully installed" not in ref["text"]          # pip -q: the install cell prints nothing
    ref_final = _finals(ref_vm.mydrive, run)
    assert loop in ref_final

    vm = ColabVM(tmp_path / "vm", github, **extra)
    folder = vm.mydrive / "colabkit" / run / loop / "checkpoints"
    killed = vm.run_all(notebook, kill_when=lambda: _newest_complete_step(folder) is not None)
    timings["killed"] = killed["seconds"]
    at_kill = _newest_complete_step(folder)
    assert killed["killed"] and at_kill is not None
    assert f"[{loop}] finished" not in killed["text"], killed["text"][-3000:]
    stage1 = vm.mydrive / "colabkit" / run / "stage1" / "checkpoints"
    stage1_files = {p.name: p.read_bytes() for p in stage1.iterdir()} if stage1.is_dir() else None

    again = vm.run_all(notebook, then=_play_and_tensorboard(name, loop, total))
    timings["resumed"] = again["seconds"]
    text = again["text"]
    m = re.search(rf"\[{loop}\] resumed from ckpt-(\d{{9}})\.pt: step ([\d,]+) of ([\d,]+) "
                  r"\(epoch (\d+), batch (\d+) of (\d+)\)", text)
    assert m, text[-4000:]
    step = int(m.group(2).replace(",", ""))
    assert int(m.group(1)) == step == at_kill and step < int(m.group(3).replace(",", "")), m.group(0)
    assert int(m.group(5)) > 0, f"not mid-epoch: {m.group(0)}"
    print(f"{name}: killed with ckpt {at_kill} on Drive; Run all again: {m.group(0)}")

    if name == "03_stackgan":   # Stage-I restored as complete, not one step trained again
        assert stage1_files, "Stage-I should have finished before Stage-II was killed"
        assert re.search(r"\[stage1\] resumed from ckpt-(\d{9})\.pt: step \d+ of \d+.*already complete", text)
        assert "[stage1] finished" not in text and "[stage1] no checkpoint" not in text
        assert {p.name: p.read_bytes() for p in stage1.iterdir()} == stage1_files

    got_final = _finals(vm.mydrive, run)
    assert sorted(got_final) == sorted(ref_final)
    compared = 0
    for lp, (fname, a) in ref_final.items():
        gname, b = got_final[lp]
        assert fname == gname and a["step"] == b["step"] == a["meta"]["total_steps"], (lp, fname, gname)
        if total and lp == loop:
            assert a["step"] == total
        compared += assert_identical(a["state"], b["state"], f"{lp}.state") + assert_identical(a["rng"], b["rng"])
    assert compared > 50
    print(f"{name}: final checkpoints {[(lp, f) for lp, (f, _) in ref_final.items()]} bit-identical "
          f"({compared} tensors, state and RNG)")

    res = again["extra"]
    if PLAY[name]:
        assert "PLAY-OK" in res["play"], res["play"]
        print(f"{name}: {res['play'].strip().splitlines()[-1]}")
    assert "TensorBoard did not start" not in res["tb_start"], res["tb_start"]
    # the magic took Colab's path (google.colab imported): a script that frames the proxied port
    assert f"google.colab.kernel.proxyPort({res['tb_port']}," in res["tb_start_js"], res["tb_start"]
    assert loop in res["tb_tags"] and res["tb_tags"][loop], res["tb_tags"]
    tag, steps = res["tb_points"]
    assert steps == sorted(set(steps)), f"{tag}: steps repeat or go back after the resume: {steps}"
    assert steps[-1] <= ref_final[loop][1]["step"] and steps[-1] > at_kill, steps
    assert f"TB-STOPPED [{res['tb_port']}] left: []" in res["tb_stop"], res["tb_stop"]
    with pytest.raises(OSError):   # and its port is closed
        urllib.request.urlopen(f"http://127.0.0.1:{res['tb_port']}/", timeout=5)
    print(f"{name}: TensorBoard listed {res['tb_tags']}; {tag} at steps {steps[0]}..{steps[-1]}")
    print(f"{name}: seconds {json.dumps({k: round(v, 1) for k, v in timings.items()})}")

