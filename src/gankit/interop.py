"""Import checkpoints of the reference implementations into gankit run folders.

* ``pix2pix-repo``: junyanz/pytorch-CycleGAN-and-pix2pix (Isola et al. 2017; Zhu et al. 2017),
  ``models/networks.py``: ``UnetGenerator`` (``unet_256``, ``unet_128``, any ``num_downs``; batch,
  instance or no norm; with or without dropout) and ``NLayerDiscriminator`` (``basic`` = 3 layers, or
  ``n_layers``). Its colorization model is the same U-Net with 1 -> 2 channels and the same Lab
  scaling as gankit (L/50 - 1, ab/110).
* ``dcgan-example``: pytorch/examples ``dcgan/main.py`` (Radford et al. 2016): ``Generator`` and
  ``Discriminator``; nz, ngf, ndf and nc are read from the weight shapes.

The weights are mapped onto gankit's own modules (:mod:`gankit.models.unet`, ``patchgan``, ``dcgan``)
and written as a run folder the way the Trainer writes one (``config.yaml``,
``checkpoints/G_last.pt``, and ``checkpoints/D_imported.pt`` when a discriminator is given), so
``gankit translate``, ``colorize``, ``sample``, ``eval`` and ``export`` work on it. ``imported.json``
records what was read.

Layout differences the mapping bridges (none changes a value in eval mode):

* the reference U-Net concatenates ``[skip, upsampled]``, gankit ``[upsampled, skip]``: the input
  channels of each decoder transposed conv are swapped half for half;
* with ``norm='none'`` the reference convs have no bias and gankit's have one: it is set to zero;
* old reference checkpoints carry running statistics for InstanceNorm layers, which have none
  (affine=False, track_running_stats=False): they are dropped, as the reference's loader does;
* the DCGAN example's discriminator ends in a Sigmoid; gankit's returns the logit (same weights).
* dropout: the reference puts it in the ``num_downs - 5`` decoder blocks just outside the
  innermost one, gankit in the three innermost; this only matters with ``--train-mode``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit.config import Config, make_config
from gankit.data.base import DataInfo
from gankit.errors import OutputExists
from gankit.families import get_family
from gankit.locks import atomic_path, atomic_save, output_lock
from gankit.run import RunFolder
from gankit.training.checkpoint import describe_load_failure, generator_snapshot

SOURCES = ("pix2pix-repo", "dcgan-example")
_STAT_KEYS = ("running_mean", "running_var", "num_batches_tracked")


class InteropError(ValueError):
    """A checkpoint that is not one of the supported reference layouts; the message says what was expected."""


class InteropExists(InteropError, OutputExists):
    """``--out`` already holds a run and ``overwrite`` was not given (exit code 2)."""


# ------------------------------------------------------------------------------------- reading


def load_reference_state(path: str | Path, what: str) -> dict[str, Tensor]:
    """A reference ``.pth`` state dict (weights_only load), with a DataParallel/compile prefix removed."""
    p = Path(path)
    if not p.is_file():
        raise InteropError(f"{what} {p}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, pickle with code, not a torch file ...
        reason = describe_load_failure(e)
        fix = "; pass a file saved with torch.save(model.state_dict())" if reason.startswith("refused") else ""
        fix = fix or "; copy or download it again"
        raise InteropError(f"{what} {p}: not a readable PyTorch state dict ({reason}){fix}") from None
    if isinstance(obj, dict) and "config" in obj and "G" in obj:
        raise InteropError(f"{what} {p}: already a gankit checkpoint; use it directly (no import needed)")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a wrapper dict, as some training scripts save
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        found = type(obj).__name__ if not isinstance(obj, dict) else "a dict that is not only tensors"
        raise InteropError(f"{what} {p}: expected a state dict (parameter name -> tensor), found {found}")
    for prefix in ("module.", "_orig_mod."):  # DataParallel / DDP, torch.compile
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return dict(obj)


def _first_unexpected(keys: list[str], expected: set[str]) -> str | None:
    return next((k for k in keys if k not in expected), None)


def _fail(what: str, path: Path, expected: str, found: str) -> InteropError:
    return InteropError(f"{what} {path}: expected {expected}, found {found}")


# ------------------------------------------------------------------------- junyanz U-Net -> gankit


@dataclasses.dataclass
class UNetFacts:
    in_channels: int
    out_channels: int
    ngf: int
    depth: int
    norm: str

    @property
    def resolution(self) -> int:
        return 2**self.depth


def _jz_block(i: int) -> str:
    """Key prefix of the reference's U-Net block at encoder level ``i`` (1 = just inside the outermost)."""
    return "model.model.1.model" + ".3.model" * (i - 1)


def convert_jz_unet(sd: dict[str, Tensor], path: Path, what: str = "netG") -> tuple[dict[str, Tensor], UNetFacts]:
    """Map a junyanz ``UnetGenerator`` state dict onto :class:`gankit.models.unet.UNetGenerator` keys."""
    keys = list(sd)
    expected_layout = "a unet_256/unet_128 generator of junyanz/pytorch-CycleGAN-and-pix2pix (keys model.model.*)"
    w0 = sd.get("model.model.0.weight")
    if w0 is None or w0.dim() != 4 or "model.model.3.weight" not in sd:
        hint = ""
        if any(re.match(r"model\.\d+\.conv_block\.", k) for k in keys):
            hint = " (a resnet_*blocks generator, which gankit does not have)"
        raise _fail(what, path, expected_layout, f"first key '{keys[0]}'{hint}")
    depth = 1
    while any(k.startswith(_jz_block(depth) + ".") for k in keys):
        depth += 1
    if depth < 5:
        raise _fail(what, path, "a U-Net with at least 5 downsamplings", f"{depth}")
    first = _jz_block(1)
    if f"{first}.2.weight" in sd:
        norm = "batch"
    elif f"{first}.1.bias" in sd:
        norm = "instance"
    else:
        norm = "none"

    # (reference module prefix, gankit module prefix, swap the input halves, is a norm layer)
    layers: list[tuple[str, str, bool, bool]] = [("model.model.0", "downs.0", False, False)]
    for i in range(1, depth):
        p, k = _jz_block(i), depth - 1 - i  # ups[k] produces encoder level i - 1
        if i < depth - 1:
            layers += [
                (f"{p}.1", f"downs.{i}.1", False, False),
                (f"{p}.2", f"downs.{i}.2", False, True),
                (f"{p}.5", f"ups.{k}.1", True, False),
                (f"{p}.6", f"ups.{k}.2", False, True),
            ]
        else:  # innermost: [LeakyReLU, conv, ReLU, convT, norm], no skip into its convT
            layers += [(f"{p}.1", f"downs.{i}.1", False, False), (f"{p}.3", "ups.0.1", False, False)]
            layers += [(f"{p}.4", "ups.0.2", False, True)]
    layers.append(("model.model.3", f"ups.{depth - 1}.1", True, False))

    out: dict[str, Tensor] = {}
    expected: set[str] = set()
    for src, dst, swap, is_norm in layers:
        suffixes = ("weight", "bias", *_STAT_KEYS)
        for suffix in suffixes:
            key = f"{src}.{suffix}"
            expected.add(key)
            if key not in sd:
                continue
            if is_norm and norm == "instance":
                continue  # stale InstanceNorm statistics of old checkpoints: the layer has none
            t = sd[key]
            if swap and suffix == "weight":
                half = t.shape[0] // 2
                t = torch.cat([t[half:], t[:half]], dim=0)
            out[f"{dst}.{suffix}"] = t
    bad = _first_unexpected(keys, expected)
    if bad is not None:
        raise _fail(what, path, expected_layout, f"unexpected key '{bad}'")
    facts = UNetFacts(int(w0.shape[1]), int(sd["model.model.3.weight"].shape[1]), int(w0.shape[0]), depth, norm)
    return out, facts


# --------------------------------------------------------------------- junyanz PatchGAN -> gankit


@dataclasses.dataclass
class PatchFacts:
    in_channels: int
    ndf: int
    n_layers: int
    norm: str


def convert_jz_patchgan(
    sd: dict[str, Tensor], path: Path, what: str = "--netD"
) -> tuple[dict[str, Tensor], PatchFacts]:
    """Map a junyanz ``NLayerDiscriminator`` (``basic`` / ``n_layers``) onto gankit's PatchDiscriminator."""
    keys = list(sd)
    expected_layout = "a basic/n_layers PatchGAN of junyanz/pytorch-CycleGAN-and-pix2pix (keys model.N.*)"
    conv_idx = sorted(
        int(m.group(1)) for k in keys if (m := re.fullmatch(r"model\.(\d+)\.weight", k)) and sd[k].dim() == 4
    )
    if not conv_idx or conv_idx[0] != 0:
        raise _fail(what, path, expected_layout, f"first key '{keys[0]}'")
    n_layers = len(conv_idx) - 2
    expected_idx = [0] + [2 + 3 * (n - 1) for n in range(1, n_layers + 1)] + [2 + 3 * n_layers]
    if n_layers < 1 or conv_idx != expected_idx:
        raise _fail(what, path, expected_layout, f"convolutions at indices {conv_idx}")
    norm = "batch" if "model.3.weight" in sd else "instance" if "model.2.bias" in sd else "none"
    norm_idx = {i + 1 for i in expected_idx[1:-1]}
    expected = {f"model.{i}.{s}" for i in expected_idx for s in ("weight", "bias")}
    expected |= {f"model.{i}.{s}" for i in norm_idx for s in ("weight", "bias", *_STAT_KEYS)}
    bad = _first_unexpected(keys, expected)
    if bad is not None:
        raise _fail(what, path, expected_layout, f"unexpected key '{bad}'")
    out = {}
    for k, v in sd.items():
        i = int(k.split(".")[1])
        if i in norm_idx and norm == "instance":
            continue  # stale InstanceNorm statistics
        out["main." + k[len("model.") :]] = v
    w0 = sd["model.0.weight"]
    return out, PatchFacts(int(w0.shape[1]), int(w0.shape[0]), n_layers, norm)


# ----------------------------------------------------------------------- DCGAN example -> gankit


def _conv_indices(sd: dict[str, Tensor]) -> list[int]:
    return sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"main\.(\d+)\.weight", k)) and sd[k].dim() == 4)


def _check_dcgan_keys(
    sd: dict[str, Tensor], path: Path, what: str, expected_layout: str, *, generator: bool
) -> list[int]:
    """The conv indices of a ``main`` Sequential laid out as the DCGAN example's G (or D); errors otherwise.

    G: ConvT at 0, 3, 6, ... with BatchNorm right after each but the last. D: Conv at 0, then 2, 5, 8, ...
    with BatchNorm after each but the first and the last.
    """
    keys = list(sd)
    idx = _conv_indices(sd)
    n = len(idx)
    want = [3 * i for i in range(n)] if generator else [0] + [2 + 3 * i for i in range(n - 1)]
    if n < 3 or idx != want:
        found = f"first key '{keys[0]}'" if not idx else f"convolutions at main.{idx}"
        raise _fail(what, path, expected_layout, found)
    norm_idx = {i + 1 for i in (idx[:-1] if generator else idx[1:-1])}
    expected = {f"main.{i}.weight" for i in idx} | {
        f"main.{i}.{s}" for i in norm_idx for s in ("weight", "bias", *_STAT_KEYS)
    }
    bad = _first_unexpected(keys, expected)
    if bad is not None:
        raise _fail(what, path, expected_layout, f"unexpected key '{bad}'")
    return idx


def dcgan_generator_facts(sd: dict[str, Tensor], path: Path, what: str = "netG") -> dict[str, int]:
    """nz, ngf, nc and resolution of a pytorch/examples DCGAN ``Generator`` state dict (keys ``main.N.weight``)."""
    layout = "the Generator of pytorch/examples dcgan (keys main.0.weight ... main.12.weight)"
    idx = _check_dcgan_keys(sd, path, what, layout, generator=True)
    first, last = sd["main.0.weight"], sd[f"main.{idx[-1]}.weight"]
    n = len(idx) - 1  # stride-2 blocks; resolution = 4 * 2**n
    return {
        "nz": int(first.shape[0]),
        # the last conv's input is ngf wide at every size (the first's width is capped above 64 px)
        "ngf": int(last.shape[0]),
        "nc": int(last.shape[1]),
        "resolution": 2 ** (n + 2),
    }


def dcgan_discriminator_facts(sd: dict[str, Tensor], path: Path, what: str = "--netD") -> dict[str, int]:
    """ndf, nc and resolution of a pytorch/examples DCGAN ``Discriminator`` state dict."""
    layout = "the Discriminator of pytorch/examples dcgan (keys main.0.weight ... main.11.weight)"
    idx = _check_dcgan_keys(sd, path, what, layout, generator=False)
    first, last = sd["main.0.weight"], sd[f"main.{idx[-1]}.weight"]
    if last.shape[0] != 1:
        raise _fail(what, path, "a discriminator ending in a 1-channel conv", f"{tuple(last.shape)}")
    return {"ndf": int(first.shape[0]), "nc": int(first.shape[1]), "resolution": 2 ** (len(idx) + 1)}


def _check_dcgan_widths(
    sd: dict[str, Tensor], path: Path, what: str, resolution: int, base: int, *, generator: bool
) -> None:
    """The channel widths of a DCGAN state dict are gankit's (:func:`gankit.models.dcgan.feature_widths`).

    Up to 64 px the reference's doubling and gankit's agree; above, a reference extended by doubling
    further (ngf*16 at 128) is refused here with both schedules named, rather than at its first layer.
    """
    from gankit.models.dcgan import feature_widths

    convs = [sd[f"main.{i}.weight"] for i in _conv_indices(sd)[:-1]]
    widths = [int(w.shape[1] if generator else w.shape[0]) for w in convs]  # ConvTranspose2d: (in, out, k, k)
    expected = feature_widths(resolution, base)
    if not generator:
        expected = expected[::-1]
    if widths != expected:
        name = "ngf" if generator else "ndf"
        raise InteropError(
            f"{what} {path}: channel widths {widths}, but gankit's {resolution}px DCGAN with {name}={base} has "
            f"{expected} (doubling per block, at most 8*{name}); this checkpoint's layout cannot be loaded"
        )


# ----------------------------------------------------------------------------------- run folder


def _load_into(module: nn.Module, sd: dict[str, Tensor], path: Path, what: str, norm: str) -> None:
    """``load_state_dict`` (strict); with norm 'none' the reference's bias-free convs get zero biases."""
    own = module.state_dict()
    if norm == "none":
        sd = dict(sd)
        for k, v in own.items():
            if k.endswith(".bias") and k not in sd and k[: -len("bias")] + "weight" in sd:
                sd[k] = torch.zeros_like(v)
    for k, v in sd.items():
        if k in own and own[k].shape != v.shape:
            raise InteropError(
                f"{what} {path}: '{k}' has shape {tuple(v.shape)}, gankit's layer needs {tuple(own[k].shape)}"
            )
    try:
        module.load_state_dict(sd)
    except RuntimeError as e:
        raise InteropError(f"{what} {path}: weights do not fit ({str(e).splitlines()[0]})") from None


def _prepare_out(run: RunFolder, overwrite: bool) -> None:
    taken = [p for p in (run.config, run.checkpoints) if p.exists()]
    if taken and not overwrite:
        raise InteropExists(
            f"--out {run.path} already holds a run ({taken[0].name}); pass --overwrite or choose another folder"
        )
    run.checkpoints.mkdir(parents=True, exist_ok=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_run(
    out: Path,
    overwrite: bool,
    cfg: Config,
    info: DataInfo,
    G: nn.Module,
    D: nn.Module | None,
    record: dict[str, Any],
) -> Path:
    """Write the run folder; a second import into ``out`` meanwhile refuses (the check for an
    existing run is made under the lock, so two imports never mix their files)."""
    if out.exists() and not out.is_dir():
        raise InteropError(f"--out {out} is a file; pass a folder for the new run")
    with output_lock(out, "gankit import"):
        run = RunFolder(out)
        _prepare_out(run, overwrite)
        snapshot = generator_snapshot(cfg, info, G.state_dict(), imported=record)
        atomic_save(snapshot, run.g_last)
        if D is not None:  # the discriminator beside it, with the same config and data facts
            meta = {k: snapshot[k] for k in ("format", "family", "config", "info", "imported")}
            atomic_save({**meta, "D": D.state_dict()}, run.d_imported)
        run.save_config(cfg)
        with atomic_path(run.imported_record) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
    return out


def _source(kind: str, path: Path) -> dict[str, str]:
    return {"file": str(path.resolve()), "sha256": _sha256(path), "format": kind}


def import_pix2pix_repo(
    netG: str | Path,
    out: str | Path,
    *,
    task: str = "pix2pix",
    netD: str | Path | None = None,
    dropout: bool = True,
    overwrite: bool = False,
) -> Path:
    """A run folder from junyanz pix2pix/colorization weights (``latest_net_G.pth`` [+ ``latest_net_D.pth``]).

    Args:
        netG: the generator's state dict (a ``unet_*`` U-Net).
        out: the run folder to create.
        task: ``pix2pix`` (image -> image) or ``colorize`` (L -> ab, 1 -> 2 channels).
        netD: the discriminator's state dict (``basic`` or ``n_layers`` PatchGAN), optional.
        dropout: whether the model was trained with dropout (the reference's default; ``--no_dropout``
            turns it off). Only inference in train mode is affected.
    """
    if task not in ("pix2pix", "colorize"):
        raise InteropError(f"--task {task}: expected pix2pix or colorize")
    g_path, out = Path(netG), Path(out)
    g_sd, gf = convert_jz_unet(load_reference_state(g_path, "netG"), g_path)
    lab = (gf.in_channels, gf.out_channels) == (1, 2)
    if task == "colorize" and not lab:
        raise InteropError(
            f"netG {g_path}: --task colorize needs a 1 -> 2 channel (L -> ab) U-Net, "
            f"found {gf.in_channels} -> {gf.out_channels}"
        )
    if task == "pix2pix" and lab:
        raise InteropError(f"netG {g_path}: a 1 -> 2 channel U-Net is a colorization model; pass --task colorize")
    d_sd, df = None, None
    if netD is not None:
        d_path = Path(netD)
        d_sd, df = convert_jz_patchgan(load_reference_state(d_path, "--netD"), d_path)
        if df.in_channels != gf.in_channels + gf.out_channels:
            raise InteropError(
                f"--netD {d_path}: the discriminator sees {df.in_channels} channels, but the generator's "
                f"input + output is {gf.in_channels} + {gf.out_channels}; pass the D trained with this G"
            )
        if df.norm != gf.norm:
            raise InteropError(
                f"--netD {d_path}: {df.norm} norm, but the generator has {gf.norm} norm; gankit uses one norm for both"
            )
    res = gf.resolution
    overrides: dict[str, Any] = {
        "model.ngf": gf.ngf,
        "model.norm": gf.norm,
        "model.g_dropout": 0.5 if dropout else 0.0,
        "model.g_dropout_blocks": "reference",  # where the reference's UnetGenerator has its dropout
        "data.resolution": res,
        "data.load_size": max(res, round(res * 286 / 256)) if task == "pix2pix" else res,
    }
    if df is not None:
        overrides.update({"model.ndf": df.ndf, "model.n_layers": df.n_layers})
    cfg = make_config(task, overrides=overrides)
    info = DataInfo(
        channels=gf.out_channels,
        resolution=res,
        in_channels=gf.in_channels,
        space="lab" if task == "colorize" else "rgb",
    )
    G, D = get_family(task).build(cfg, info, init=False)
    _load_into(G, g_sd, g_path, "netG", gf.norm)
    if d_sd is not None:
        assert df is not None
        _load_into(D, d_sd, Path(netD), "--netD", df.norm)  # type: ignore[arg-type]
    record = {
        "source": "pix2pix-repo (junyanz/pytorch-CycleGAN-and-pix2pix)",
        "task": task,
        "netG": {**_source("UnetGenerator", g_path), **dataclasses.asdict(gf), "netG": f"unet_{res}"},
        "dropout": dropout,
    }
    if df is not None:
        record["netD"] = {**_source("NLayerDiscriminator", Path(netD)), **dataclasses.asdict(df)}  # type: ignore[arg-type]
    return _write_run(out, overwrite, cfg, info, G, D if d_sd is not None else None, record)


def import_dcgan_example(
    netG: str | Path, out: str | Path, *, netD: str | Path | None = None, overwrite: bool = False
) -> Path:
    """A run folder from pytorch/examples DCGAN weights (``netG_epoch_N.pth`` [+ ``netD_epoch_N.pth``])."""
    g_path, out = Path(netG), Path(out)
    g_sd = load_reference_state(g_path, "netG")
    gf = dcgan_generator_facts(g_sd, g_path)
    _check_dcgan_widths(g_sd, g_path, "netG", gf["resolution"], gf["ngf"], generator=True)
    norm = "batch" if "main.1.weight" in g_sd else "none"
    d_sd, df = None, None
    if netD is not None:
        d_path = Path(netD)
        d_sd = load_reference_state(d_path, "--netD")
        df = dcgan_discriminator_facts(d_sd, d_path)
        if (df["nc"], df["resolution"]) != (gf["nc"], gf["resolution"]):
            raise InteropError(
                f"--netD {d_path}: a discriminator for {df['nc']}-channel {df['resolution']}px images, but the "
                f"generator makes {gf['nc']}-channel {gf['resolution']}px images"
            )
        _check_dcgan_widths(d_sd, d_path, "--netD", df["resolution"], df["ndf"], generator=False)
    overrides: dict[str, Any] = {
        "model.z_dim": gf["nz"],
        "model.ngf": gf["ngf"],
        "model.norm": norm,
        "data.resolution": gf["resolution"],
        "data.channels": gf["nc"],
    }
    if df is not None:
        overrides["model.ndf"] = df["ndf"]
    cfg = make_config("dcgan", overrides=overrides)
    info = DataInfo(channels=gf["nc"], resolution=gf["resolution"])
    G, D = get_family("dcgan").build(cfg, info, init=False)
    _load_into(G, g_sd, g_path, "netG", norm)
    if d_sd is not None:
        _load_into(D, d_sd, Path(netD), "--netD", norm)  # type: ignore[arg-type]
    record: dict[str, Any] = {
        "source": "dcgan-example (pytorch/examples dcgan/main.py)",
        "netG": {**_source("Generator", g_path), **gf},
    }
    if df is not None:
        record["netD"] = {
            **_source("Discriminator", Path(netD)),
            **df,
            "note": "gankit's D returns logits (no Sigmoid)",
        }  # type: ignore[arg-type]
    return _write_run(out, overwrite, cfg, info, G, D if d_sd is not None else None, record)


def load_imported_discriminator(run: str | Path) -> nn.Module:
    """The discriminator stored by an import (``RUN/checkpoints/D_imported.pt``), in eval mode.

    gankit discriminators return logits: apply a sigmoid to compare with the DCGAN example's output.
    """
    from gankit.training.checkpoint import CheckpointError

    path = RunFolder(run).d_imported
    if not path.is_file():
        raise CheckpointError(f"{path}: no imported discriminator (import with --netD)")
    again = "import again with --netD and --overwrite"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, overwritten, not a torch file
        raise CheckpointError(f"{path}: not a readable checkpoint ({describe_load_failure(e)}); {again}") from None
    try:
        cfg = Config.from_dict(state["config"], source=str(path))
        _, D = get_family(cfg.family).build(cfg, DataInfo(**state["info"]), init=False)
        D.load_state_dict(state["D"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path}: not an imported discriminator of this gankit ({first}); {again}") from None
    return D.eval()
