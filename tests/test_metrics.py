"""Tests of colabkit.metrics: IS and FID arithmetic, sample forms, caching, extractors. Offline."""

from __future__ import annotations

import math
import os
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from colabkit import metrics as M
from colabkit.metrics import extractors as E

# ---------------------------------------------------------------------------------------------
# Helpers: extractors whose outputs are known functions of the images
# ---------------------------------------------------------------------------------------------


class LinearExtractor:
    """logits = flat(x) @ A, pool = flat(x) @ B, in float64; counts its calls."""

    def __init__(self, shape=(3, 4, 4), classes=6, dim=5, seed=0, name="linear-test"):
        rng = np.random.default_rng(seed)
        d = int(np.prod(shape))
        self.A = rng.normal(size=(d, classes)) * 0.8
        self.B = rng.normal(size=(d, dim))
        self.name = name
        self.calls = 0
        self.seen = 0

    def __call__(self, x):
        self.calls += 1
        self.seen += len(x)
        flat = x.to(torch.float64).flatten(1)
        return {"logits": flat @ torch.from_numpy(self.A), "pool": flat @ torch.from_numpy(self.B)}

    def ref_logits(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).astype(np.float64) @ self.A

    def ref_pool(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).astype(np.float64) @ self.B


class LabelExtractor:
    """Reads a class label from pixel [0, 0, 0] and predicts it with (near) certainty."""

    name = "label-test"

    def __init__(self, classes, sharpness=100.0):
        self.classes = classes
        self.sharpness = sharpness

    def __call__(self, x):
        label = torch.round((x[:, 0, 0, 0].double() + 1) / 2 * (self.classes - 1)).long()
        logits = torch.nn.functional.one_hot(label, self.classes).double() * self.sharpness
        return {"logits": logits, "pool": logits}


def images(n, seed=0, hw=4):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, hw, hw, generator=g, dtype=torch.float64) * 2 - 1


def labelled_images(labels, classes):
    x = torch.zeros(len(labels), 3, 2, 2, dtype=torch.float64)
    x[:, 0, 0, 0] = torch.as_tensor(labels, dtype=torch.float64) / (classes - 1) * 2 - 1
    return x


def numpy_inception_score(logits: np.ndarray, splits: int):
    """Written out as in the original Inception Score code, in NumPy."""
    z = logits - logits.max(axis=1, keepdims=True)
    preds = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    scores = []
    n = preds.shape[0]
    for i in range(splits):
        part = preds[(i * n // splits):((i + 1) * n // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return np.mean(scores), np.std(scores)


def numpy_fid(mu1, s1, mu2, s2):
    root = scipy.linalg.sqrtm(s1 @ s2).real
    d = mu1 - mu2
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)


def gaussian_stats(n, dim, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    L = rng.normal(size=(dim, dim)) / math.sqrt(dim)
    x = rng.normal(size=(n, dim)) @ L.T + shift
    return x.mean(0), np.cov(x, rowvar=False)


# ---------------------------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------------------------


def test_to_uint8_maps_minus_one_to_one_onto_0_255():
    x = torch.tensor([-1.0, -2.0, 0.0, 1.0, 3.0, -1 + 2 / 255, 1 - 0.4 / 127.5])
    assert M.to_uint8(x).tolist() == [0, 0, 128, 255, 255, 1, 255]
    assert M.to_uint8(x).dtype == torch.uint8
    u = torch.tensor([0, 7, 255], dtype=torch.uint8)
    assert M.to_uint8(u) is u


def test_to_uint8_truncate_is_the_reference_png_writers_rounding():
    # The CycleGAN reference writes images as ((x + 1) / 2 * 255).astype(np.uint8) on float32 arrays.
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x[0, 0, 0, :4] = torch.tensor([-1.0, 1.0, 0.0, 1 - 1e-6])
    ref = ((x.numpy().astype(np.float32) + 1) / 2.0 * 255.0).astype(np.uint8)
    got = M.to_uint8(x, rounding="truncate")
    assert got.dtype == torch.uint8 and np.array_equal(got.numpy(), ref)
    nearest = M.to_uint8(x)
    diff = nearest.int() - got.int()
    assert set(diff.unique().tolist()) == {0, 1}          # truncation is never above rounding ...
    assert 0.4 < diff.float().mean().item() < 0.6         # ... and half a level lower on average
    with pytest.raises(ValueError, match="rounding"):
        M.to_uint8(x, rounding="floor")


def test_shuffle_seed_breaks_up_class_sorted_order():
    # 10 classes, samples sorted by class (like captions of a test set sorted by species): consecutive
    # splits each hold one class, and the score collapses to 1 however good the images are.
    k, per_class = 10, 50
    labels = np.repeat(np.arange(k), per_class)
    logits = torch.full((k * per_class, k), -1e9)
    logits[torch.arange(len(labels)), torch.from_numpy(labels)] = 0.0
    grouped, _ = M.inception_score_from_logits(logits, splits=10)
    assert grouped == pytest.approx(1.0, abs=1e-9)
    shuffled, std = M.inception_score_from_logits(logits, splits=10, shuffle_seed=0)
    assert shuffled > 8.0 and std > 0          # close to the k = 10 of a split holding every class
    assert M.inception_score_from_logits(logits, splits=10, shuffle_seed=0) == (shuffled, std)
    perm = torch.randperm(len(logits), generator=torch.Generator().manual_seed(0))
    assert M.inception_score_from_logits(logits[perm], splits=10) == (shuffled, std)
    # Through inception_score as well: the extractor sees the samples in order, the splits do not.
    ext = LabelExtractor(k)
    mean, _ = M.inception_score(labelled_images(labels, k), ext, splits=10, progress=False, shuffle_seed=3)
    assert mean > 8.0
    assert M.inception_score(labelled_images(labels, k), ext, splits=10, progress=False)[0] < 1.0 + 1e-6


def test_is_matches_independent_numpy_computation():
    ext = LinearExtractor()
    x = images(230)
    mean, std = M.inception_score(x, ext, splits=10, batch_size=37, progress=False)
    ref_mean, ref_std = numpy_inception_score(ext.ref_logits(x.numpy()), 10)
    assert mean > 1.2  # a non-trivial case
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std == pytest.approx(ref_std, rel=1e-8)
    assert ext.seen == 230


def test_is_uniform_predictions_give_one():
    class Uniform:
        name = "uniform"

        def __call__(self, x):
            return {"logits": torch.zeros(len(x), 17), "pool": torch.zeros(len(x), 2)}

    mean, std = M.inception_score(images(50), Uniform(), splits=5, progress=False)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 7, 10])
def test_is_one_hot_over_k_equally_used_classes_gives_k(k):
    labels = np.arange(100 * k) % k  # every split of 10 k images holds each class 10 times
    ext = LabelExtractor(k)
    mean, std = M.inception_score(labelled_images(labels, k), ext, splits=10, progress=False)
    assert mean == pytest.approx(k, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)
    # Mode collapse: all images of one class score 1.
    mean, _ = M.inception_score(labelled_images(np.zeros(100, int), k), ext, splits=10, progress=False)
    assert mean == pytest.approx(1.0, abs=1e-9)


def test_is_handles_zero_probabilities_and_checks_splits():
    logits = torch.tensor([[0.0, -math.inf], [-math.inf, 0.0]] * 5)
    assert M.inception_score_from_logits(logits, splits=1)[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="split"):
        M.inception_score_from_logits(torch.zeros(5, 3), splits=10)


# ---------------------------------------------------------------------------------------------
# Fréchet distance

def test_is_and_fid_agree_with_torch_fidelitys_own_functions():
    """torch-fidelity (the dependency whose Inception colabkit uses) has its own IS and FID code:
    on the same features, colabkit's numbers are its numbers. IS: torch-fidelity always shuffles
    with NumPy's RandomState(2020); fed the logits in that order, colabkit's unshuffled splits
    are the same splits."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric

    ext = LinearExtractor()
    logits = torch.from_numpy(ext.ref_logits(images(500).numpy())).float()
    theirs = isc_features_to_metric(logits, splits=10)
    order = torch.from_numpy(np.random.RandomState(2020).permutation(len(logits)))
    mean, std = M.inception_score_from_logits(logits[order], splits=10)
    assert mean > 1.2
    assert mean == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(theirs["inception_score_std"], rel=1e-6)

    # FID: colabkit's batch-by-batch moments and sqrtm against torch-fidelity's np.cov and eigenvalues.
    a, b = images(400, seed=1), images(300, seed=2) * 0.7 + 0.1
    ours = M.fid(a, b, ext, batch_size=64, progress=False)
    pools = [torch.from_numpy(ext.ref_pool(x.numpy())) for x in (a, b)]
    ref = fid_statistics_to_metric(*(fid_features_to_statistics(f) for f in pools), False)
    assert ours > 0.5
    assert ours == pytest.approx(ref["frechet_inception_distance"], rel=1e-8)

# ---------------------------------------------------------------------------------------------


def test_frechet_distance_matches_independent_computation():
    mu1, s1 = gaussian_stats(400, 8, seed=1)
    mu2, s2 = gaussian_stats(300, 8, seed=2, shift=0.3)
    got = M.frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(numpy_fid(mu1, s1, mu2, s2), rel=1e-9)
    # A second, eigenvalue-based route (torch-fidelity's): tr sqrt(s1 s2) = sum sqrt(eig(s1 s2)).
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real.sum()
    d = mu1 - mu2
    assert got == pytest.approx(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr, rel=1e-8)
    assert got > 0.5


def test_frechet_distance_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_fid_of_a_set_with_itself_is_zero():
    mu, s = gaussian_stats(500, 16, seed=4)
    assert abs(M.frechet_distance(mu, s, mu, s)) < 1e-8
    ext = LinearExtractor()
    x = images(120)
    assert abs(M.fid(x, x, ext, progress=False)) < 1e-8


def test_mean_shift_by_v_adds_its_squared_norm():
    mu, s = gaussian_stats(500, 10, seed=5)
    v = np.random.default_rng(6).normal(size=10)
    assert M.frechet_distance(mu, s, mu + v, s) == pytest.approx(v @ v, rel=1e-8)


def test_non_finite_square_root_is_retried_with_eps(monkeypatch):
    mu1, s1 = gaussian_stats(200, 5, seed=7)
    mu2, s2 = gaussian_stats(200, 5, seed=8)
    real_sqrtm = scipy.linalg.sqrtm
    args = []

    def flaky_sqrtm(a):
        args.append(a)
        return np.full_like(a, np.nan) if len(args) == 1 else real_sqrtm(a)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    with pytest.warns(RuntimeWarning, match="diagonals"):
        got = M.frechet_distance(mu1, s1, mu2, s2, eps=1e-3)
    off = np.eye(5) * 1e-3
    np.testing.assert_allclose(args[1], (s1 + off) @ (s2 + off))
    d = mu1 - mu2
    expected = d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(real_sqrtm((s1 + off) @ (s2 + off)).real)
    assert got == pytest.approx(expected, rel=1e-10)


def test_imaginary_parts_small_dropped_large_rejected(monkeypatch):
    mu, s = gaussian_stats(200, 4, seed=9)
    real_sqrtm = scipy.linalg.sqrtm
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a: real_sqrtm(a) + 1e-6j)
    assert abs(M.frechet_distance(mu, s, mu, s)) < 1e-8
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a: real_sqrtm(a) + 0.5j)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="square root"):
        M.frechet_distance(mu, s, mu, s)


def test_fewer_samples_than_dimensions_gives_a_finite_fid():
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 0.5
    a[:, :2] = b[:, :2] = 0   # features that are 0 for every image (a ReLU that never fires)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = M.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert np.isfinite(got) and got > 0
    # scipy's "matrix is singular" is noise here (the result is judged, and retried with eps if
    # unusable, with colabkit's own RuntimeWarning): learners should not see it at every evaluation.
    assert not [w for w in caught if issubclass(w.category, scipy.linalg.LinAlgWarning)]


def test_frechet_distance_checks_shapes():
    with pytest.raises(ValueError, match="differ"):
        M.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------------------------------------
# Features, sample forms, fid
# ---------------------------------------------------------------------------------------------


def test_feature_stats_match_numpy_across_batch_sizes():
    ext = LinearExtractor(dim=7)
    x = images(301, seed=11)
    ref = ext.ref_pool(x.numpy())
    for bs in (1, 64, 100, 1000):
        mu, sigma = M.feature_stats(x, ext, batch_size=bs, progress=False)
        np.testing.assert_allclose(mu, ref.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sigma, np.cov(ref, rowvar=False), rtol=1e-10, atol=1e-12)
        assert mu.dtype == np.float64 and sigma.shape == (7, 7)


def test_fid_with_injected_extractor_matches_numpy():
    ext = LinearExtractor(dim=6)
    a, b = images(200, seed=12), images(150, seed=13) * 0.5 + 0.2
    fa, fb = ext.ref_pool(a.numpy()), ext.ref_pool(b.numpy())
    expected = numpy_fid(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
    got = M.fid(a, b, ext, batch_size=64, progress=False)
    assert expected > 1
    assert got == pytest.approx(expected, rel=1e-9)


def three_forms(x, sizes=(13, 50, 1, 77)):
    """The same images as a tensor, as an iterable of uneven (images, labels) batches, as a sampler."""
    batches, i = [], 0
    while i < len(x):
        k = sizes[len(batches) % len(sizes)]
        batches.append((x[i:i + k], torch.zeros(len(x[i:i + k]))))
        i += k
    pos = [0]

    def sample(k):
        out = x[pos[0]:pos[0] + k]
        pos[0] += k
        return out

    return x, batches, sample


def test_tensor_iterable_and_callable_give_the_same_result():
    x = images(240, seed=14)
    ext = LinearExtractor()
    results_is, results_stats = [], []
    for form in three_forms(x):
        n = len(x) if callable(form) else None
        results_is.append(M.inception_score(form, ext, splits=8, batch_size=40, progress=False, n=n))
    for form in three_forms(x):
        n = len(x) if callable(form) else None
        results_stats.append(M.feature_stats(form, ext, batch_size=40, progress=False, n=n))
    for r in results_is[1:]:
        assert r == pytest.approx(results_is[0], rel=1e-12)
    for mu, sigma in results_stats[1:]:
        np.testing.assert_allclose(mu, results_stats[0][0], rtol=1e-12)
        np.testing.assert_allclose(sigma, results_stats[0][1], rtol=1e-10)
    # and with fid: mixing forms on the two sides
    tensor, batches, sample = three_forms(x)
    f1 = M.fid(tensor, iter(batches), ext, progress=False)
    assert abs(f1) < 1e-8
    f2 = M.fid(sample, images(100, seed=15), ext, n_a=240, progress=False)
    assert f2 == pytest.approx(M.fid(x, images(100, seed=15), ext, progress=False), rel=1e-10)


def test_callable_samples_are_drawn_in_batches_without_grad():
    requested, grad_modes = [], []

    def sample(k):
        requested.append(k)
        grad_modes.append(torch.is_grad_enabled())
        return torch.zeros(k, 3, 4, 4)

    M.feature_stats(sample, LinearExtractor(), batch_size=30, progress=False, n=100)
    assert requested == [30, 30, 30, 10]
    assert grad_modes == [False] * 4


def test_n_caps_samples_and_bad_inputs_fail_clearly():
    ext = LinearExtractor()
    x = images(50)
    M.feature_stats(x, ext, n=20, progress=False)
    assert ext.seen == 20
    ext.seen = 0
    M.feature_stats([x[:15], x[15:]], ext, n=20, batch_size=8, progress=False)
    assert ext.seen == 20
    with pytest.raises(ValueError, match="n="):
        M.feature_stats(lambda k: x[:k], ext, progress=False)
    with pytest.raises(ValueError, match="holds only"):
        M.feature_stats(x, ext, n=51, progress=False)
    with pytest.raises(ValueError, match="ran out"):
        M.feature_stats([x], ext, n=60, progress=False)
    with pytest.raises(ValueError, match="channels last"):
        M.feature_stats(torch.zeros(4, 8, 8, 3), ext, progress=False)


def test_uint8_and_grayscale_batches_are_converted():
    seen = []

    class Spy:
        name = "spy"

        def __call__(self, x):
            seen.append(x.clone())
            return {"logits": torch.zeros(len(x), 2), "pool": x.flatten(1)[:, :3].double()}

    u = torch.tensor([0, 255, 128, 64], dtype=torch.uint8).reshape(1, 1, 2, 2).repeat(2, 1, 1, 1)
    M.feature_stats(u, Spy(), progress=False)
    assert seen[0].shape == (2, 3, 2, 2) and seen[0].is_floating_point()
    torch.testing.assert_close(seen[0][0, 2], u[0, 0].float() / 127.5 - 1)
    assert torch.equal(M.to_uint8(seen[0]), u.expand(-1, 3, -1, -1))


def test_extractor_output_is_checked():
    class Wrong:
        name = "wrong"

        def __call__(self, x):
            return {"features": torch.zeros(len(x), 2)}

    with pytest.raises(KeyError, match="'pool'"):
        M.feature_stats(images(4), Wrong(), progress=False)


def test_fid_accepts_precomputed_stats_on_either_side(tmp_path):
    ext = LinearExtractor()
    a, b = images(90, seed=16), images(80, seed=17) + 0.1
    direct = M.fid(a, b, ext, progress=False)
    sa = M.feature_stats(a, ext, progress=False)
    sb = M.feature_stats(b, ext, progress=False)
    ext.calls = 0
    assert M.fid(sa, b, ext, progress=False) == pytest.approx(direct, rel=1e-10)
    assert M.fid(a, {"mu": sb[0], "sigma": sb[1]}, ext, progress=False) == pytest.approx(direct, rel=1e-10)
    np.savez(tmp_path / "b.npz", mu=sb[0], sigma=sb[1])
    calls = ext.calls
    assert M.fid(sa, tmp_path / "b.npz") == pytest.approx(direct, rel=1e-10)
    assert ext.calls == calls  # both sides precomputed: no extraction
    with pytest.raises(ValueError, match="extractor"):
        M.fid(sa, b)


def test_progress_bar_shows_only_when_asked(capsys):
    ext = LinearExtractor()
    M.feature_stats(images(30), ext, progress=False)
    assert "img" not in capsys.readouterr().err
    M.feature_stats(images(30), ext, progress=True)
    err = capsys.readouterr().err
    assert "FID features" in err and "30/30" in err


# ---------------------------------------------------------------------------------------------
# Cached statistics
# ---------------------------------------------------------------------------------------------


def test_cached_stats_writes_once_and_reuses(tmp_path):
    x = images(64, seed=18)
    first = LinearExtractor()
    mu, sigma = M.cached_stats("toy-64", x, first, tmp_path, progress=False)
    assert first.calls > 0
    files = [p.name for p in tmp_path.iterdir()]
    assert files == [M.stats_filename("toy-64", first)]  # no temporary files left
    second = LinearExtractor()
    mu2, sigma2 = M.cached_stats("toy-64", x, second, tmp_path, progress=False)
    assert second.calls == 0
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)
    ref = M.feature_stats(x, LinearExtractor(), progress=False)
    np.testing.assert_allclose(mu, ref[0], rtol=1e-12)


def test_cached_stats_keyed_by_name_and_extractor(tmp_path):
    x = images(64, seed=19)
    M.cached_stats("toy", x, LinearExtractor(name="ext-a"), tmp_path, progress=False)
    other_ext = LinearExtractor(name="ext-b", seed=1)
    mu_b, _ = M.cached_stats("toy", x, other_ext, tmp_path, progress=False)
    assert other_ext.calls > 0
    np.testing.assert_allclose(mu_b, other_ext.ref_pool(x.numpy()).mean(0), rtol=1e-12)
    other_name = LinearExtractor(name="ext-a")
    M.cached_stats("toy-other", x, other_name, tmp_path, progress=False)
    assert other_name.calls > 0
    assert len(list(tmp_path.iterdir())) == 3


def test_cached_stats_recomputes_an_unreadable_file(tmp_path):
    x = images(64, seed=20)
    ext = LinearExtractor()
    (tmp_path / M.stats_filename("toy", ext)).write_bytes(b"PK\x03\x04 truncated by Drive")
    with pytest.warns(RuntimeWarning, match="recomputing"):
        mu, _ = M.cached_stats("toy", x, ext, tmp_path, progress=False)
    assert ext.calls > 0
    again = LinearExtractor()
    mu2, _ = M.cached_stats("toy", x, again, tmp_path, progress=False)
    assert again.calls == 0
    np.testing.assert_array_equal(mu, mu2)


def test_cached_stats_on_an_fsspec_url_and_without_cache():
    pytest.importorskip("fsspec")
    x = images(40, seed=21)
    url = "memory://colabkit-metrics-test/cache"
    first, second = LinearExtractor(), LinearExtractor()
    mu, _ = M.cached_stats("toy", x, first, url, progress=False)
    mu2, _ = M.cached_stats("toy", x, second, url, progress=False)
    assert first.calls > 0 and second.calls == 0
    np.testing.assert_array_equal(mu, mu2)
    third = LinearExtractor()
    M.cached_stats("toy", x, third, None, progress=False)
    assert third.calls > 0


def test_cached_stats_needs_an_extractor_name(tmp_path):
    ext = LinearExtractor(name="")
    with pytest.raises(ValueError, match="name"):
        M.cached_stats("toy", images(8), ext, tmp_path, progress=False)


# ---------------------------------------------------------------------------------------------
# Extractors
# ---------------------------------------------------------------------------------------------


def test_tiny_extractor_is_deterministic_and_follows_the_protocol():
    state = torch.random.get_rng_state()
    e1, e2, e3 = M.tiny_extractor(seed=3), M.tiny_extractor(seed=3), M.tiny_extractor(seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    x = images(5, hw=32).float()
    o1, o2, o3 = e1(x), e2(x), e3(x)
    assert torch.equal(o1["logits"], o2["logits"]) and torch.equal(o1["pool"], o2["pool"])
    assert not torch.allclose(o1["pool"], o3["pool"])
    assert e1.name == e2.name != e3.name
    small = M.tiny_extractor(num_classes=7, dim=12)
    for hw in (17, 32, 64):
        out = small(images(3, hw=hw).float())
        assert out["logits"].shape == (3, 7) and out["pool"].shape == (3, 12)
    assert not any(p.requires_grad for p in small.parameters())
    # The whole IS path runs with it, and its predictions vary between images.
    assert M.inception_score(x, e1, splits=1, progress=False)[0] > 1.0


def test_inception_weights_url_is_torch_fidelitys():
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    assert M.INCEPTION_WEIGHTS_URL == fe.URL_INCEPTION_V3
    assert M.INCEPTION_WEIGHTS_URL.endswith("/" + M.INCEPTION_WEIGHTS_FILE)


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A weights file of torch-fidelity's InceptionV3 layout with random values (fp16 to save disk)."""
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    mp = pytest.MonkeyPatch()
    mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
    mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        mp.undo()
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    folder = tmp_path_factory.mktemp("weights")
    torch.save(state, folder / M.INCEPTION_WEIGHTS_FILE)
    return folder / M.INCEPTION_WEIGHTS_FILE


def place(src: Path, dst: Path) -> None:
    """Put the weights file into a cache folder (a hard link where possible: 48 MB)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def fake_fetch_from_cache(calls):
    """Stands in for colabkit.data.fetch: serves only what is in cache_dir, no network."""

    def fetch(url, filename, *, cache_dir=None, dest_dir, **kwargs):
        calls.append(dict(url=url, filename=filename, cache_dir=cache_dir, dest_dir=dest_dir, **kwargs))
        src = Path(cache_dir) / filename if cache_dir is not None else None
        if src is None or not src.is_file():
            raise ConnectionError(f"no network to get {url}")
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        (Path(dest_dir) / filename).write_bytes(src.read_bytes())
        return Path(dest_dir) / filename

    return fetch


def test_inception_extractor_fails_clearly_without_weights(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity")
    calls = []
    monkeypatch.setattr(E, "_fetch", fake_fetch_from_cache(calls))
    with pytest.raises(M.WeightsUnavailable) as info:
        M.inception_extractor(cache_dir=tmp_path / "cache", dest_dir=tmp_path / "dest")
    msg = str(info.value)
    assert M.INCEPTION_WEIGHTS_FILE in msg and str(tmp_path / "cache") in msg
    assert "tiny_extractor" in msg and "no network" in msg
    assert calls[0]["url"] == M.INCEPTION_WEIGHTS_URL


def test_inception_extractor_loads_the_weights_from_cache_dir(tmp_path, monkeypatch, random_inception_weights):
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    cache = tmp_path / "drive-cache"
    cache.mkdir()
    place(random_inception_weights, cache / M.INCEPTION_WEIGHTS_FILE)
    calls = []
    monkeypatch.setattr(E, "_fetch", fake_fetch_from_cache(calls))
    ext = M.inception_extractor(cache_dir=cache, dest_dir=tmp_path / "local", progress=False)
    assert calls == [dict(url=M.INCEPTION_WEIGHTS_URL, filename=M.INCEPTION_WEIGHTS_FILE, cache_dir=cache,
                          dest_dir=tmp_path / "local", sha256=None, progress=False)]
    assert ext.name and ext.device == torch.device("cpu")
    x = images(2, hw=32).float()
    out = ext(x)
    assert out["logits"].shape == (2, 1008) and out["pool"].shape == (2, 2048)
    # The same as torch-fidelity's network fed with the uint8 images directly.
    assert isinstance(ext.net, fe.FeatureExtractorInceptionV3)
    ref_logits, ref_pool = ext.net(M.to_uint8(x))
    torch.testing.assert_close(out["logits"], ref_logits)
    torch.testing.assert_close(out["pool"], ref_pool)
    # The loaded values are the file's, not a fresh random init.
    saved = torch.load(random_inception_weights, weights_only=True)
    torch.testing.assert_close(ext.net.fc.weight, saved["fc.weight"].float())


def test_inception_extractor_resize_like_pytorch_fid(tmp_path, monkeypatch, random_inception_weights):
    pytest.importorskip("torch_fidelity")
    cache = tmp_path / "cache"
    cache.mkdir()
    place(random_inception_weights, cache / M.INCEPTION_WEIGHTS_FILE)
    monkeypatch.setattr(E, "_fetch", fake_fetch_from_cache([]))
    tf1 = M.inception_extractor(cache_dir=cache, dest_dir=tmp_path / "a", progress=False)
    pf = M.inception_extractor(cache_dir=cache, dest_dir=tmp_path / "b", progress=False, resize="pytorch-fid")
    assert tf1.name != pf.name    # cached statistics of the two never mix
    x = images(2, hw=40).float()
    u8 = M.to_uint8(x)
    # pytorch-fid's resize: PyTorch's bilinear, align_corners=False, of the pixel values.
    resized = torch.nn.functional.interpolate(u8.float(), size=(299, 299), mode="bilinear", align_corners=False)
    want_logits, want_pool = tf1.net(resized.round().to(torch.uint8))   # at 299 the TF1 resize is the identity
    got = pf(x)
    torch.testing.assert_close(got["pool"], want_pool)
    torch.testing.assert_close(got["logits"], want_logits)
    assert not torch.allclose(tf1(x)["pool"], got["pool"], rtol=1e-3, atol=0)   # the two resizes differ
    x299 = images(1, hw=299).float()
    torch.testing.assert_close(pf(x299)["pool"], tf1(x299)["pool"])
    with pytest.raises(ValueError, match="resize"):
        M.inception_extractor(cache_dir=cache, dest_dir=tmp_path / "c", resize="antialias")


def test_inception_extractor_explains_a_truncated_file(tmp_path, monkeypatch, random_inception_weights):
    pytest.importorskip("torch_fidelity")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / M.INCEPTION_WEIGHTS_FILE).write_bytes(random_inception_weights.read_bytes()[:100_000])
    monkeypatch.setattr(E, "_fetch", fake_fetch_from_cache([]))
    with pytest.raises(M.WeightsUnavailable, match="truncated"):
        M.inception_extractor(cache_dir=cache, dest_dir=tmp_path / "dest", progress=False)


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{M.INCEPTION_WEIGHTS_FILE}"


def test_inception_extractor_with_the_real_fetch(tmp_path, monkeypatch, random_inception_weights):
    """Through colabkit.data.fetch itself: offline it fails helpfully; with the file in cache_dir it works."""
    pytest.importorskip("torch_fidelity")
    pytest.importorskip("colabkit.data")
    monkeypatch.setattr(E, "INCEPTION_WEIGHTS_URL", closed_port_url())
    with pytest.raises(M.WeightsUnavailable, match="tiny_extractor"):
        M.inception_extractor(cache_dir=tmp_path / "empty", dest_dir=tmp_path / "dest0", progress=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    place(random_inception_weights, cache / M.INCEPTION_WEIGHTS_FILE)
    ext = M.inception_extractor(cache_dir=cache, dest_dir=tmp_path / "dest", progress=False)
    assert ext(images(1, hw=16).float())["pool"].shape == (1, 2048)


# ---------------------------------------------------------------------------------------------
# The papers' numbers
# ---------------------------------------------------------------------------------------------


def test_paper_numbers_hold_the_published_figures():
    P = M.PAPER_NUMBERS
    assert P["began_cifar10_is"]["values"] == {
        "BEGAN": 5.62, "ALI": 5.34, "DCGAN": 6.16, "Improved GAN": 6.86, "WGAN-GP": 7.86, "Real data": 11.24}
    assert set(P["cyclegan_horse2zebra_fid"]["values"].values()) == {77.2, 62.1}
    assert set(P["cyclegan_zebra2horse_fid"]["values"].values()) == {138.6, 141.2}
    assert "best" not in P["cyclegan_horse2zebra_fid"]["note"]   # a third-party claim, not CUT's
    assert P["stackgan_is"]["values"] == {"CUB": 3.70, "Oxford-102": 3.20, "COCO": 8.45}
    assert sorted(P["stackgan_fid"]["values"].values()) == [16.09, 23.98, 55.28, 74.05]
    for entry in P.values():
        assert entry["metric"] in ("IS", "FID")
        assert entry["higher_is_better"] == (entry["metric"] == "IS")


def test_compare_table_puts_ours_next_to_the_paper():
    table = M.compare_table({"began": (4.91, 0.052), "smoke run": 1.234}, "began_cifar10_is")
    lines = table.splitlines()
    began = next(line for line in lines if line.startswith("BEGAN"))
    assert "4.91 ± 0.05" in began and "5.62" in began and "-0.71" in began
    dcgan = next(line for line in lines if line.startswith("DCGAN"))
    assert dcgan.split() == ["DCGAN", "-", "6.16", "-"]
    assert any(line.startswith("smoke run") and "1.23" in line for line in lines)
    assert "higher is better" in lines[0]
    assert "lower is better" in M.compare_table({}, "cyclegan_horse2zebra_fid")
    with pytest.raises(KeyError, match="began_cifar10_is"):
        M.compare_table({}, "no-such-paper")


def test_compare_table_prints_no_difference_across_scales():
    why = "the paper's Inception was fine-tuned on CUB; ours is ImageNet's"
    table = M.compare_table({"CUB": (2.9, 0.03), "real test crops": 4.1}, "stackgan_is", comparable=False, why=why)
    cub = next(line for line in table.splitlines() if line.startswith("CUB"))
    assert cub.split()[-1] == "n/c" and "3.70" in cub and "2.90" in cub
    assert "-0.80" not in table and "+" not in cub
    assert table.splitlines()[-1] == f"n/c = not comparable: {why}"
    with pytest.raises(ValueError, match="why"):
        M.compare_table({"CUB": 2.9}, "stackgan_is", comparable=False)
