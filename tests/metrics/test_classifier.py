"""The domain classifier: training (--max-steps, --out, no silent overwrite), the shipped weights
(manifest, sha256 check, lookup order) and its feature spaces on real Fashion-MNIST images.

``data/fashion-mnist-t10k-first600.npz`` holds the first 600 images of the Fashion-MNIST test set
(MIT licence), so the shipped classifier can be checked on real images without the dataset.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, quiet

from gankit.cli import main
from gankit.config import Config, DataConfig, make_config
from gankit.data.base import DataInfo
from gankit.families import get_family
from gankit.metrics import classifier as clf_mod
from gankit.metrics.classifier import (
    load_classifier,
    locate_classifier,
    shipped_classifier,
    shipped_manifest,
    train_classifier,
)
from gankit.metrics.features import ClassifierFeatures
from gankit.metrics.prdc import precision_recall
from gankit.training.checkpoint import CheckpointError

FIXTURE = FIXTURES / "fashion-mnist-t10k-first600.npz"


def real_images() -> tuple[torch.Tensor, torch.Tensor]:
    """600 real Fashion-MNIST test images in [-1, 1] (N, 1, 28, 28) and their labels."""
    data = np.load(FIXTURE)
    images = torch.from_numpy(data["images"]).unsqueeze(1).float() / 127.5 - 1
    return images, torch.from_numpy(data["labels"].astype(np.int64))


# ------------------------------------------------------------------------------ training


def test_train_classifier_honours_max_steps_and_never_overwrites(tiny_idx: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.pt"
    logs: list[str] = []
    result = train_classifier(
        DataConfig(path=str(tiny_idx)), out, epochs=5, max_steps=3, batch_size=50, log=logs.append
    )
    assert result["steps"] == 3 and torch.load(out, weights_only=True)["steps"] == 3
    assert any(line.startswith("classifier step 3/3") for line in logs)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        train_classifier(DataConfig(path=str(tiny_idx)), out, max_steps=1, batch_size=50, log=quiet)
    assert out.read_bytes() == before
    train_classifier(DataConfig(path=str(tiny_idx)), out, max_steps=1, batch_size=50, overwrite=True, log=quiet)
    assert torch.load(out, weights_only=True)["steps"] == 1


def test_cli_train_classifier_out_max_steps_and_overwrite(tiny_idx: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine.pt"
    argv = ["train", "classifier", "--data", str(tiny_idx), "--max-steps", "2", "--batch-size", "50", "--device", "cpu"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"saved to {out}" in printed and "2 steps" in printed and f"--classifier {out}" in printed
    assert torch.load(out, weights_only=True)["steps"] == 2
    stamp = out.stat().st_mtime_ns
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "--overwrite" in err
    assert out.stat().st_mtime_ns == stamp
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    # default --out: the user cache, where gankit eval finds it; a second run refuses to replace it
    assert main(argv) == 0
    printed = capsys.readouterr().out
    cached = Path(printed.split("saved to ")[1].split()[0])
    assert cached.is_file() and (tmp_path / "xdg_cache" / "gankit" / "classifiers") in cached.parents
    assert "gankit eval uses it for runs on this data (no classifier is shipped for it)" in printed
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------ shipped weights


def test_shipped_classifiers_match_their_manifest() -> None:
    manifest = shipped_manifest()
    assert set(manifest) == {"fashion-mnist", "mnist"}
    for dataset, entry in manifest.items():
        path = shipped_classifier(dataset)
        assert path is not None and path.name == entry["file"] and path.stat().st_size < 1_000_000
        model = load_classifier(path)
        assert model.dataset == dataset and model.num_classes == 10 and (model.channels, model.resolution) == (1, 28)
        assert entry["command"].startswith("gankit train classifier --data") and "--seed 0" in entry["command"]
        assert entry["test_accuracy"] > 0.85 and len(entry["sha256"]) == 64 and entry["date"]
        assert torch.load(path, weights_only=True)["test_accuracy"] == entry["test_accuracy"]


def test_a_damaged_shipped_file_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(clf_mod.WEIGHTS_DIR, weights)
    monkeypatch.setattr(clf_mod, "WEIGHTS_DIR", weights)
    assert shipped_classifier("mnist") == weights / "mnist.pt"
    data = bytearray((weights / "mnist.pt").read_bytes())
    data[-100] ^= 0xFF
    (weights / "mnist.pt").write_bytes(bytes(data))
    for call in (lambda: shipped_classifier("mnist"), lambda: load_classifier(weights / "mnist.pt")):
        with pytest.raises(CheckpointError) as e:
            call()
        assert len(str(e.value).splitlines()) == 1 and "sha256" in str(e.value) and "reinstall" in str(e.value)
    manifest = json.loads((weights / "manifest.json").read_text())
    manifest.pop("fashion-mnist")
    (weights / "manifest.json").write_text(json.dumps(manifest))
    assert shipped_classifier("fashion-mnist") is None


def user_copy(src: Path, dst: Path, *, installed: bool = False, accuracy: float = 0.67) -> Path:
    """``dst``: a user-trained classifier file (the shipped weights, re-saved with another accuracy)."""
    state = torch.load(src, weights_only=True)
    state.update(installed=installed, test_accuracy=accuracy)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, dst)
    return dst


def test_the_shipped_classifier_wins_unless_a_user_one_is_named_or_installed(tmp_path: Path) -> None:
    """Issue: a throwaway `train classifier --max-steps 20` in the cache took priority over the shipped one."""
    fm = locate_classifier("fashion-mnist")
    assert fm is not None and fm.source == "shipped" and "sha256 verified" in fm.describe()
    assert fm.accuracy == shipped_manifest()["fashion-mnist"]["test_accuracy"]
    assert locate_classifier("idx") is None and locate_classifier("folder", data_path=tmp_path) is None
    cache = user_copy(fm.path, tmp_path / "xdg_cache" / "gankit" / "classifiers" / "fashion-mnist.pt")
    found = locate_classifier("fashion-mnist")
    assert found is not None and (found.path, found.source) == (fm.path, "shipped")
    assert f"not used: the user-trained {cache} (pass --classifier user" in found.describe()
    user = locate_classifier("fashion-mnist", "user")
    assert user is not None and (user.path, user.source, user.accuracy) == (cache, "user-trained", 0.67)
    assert (
        "test accuracy 0.6700" in user.describe()
        and user.tag() == "fashion-mnist.pt: user-trained, test accuracy 0.6700"
    )
    # installed (gankit train classifier --install): now the default; $GANKIT_DATA/classifiers/ is looked at first
    user_copy(fm.path, cache, installed=True)
    installed = locate_classifier("fashion-mnist")
    assert installed is not None and (installed.path, installed.source) == (cache, "installed")
    env = user_copy(fm.path, tmp_path / "gankit_data_env" / "classifiers" / "fashion-mnist.pt", installed=True)
    assert locate_classifier("fashion-mnist").path == env  # type: ignore[union-attr]
    assert locate_classifier("fashion-mnist", "shipped").path == fm.path  # type: ignore[union-attr]
    given = locate_classifier("fashion-mnist", cache)
    assert given is not None and given.source == "given" and given.accuracy == 0.67
    with pytest.raises(CheckpointError, match="no such file"):
        locate_classifier("fashion-mnist", tmp_path / "missing.pt")
    # where nothing is shipped, the user-trained classifier is the only choice: used, and it says how good it is
    a = clf_mod.default_classifier_path("idx", tmp_path / "a")
    user_copy(fm.path, a, accuracy=0.5)
    idx = locate_classifier("idx", data_path=tmp_path / "a")
    assert idx is not None and (idx.path, idx.source, idx.accuracy) == (a, "user-trained", 0.5)
    with pytest.raises(CheckpointError, match="none is shipped for 'idx'"):
        locate_classifier("idx", "shipped", data_path=tmp_path / "a")
    # a generic dataset's user-trained classifier is keyed by its data path, not only by "idx"
    assert a != clf_mod.default_classifier_path("idx", tmp_path / "b") and a.name.startswith("idx-")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_user_classifier_is_one_line_naming_the_file_and_the_fix(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = shipped_classifier("fashion-mnist")
    assert shipped is not None
    path = user_copy(shipped, tmp_path / "xdg_cache" / "gankit" / "classifiers" / "fashion-mnist.pt", installed=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint at all\n" * 50)
    for call in (lambda: locate_classifier("fashion-mnist"), lambda: load_classifier(path)):
        with pytest.raises(CheckpointError) as e:
            call()
        msg = str(e.value)
        assert len(msg.splitlines()) == 1 and msg.startswith(f"{path}: damaged classifier file") and f"rm {path}" in msg
    assert isinstance(e.value, ValueError)  # a periodic eval during training logs it and training goes on
    # the CLI: the same one line, no traceback
    assert main(["eval", "--real", "fashion-mnist", "--classifier", "user", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"rm {path}" in err and "Traceback" not in err


# ------------------------------------------------------------------------------ feature spaces


def untrained_gan_samples(n: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    cfg = make_config("gan")
    G, _ = get_family("gan").build(cfg, DataInfo(channels=1, resolution=28, num_classes=10))
    with torch.no_grad():
        return G.eval()(torch.randn(n, cfg.model.z_dim, generator=torch.Generator().manual_seed(seed)), None).float()


def test_shipped_classifier_is_accurate_on_real_images() -> None:
    images, labels = real_images()
    model = load_classifier(shipped_classifier("fashion-mnist"))  # type: ignore[arg-type]
    with torch.no_grad():
        acc = float((model(model.prepare(images)).argmax(1) == labels).float().mean())
    assert acc > 0.85


def test_precision_of_noise_is_low_in_the_pr_space_and_real_is_high() -> None:
    """Issue: precision_clf was ~1 for an untrained generator (every sample a "bag" to the classifier)."""
    images, _ = real_images()
    ref, other = images[:300], images[300:]
    path = shipped_classifier("fashion-mnist")
    embed, conv = ClassifierFeatures(path, layer="embed"), ClassifierFeatures(path, layer="conv")  # type: ignore[arg-type]
    fake = untrained_gan_samples(300, seed=1)
    noise = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # the embedding collapses: the old pr_clf space called most of these samples "real"
    assert precision_recall(embed(ref), embed(fake))["precision"] > 0.5
    real_pr = precision_recall(conv(ref), conv(other))
    assert real_pr["precision"] > 0.75 and real_pr["recall"] > 0.75
    for bad in (fake, untrained_gan_samples(300, seed=0), noise):
        pr = precision_recall(conv(ref), conv(bad))
        assert pr["precision"] < 0.05 and pr["recall"] < 0.05


def oracle_cgan(tmp_path: Path, tiny_cfg: Callable[..., Config], *, shuffle: bool):
    """A LoadedGenerator whose G returns real images of the asked class (or of a random class)."""
    from gankit.sampling import LoadedGenerator

    images, labels = real_images()
    by_class = [images[labels == k] for k in range(10)]
    g = torch.Generator().manual_seed(0)

    class Oracle(torch.nn.Module):
        def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if shuffle:
                y = torch.randint(0, 10, y.shape, generator=g)
            return torch.stack(
                [by_class[int(k)][int(torch.randint(len(by_class[int(k)]), (), generator=g))] for k in y]
            )

    cfg = tiny_cfg("cgan", tmp_path)
    info = DataInfo(channels=1, resolution=28, num_classes=10)
    return LoadedGenerator(Oracle(), cfg, info, get_family("cgan"), tmp_path / "G_last.pt")


@pytest.mark.parametrize("shuffle", [False, True])
def test_cls_acc_of_an_oracle_generator(tmp_path: Path, tiny_cfg: Callable[..., Config], shuffle: bool) -> None:
    from gankit.evaluate import Evaluation

    loaded = oracle_cgan(tmp_path, tiny_cfg, shuffle=shuffle)
    ev = Evaluation(
        loaded.cfg.data,
        split="test",
        n=400,
        seed=0,
        batch_size=100,
        device=torch.device("cpu"),
        classifier=shipped_classifier("fashion-mnist"),
        loaded=loaded,
        log=quiet,
    )
    out = ev.class_accuracy()
    if shuffle:
        assert out["cls_acc"] < 0.25  # chance is 0.1
    else:
        assert out["cls_acc"] > 0.85 and min(out[f"cls_acc_{k}"] for k in range(10)) > 0.4
