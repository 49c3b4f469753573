"""A CPU stand-in for CUDA graphs, strict enough to test code that records and replays them.

A CUDA graph records the kernels a piece of code launches and replays them later on the same
memory. What that means for the code around it, and what this stand-in reproduces:

- recording executes nothing: every tensor that existed before is unchanged afterwards (the
  stand-in runs the code, then restores whatever it wrote in place), and what the recording
  allocated holds garbage until the first replay (the stand-in fills it with NaN);
- a replay repeats the recorded operations on the recorded tensors, so numbers the Python code
  read while recording (a learning rate, a shape, a bias correction computed on the host) are
  baked in, and outputs are overwritten by the next replay;
- reading a value back to the host while recording is an error.

It works at the ATen level (a TorchDispatchMode), below autograd, so the backward pass and the
optimizer's kernels are recorded like the forward pass. It does not model streams, memory pools
or anything CUDA-specific: it checks the bookkeeping of code that uses graphs, not CUDA.
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_HOST_READ = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default}


def _tensors(value) -> list:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def _written(func, args, kwargs) -> list:
    out = []
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is not None and arg.alias_info.is_write:
            value = args[i] if i < len(args) and not arg.kwarg_only else kwargs.get(arg.name)
            out += _tensors(value)
    return out


def _fresh_outputs(func, out) -> list:
    """Outputs that are new memory (not views of, or the same as, an input)."""
    returns = func._schema.returns
    values = list(out) if isinstance(out, (tuple, list)) and len(returns) > 1 else [out]
    fresh = []
    for ret, value in zip(returns, values):
        if ret.alias_info is None:
            fresh += _tensors(value)
    return fresh


def _below_autograd():
    """Run ATen ops at the level the recorder saw them: below autograd and view tracking."""
    return torch._C._AutoDispatchBelowADInplaceOrView()


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list = []
        self.before: dict = {}   # id -> (tensor, its value before the first write)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _HOST_READ:
            raise RuntimeError(f"{func}: reading a value to the host while recording a graph")
        written = _written(func, args, kwargs)
        for t in written:
            if id(t) not in self.before:
                self.before[id(t)] = (t, t.clone())
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, [] if written else _fresh_outputs(func, out)))
        return out


class FakeCUDAGraph:
    """torch.cuda.CUDAGraph's recording and replay, on the CPU."""

    def __init__(self):
        self.ops: list | None = None
        self.replays = 0

    def replay(self) -> None:
        assert self.ops is not None, "replay() of a graph that was never recorded"
        with _below_autograd():   # kernels only, as recorded: no autograd bookkeeping
            for func, args, kwargs, outputs in self.ops:
                out = func(*args, **kwargs)
                for old, new in zip(outputs, _fresh_outputs(func, out)):
                    old.copy_(new)
        self.replays += 1


class FakeGraphContext:
    """`with torch.cuda.graph(g): ...` with a FakeCUDAGraph; set `fail` to make recording raise."""

    fail: Exception | None = None
    recorded = 0

    def __init__(self, graph: FakeCUDAGraph, pool=None, stream=None, capture_error_mode: str = "global"):
        self.graph = graph
        self.recorder = _Recorder()

    def __enter__(self):
        if FakeGraphContext.fail is not None:
            raise FakeGraphContext.fail
        self.recorder.__enter__()
        return self

    def __exit__(self, *exc):
        self.recorder.__exit__(*exc)
        with _below_autograd():
            for _, _, _, outputs in self.recorder.ops:   # allocated by the recording: garbage
                for t in outputs:
                    if t.is_floating_point():
                        t.fill_(float("nan"))
            for t, value in self.recorder.before.values():   # recording executed nothing
                t.copy_(value)
        if exc[0] is None:
            self.graph.ops = self.recorder.ops
            FakeGraphContext.recorded += 1
        return False


class _FakeStream:
    def wait_stream(self, other) -> None:
        pass


def install(monkeypatch) -> None:
    """Replace the parts of torch.cuda that graph-recording code calls, for one test."""
    FakeGraphContext.fail, FakeGraphContext.recorded = None, 0
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeCUDAGraph)
    monkeypatch.setattr(torch.cuda, "graph", FakeGraphContext)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a, **k: _FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
