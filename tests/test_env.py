"""setup(): Colab branch with a stand-in google.colab module, Drive mount failures, GPU/precision choice."""

import inspect
import sys
import types

import pytest
import torch

import colabkit as ck
import colabkit.env as env


@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    """A google.colab stand-in whose drive.mount has the documented signature and makes MyDrive."""
    calls = []

    def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
        calls.append({"mountpoint": mountpoint, "force_remount": force_remount, "timeout_ms": timeout_ms,
                      "readonly": readonly})
        if fake.fail:
            raise ValueError("mount failed")
        (tmp_path / "content" / "drive" / "MyDrive").mkdir(parents=True, exist_ok=True)

    drive = types.SimpleNamespace(mount=mount, flush_and_unmount=lambda: None)
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(env, "DRIVE_MOUNT", str(tmp_path / "content" / "drive"))
    monkeypatch.setattr(env, "COLAB_WORK", str(tmp_path / "content" / "colabkit"))
    for var in ("COLABKIT_HOME", "COLABKIT_WORK", "COLABKIT_SMOKE"):
        monkeypatch.delenv(var, raising=False)
    fake = types.SimpleNamespace(calls=calls, fail=False, root=tmp_path)
    return fake


def test_colab_setup_mounts_drive_and_keeps_runs_under_mydrive(fake_colab, capsys):
    assert ck.in_colab()
    run = ck.setup("began", {"seed": 1, "lr": 1e-4}, allow_cpu=True)
    assert fake_colab.calls == [{"mountpoint": str(fake_colab.root / "content" / "drive"), "force_remount": False,
                                 "timeout_ms": 120000, "readonly": False}]
    mydrive = fake_colab.root / "content" / "drive" / "MyDrive"
    assert run.home == str(mydrive / "colabkit" / "began")
    assert str(run.cache).startswith(str(mydrive / "colabkit"))
    assert str(run.work).startswith(str(fake_colab.root / "content" / "colabkit"))   # VM disk, not Drive
    out = capsys.readouterr().out
    assert "Google Colab" in out and "no: a new run" in out and str(mydrive) in out


def test_mount_signature_matches_documented_api(fake_colab):
    # The stand-in raises TypeError on any keyword the real drive.mount does not take.
    params = inspect.signature(sys.modules["google.colab"].drive.mount).parameters
    assert list(params) == ["mountpoint", "force_remount", "timeout_ms", "readonly"]
    ck.mount_drive()
    assert fake_colab.calls[-1]["timeout_ms"] == 120000


def test_mount_failure_gives_clear_error(fake_colab):
    fake_colab.fail = True
    with pytest.raises(ck.DriveMountError) as err:
        ck.setup("began", {}, allow_cpu=True)
    msg = str(err.value)
    assert "could not be mounted" in msg and "allow access" in msg and "COLABKIT_HOME" in msg


def test_mount_outside_colab_explains(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)   # import fails
    with pytest.raises(ck.DriveMountError, match="only be mounted inside Colab"):
        ck.mount_drive()


def test_no_gpu_stops_unless_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ck.NoGPUError, match="Change runtime type"):
        ck.detect_device(allow_cpu=False)
    assert ck.detect_device(allow_cpu=True).device.type == "cpu"


@pytest.mark.parametrize("cap,name", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_precision_by_compute_capability(cap, name):
    info = ck.DeviceInfo(torch.device("cuda"), "GPU", 16.0, cap)
    assert info.best_precision().name == name


def test_cpu_precision_is_fp32_with_inert_scaler():
    prec = ck.DeviceInfo(torch.device("cpu"), "CPU").best_precision()
    assert prec.name == "fp32" and prec.dtype is None
    assert not prec.make_scaler().is_enabled()
    with prec.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_local_setup_smoke_suffix_and_resume_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLABKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLABKIT_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("COLABKIT_SMOKE", "1")
    run = ck.setup("demo", {"seed": 0})
    assert run.name == "demo-smoke" and run.device.type in {"cpu", "cuda"}
    w = torch.nn.Linear(2, 2)
    loop = run.loop("train", total_steps=3, state={"w": w}, progress=False)
    for _ in loop:
        pass
    capsys.readouterr()
    ck.setup("demo", {"seed": 0})
    assert "train from step 3" in capsys.readouterr().out


def test_settings_must_be_plain_values(tmp_path, monkeypatch):
    monkeypatch.setenv("COLABKIT_HOME", str(tmp_path))
    with pytest.raises(ck.SetupError, match="plain values"):
        ck.setup("x", {"path": object()}, allow_cpu=True)


def test_precision_of_a_dtype_and_its_autocast_without_the_cast_cache():
    assert ck.Precision.of(None, "cpu").name == "fp32" and ck.Precision.of(torch.float16, "cuda").name == "fp16"
    bf16 = ck.Precision.of(torch.bfloat16, "cpu")
    assert bf16.name == "bf16"
    with pytest.raises(ValueError, match="no precision computes in torch.float64"):
        ck.Precision.of(torch.float64, "cpu")
    with bf16.autocast():
        assert torch.is_autocast_cache_enabled()
    with bf16.autocast(cache=False):   # what CUDA graphs need: casts redone at each use
        assert not torch.is_autocast_cache_enabled()
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
