"""The CycleGAN notebook's script twin, run on the CPU with its CUDA-graph training step switched on.

    python tests/scripts/graphed_cyclegan.py graphs   # GraphedStep over tests/fakegraph.py's stand-in
    python tests/scripts/graphed_cyclegan.py eager    # the same settings, the eager fast step

On a GPU the notebook records and replays its step as CUDA graphs. There is no GPU here, so this
runs the notebook's cells in order (as `python notebooks/02_cyclegan.py` does) with three changes
made right after the cell that defines them:

- torch.cuda's graph API is the CPU stand-in (recording executes nothing, replays repeat the
  recorded operations with the host values of the recording baked in);
- GraphedStep accepts CPU tensors and is on whenever there is no gradient scaler (on a GPU:
  whenever the optimizers are graph-capturable, which they are unless the run is fp16);
- Adam is the fused implementation in both modes (its step count stays a tensor, as the
  capturable one's does on a GPU), so the two modes differ only in graphs versus eager.

The whole notebook runs: the loop with its checkpoints and resume, the learning-rate decay
(which makes the step record again), the translation grids between replays, FID and play.
It ends by printing how many recordings and replays there were.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import fakegraph  # noqa: E402

from colabkit import nbcells  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "graphs"
assert MODE in ("graphs", "eager"), MODE
NOTEBOOK = ROOT / "notebooks" / "02_cyclegan.py"


class _SetAttr:   # fakegraph.install takes pytest's monkeypatch; a plain setattr will do here
    @staticmethod
    def setattr(obj, name, value):
        setattr(obj, name, value)


def _patch(ns: dict) -> None:
    graphed, make_optimizers = ns["GraphedStep"], ns["make_optimizers"]
    graphed.device_type = "cpu"
    init = graphed.__init__

    def __init__(self, m, fs, *args, **kwargs):
        init(self, m, fs, *args, **kwargs)
        self.enabled = MODE == "graphs" and fs.scaler is None

    graphed.__init__ = __init__
    ns["make_optimizers"] = lambda *a, fused=False, capturable=False, **k: make_optimizers(*a, fused=True, **k)


if MODE == "graphs":
    fakegraph.install(_SetAttr())
ns = {"__name__": "__main__", "__file__": str(NOTEBOOK)}
patched = False
for i, (header, source) in enumerate(nbcells.cells(NOTEBOOK)):
    if "[markdown]" in header:
        continue
    nbcells.exec_cell(source, ns, f"{NOTEBOOK}:cell-{i}")
    if not patched and "GraphedStep" in ns and "make_optimizers" in ns:
        _patch(ns)
        patched = True
assert patched, "the notebook no longer defines GraphedStep and make_optimizers"

step = ns["train_step"]
print(f"GRAPHS mode={MODE} enabled={step.enabled} recordings={step.captures} "
      f"graph contexts={fakegraph.FakeGraphContext.recorded}")
