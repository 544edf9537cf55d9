"""gankit import: reference checkpoints (junyanz pix2pix repo, PyTorch DCGAN example) -> gankit runs.

The fixtures in tests/fixtures/interop/ hold weights, inputs and outputs made by the reference code
itself; an import is right when gankit's network reproduces those outputs (eval mode, fp32).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES
from PIL import Image
from torch import nn

from gankit.cli import main
from gankit.interop import (
    InteropError,
    convert_jz_patchgan,
    convert_jz_unet,
    dcgan_discriminator_facts,
    dcgan_generator_facts,
    import_dcgan_example,
    import_pix2pix_repo,
    load_imported_discriminator,
)
from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.models.patchgan import PatchDiscriminator
from gankit.models.unet import UNetGenerator
from gankit.sampling import load_generator

INTEROP = FIXTURES / "interop"
TOL = 1e-5


def fixture(name: str) -> dict:
    return torch.load(INTEROP / f"{name}.pt", weights_only=True)


def as_pth(tmp_path: Path, name: str, state: dict | None = None) -> Path:
    """Write a fixture's state dict as the reference saves it: a bare ``.pth`` state dict."""
    path = tmp_path / f"{name}.pth"
    torch.save(fixture(name)["state_dict"] if state is None else state, path)
    return path


def keys_layout(name: str) -> dict[str, torch.Tensor]:
    """A state dict with the key names and shapes of a full-size reference network (values random)."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    for line in (INTEROP / f"{name}.keys.txt").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        sd[key] = torch.zeros(dims, dtype=torch.int64) if dtype == "int64" else torch.rand(dims, generator=g)
    return sd


def assert_reproduces(out: torch.Tensor, ref: torch.Tensor) -> None:
    diff = (out - ref).abs().max().item()
    assert out.shape == ref.shape
    assert diff <= TOL, diff
    # Some reference outputs are tiny (DCGAN G at init), so also bound the error relative to their spread.
    assert diff <= 1e-3 * ref.std().item(), (diff, ref.std().item())


# ---------------------------------------------------------------------------- reference outputs


@pytest.mark.parametrize("zero_taps", [True, False])
def test_pix2pix_unet_batchnorm_and_patchgan_reproduce_reference(tmp_path: Path, zero_taps: bool) -> None:
    g, d = fixture("jz_unet128_ngf4_batch_G"), fixture("jz_basic_ndf8_batch_D")
    run = import_pix2pix_repo(
        as_pth(tmp_path, "jz_unet128_ngf4_batch_G"), tmp_path / "run", netD=as_pth(tmp_path, "jz_basic_ndf8_batch_D")
    )
    loaded = load_generator(run, zero_taps=zero_taps)
    assert (loaded.cfg.model.ngf, loaded.cfg.model.norm, loaded.info.resolution) == (4, "batch", 128)
    assert (loaded.cfg.model.ndf, loaded.cfg.model.n_layers, loaded.cfg.model.g_dropout) == (8, 3, 0.5)
    with torch.no_grad():
        assert_reproduces(loaded.G(*g["inputs"]), g["output"])
        assert_reproduces(load_imported_discriminator(run)(*d["inputs"]), d["output"])


def test_colorization_unet_instancenorm_reproduces_reference(tmp_path: Path) -> None:
    g = fixture("jz_unet128_ngf4_instance_1to2_G")
    run = import_pix2pix_repo(
        as_pth(tmp_path, "jz_unet128_ngf4_instance_1to2_G"), tmp_path / "run", task="colorize", dropout=False
    )
    loaded = load_generator(run)
    assert loaded.family.name == "colorize" and loaded.info.space == "lab"
    assert (loaded.info.in_channels, loaded.info.channels, loaded.cfg.model.norm) == (1, 2, "instance")
    assert loaded.cfg.model.g_dropout == 0.0
    with torch.no_grad():
        assert_reproduces(loaded.G(*g["inputs"]), g["output"])


def test_old_checkpoint_with_instancenorm_statistics_still_reproduces(tmp_path: Path) -> None:
    """Older junyanz releases saved running stats for InstanceNorm layers; the reference drops them."""
    g = fixture("jz_unet128_ngf4_instance_1to2_G")
    sd = dict(g["state_dict"])
    for prefix in ("model.model.1.model.2", "model.model.1.model.6"):  # a down norm and an up norm
        sd[f"{prefix}.running_mean"] = torch.full((8 if prefix.endswith("2") else 4,), 5.0)
        sd[f"{prefix}.running_var"] = torch.full((8 if prefix.endswith("2") else 4,), 9.0)
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(3)
    run = import_pix2pix_repo(as_pth(tmp_path, "old", sd), tmp_path / "run", task="colorize")
    with torch.no_grad():
        assert_reproduces(load_generator(run).G(*g["inputs"]), g["output"])


def test_dcgan_example_generator_and_discriminator_reproduce_reference(tmp_path: Path) -> None:
    g, d = fixture("pe_dcgan_nz16_ngf8_G"), fixture("pe_dcgan_ndf8_D")
    run = import_dcgan_example(
        as_pth(tmp_path, "pe_dcgan_nz16_ngf8_G"), tmp_path / "run", netD=as_pth(tmp_path, "pe_dcgan_ndf8_D")
    )
    loaded = load_generator(run)
    m = loaded.cfg.model
    assert (m.z_dim, m.ngf, m.ndf, loaded.info.channels, loaded.info.resolution) == (16, 8, 8, 3, 64)
    (z,) = g["inputs"]  # (N, nz, 1, 1), as the example feeds it; gankit takes (N, nz)
    with torch.no_grad():
        assert_reproduces(loaded.G(z.flatten(1)), g["output"])
        # the example's D ends in a Sigmoid; gankit's returns the logit
        assert_reproduces(torch.sigmoid(load_imported_discriminator(run)(*d["inputs"])), d["output"])


def test_module_prefix_is_removed(tmp_path: Path) -> None:
    g = fixture("pe_dcgan_nz16_ngf8_G")
    wrapped = {f"module.{k}": v for k, v in g["state_dict"].items()}
    run = import_dcgan_example(as_pth(tmp_path, "wrapped", wrapped), tmp_path / "run")
    with torch.no_grad():
        assert_reproduces(load_generator(run).G(g["inputs"][0].flatten(1)), g["output"])


# ----------------------------------------------------------------------------- full-size layouts


def reference_param_count(sd: dict[str, torch.Tensor]) -> int:
    return sum(
        v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )


@pytest.mark.parametrize(
    ("name", "in_ch", "out_ch", "norm"),
    [
        ("jz_unet256_ngf64_batch_G", 3, 3, "batch"),
        ("jz_unet256_ngf64_instance_G", 3, 3, "instance"),
        ("jz_colorization_unet256_G", 1, 2, "batch"),
    ],
)
def test_full_size_unet_layouts_map_onto_gankit(name: str, in_ch: int, out_ch: int, norm: str) -> None:
    reference = keys_layout(name)
    sd, facts = convert_jz_unet(reference, Path(name))
    assert (facts.in_channels, facts.out_channels, facts.ngf, facts.resolution, facts.norm) == (
        in_ch,
        out_ch,
        64,
        256,
        norm,
    )
    G = UNetGenerator(in_ch, out_ch, resolution=256, ngf=64, norm=norm)
    G.load_state_dict(sd)  # strict: every key of gankit's module is filled, none left over
    assert sum(p.numel() for p in G.parameters()) == reference_param_count(reference)
    if name == "jz_unet256_ngf64_batch_G":
        assert reference_param_count(reference) == 54_413_955  # the pix2pix paper's 54.41 M


@pytest.mark.parametrize(("name", "in_ch"), [("jz_basic_ndf64_batch_D", 6), ("jz_colorization_basic_D", 3)])
def test_full_size_patchgan_layouts_map_onto_gankit(name: str, in_ch: int) -> None:
    sd, facts = convert_jz_patchgan(keys_layout(name), Path(name))
    assert (facts.in_channels, facts.ndf, facts.n_layers, facts.norm) == (in_ch, 64, 3, "batch")
    PatchDiscriminator(in_ch, ndf=64, n_layers=3, norm="batch").load_state_dict(sd)


def test_full_size_dcgan_layouts_map_onto_gankit() -> None:
    g, d = keys_layout("pe_dcgan_nz100_ngf64_G"), keys_layout("pe_dcgan_ndf64_D")
    gf, df = dcgan_generator_facts(g, Path("G")), dcgan_discriminator_facts(d, Path("D"))
    assert gf == {"nz": 100, "ngf": 64, "nc": 3, "resolution": 64}
    assert df == {"ndf": 64, "nc": 3, "resolution": 64}
    DCGANGenerator(100, 3, resolution=64, ngf=64).load_state_dict(g)
    DCGANDiscriminator(3, resolution=64, ndf=64).load_state_dict(d)


def _example_layout(widths: list[int], nc: int = 3, *, nz: int = 8, generator: bool = True) -> nn.Sequential:
    """A pytorch/examples-style DCGAN ``main`` with the given feature widths (G: from 4x4 up; D: down to 4x4),
    as a user extending the example to other sizes writes it."""
    if generator:
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False)]
        layers += [nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
    else:
        layers = [nn.Conv2d(nc, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


def _save_main(seq: nn.Sequential, path: Path) -> Path:
    torch.save({f"main.{k}": v for k, v in seq.state_dict().items()}, path)
    return path


def test_a_128px_example_imports_when_its_widths_follow_gankits_cap(tmp_path: Path) -> None:
    torch.manual_seed(0)
    capped = _example_layout([32, 32, 16, 8, 4]).eval()  # ngf=4: 8*ngf at 4x4 and 8x8, then halving
    run = import_dcgan_example(_save_main(capped, tmp_path / "G.pth"), tmp_path / "run")
    loaded = load_generator(run)
    assert (loaded.cfg.model.ngf, loaded.info.resolution) == (4, 128)
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert_reproduces(loaded.G(z), capped(z[:, :, None, None]))


@pytest.mark.parametrize("generator", [True, False])
def test_a_128px_example_that_doubles_past_8x_is_a_one_line_error(tmp_path: Path, generator: bool) -> None:
    """Doubling on past the 64-px network (ngf*16 / ndf*16 at 4x4) is refused with both width lists."""
    capped_g, doubling_g = [32, 32, 16, 8, 4], [64, 32, 16, 8, 4]
    g_path = _save_main(_example_layout(doubling_g if generator else capped_g), tmp_path / "G.pth")
    netD = None if generator else _save_main(_example_layout(doubling_g[::-1], generator=False), tmp_path / "D.pth")
    if generator:
        expected = "channel widths [64, 32, 16, 8, 4], but gankit's 128px DCGAN with ngf=4 has [32, 32, 16, 8, 4]"
    else:
        expected = "channel widths [4, 8, 16, 32, 64], but gankit's 128px DCGAN with ndf=4 has [4, 8, 16, 32, 32]"
    with pytest.raises(InteropError, match=re.escape(expected)):
        import_dcgan_example(g_path, tmp_path / "run", netD=netD)
    assert not (tmp_path / "run").exists()


def test_n_layers_patchgan_and_no_norm_are_exact() -> None:
    """n_layers_D=4 with norm='none': the reference convs have no bias, gankit's get zeros."""
    torch.manual_seed(0)
    ref = PatchDiscriminator(6, ndf=4, n_layers=4, norm="none")
    # the reference's layout: model.N keys and no biases on the middle convs
    sd = {k.replace("main.", "model."): v for k, v in ref.state_dict().items()}
    for i in (2, 5, 8, 11):
        sd.pop(f"model.{i}.bias")
        ref.main[i].bias.data.zero_()
    mapped, facts = convert_jz_patchgan(sd, Path("D"))
    assert (facts.n_layers, facts.norm) == (4, "none")
    from gankit.interop import _load_into

    D = PatchDiscriminator(6, ndf=4, n_layers=4, norm="none")
    _load_into(D, mapped, Path("D"), "--netD", "none")
    x = torch.randn(1, 6, 64, 64)
    assert torch.equal(D(x), ref(x))


# ------------------------------------------------------------------------------ refusals


def test_unexpected_key_is_named(tmp_path: Path) -> None:
    sd = dict(fixture("jz_unet128_ngf4_batch_G")["state_dict"])
    sd["model.model.1.extra.weight"] = torch.zeros(3)
    with pytest.raises(
        InteropError, match=r"expected a unet_256/unet_128 .* unexpected key 'model.model.1.extra.weight'"
    ):
        import_pix2pix_repo(as_pth(tmp_path, "x", sd), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resnet_generator_is_refused_with_a_hint(tmp_path: Path) -> None:
    sd = {"model.1.weight": torch.zeros(64, 3, 7, 7), "model.10.conv_block.1.weight": torch.zeros(256, 256, 3, 3)}
    with pytest.raises(InteropError, match="resnet"):
        import_pix2pix_repo(as_pth(tmp_path, "resnet", sd), tmp_path / "run")


@pytest.mark.parametrize(
    ("source", "netG", "netD", "message"),
    [
        ("pix2pix", "pe_dcgan_nz16_ngf8_G", None, r"expected a unet_256/unet_128 .* found first key 'main.0.weight'"),
        (
            "dcgan",
            "jz_basic_ndf8_batch_D",
            None,
            r"expected the Generator of pytorch/examples dcgan .* 'model.0.weight'",
        ),
        ("dcgan", "pe_dcgan_nz16_ngf8_G", "jz_basic_ndf8_batch_D", r"--netD .* expected the Discriminator"),
        ("pix2pix", "jz_unet128_ngf4_batch_G", "pe_dcgan_ndf8_D", r"--netD .* expected a basic/n_layers PatchGAN"),
        ("pix2pix", "jz_unet128_ngf4_instance_1to2_G", None, r"colorization model; pass --task colorize"),
        ("colorize", "jz_unet128_ngf4_batch_G", None, r"needs a 1 -> 2 channel .* found 3 -> 3"),
    ],
)
def test_wrong_checkpoints_get_one_line_errors(
    tmp_path: Path, source: str, netG: str, netD: str | None, message: str
) -> None:
    g = as_pth(tmp_path, netG)
    d = as_pth(tmp_path, netD) if netD else None
    with pytest.raises(InteropError, match=message) as err:
        if source == "dcgan":
            import_dcgan_example(g, tmp_path / "run", netD=d)
        else:
            import_pix2pix_repo(g, tmp_path / "run", task=source, netD=d)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_not_a_state_dict_and_gankit_checkpoints_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    with pytest.raises(InteropError, match="not a readable PyTorch state dict"):
        import_dcgan_example(junk, tmp_path / "run")
    run = import_dcgan_example(as_pth(tmp_path, "pe_dcgan_nz16_ngf8_G"), tmp_path / "first")
    with pytest.raises(InteropError, match="already a gankit checkpoint"):
        import_dcgan_example(run / "checkpoints" / "G_last.pt", tmp_path / "run")


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("cut in half", r"\(truncated or corrupt file\); copy or download it again"),
        ("first 100 bytes", r"\(truncated or corrupt file\); copy or download it again"),
        ("whole module pickled", r"refused: loading it would call .*Linear'.*torch.save\(model.state_dict\(\)\)"),
    ],
)
def test_damaged_or_foreign_weights_are_one_line_errors_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture, damage: str, reason: str
) -> None:
    good = as_pth(tmp_path, "pe_dcgan_nz16_ngf8_G").read_bytes()
    bad = tmp_path / "netG_epoch_24.pth"
    if damage == "whole module pickled":
        torch.save(torch.nn.Linear(2, 2), bad)
    else:
        bad.write_bytes(good[: len(good) // 2] if damage == "cut in half" else good[:100])
    assert main(["import", "dcgan-example", str(bad), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gankit import: error: netG {bad}: not a readable PyTorch state dict (")
    assert err.count("\n") == 1 and re.search(reason, err), err
    assert not (tmp_path / "run").exists()


def test_a_damaged_imported_discriminator_is_a_one_line_error(tmp_path: Path) -> None:
    from gankit.training.checkpoint import CheckpointError

    g, d = as_pth(tmp_path, "pe_dcgan_nz16_ngf8_G"), as_pth(tmp_path, "pe_dcgan_ndf8_D")
    run = import_dcgan_example(g, tmp_path / "run", netD=d)
    path = run / "checkpoints" / "D_imported.pt"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3])
    reason = r"\(truncated or corrupt file\); import again"
    with pytest.raises(CheckpointError, match=rf"D_imported.pt: not a readable checkpoint {reason}") as e:
        load_imported_discriminator(run)
    assert "\n" not in str(e.value)
    torch.save({"D": {}}, path)  # a torch file, but not what an import writes
    with pytest.raises(CheckpointError, match=r"D_imported.pt: not an imported discriminator .*import again"):
        load_imported_discriminator(run)


def test_an_import_into_a_folder_another_import_is_writing_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from gankit.locks import output_lock

    g, out = as_pth(tmp_path, "pe_dcgan_nz16_ngf8_G"), tmp_path / "run"
    with output_lock(out, "gankit import"):  # the other import, still writing
        assert main(["import", "dcgan-example", str(g), "--out", str(out)]) == 1
        assert not (out / "checkpoints").exists()
    err = capsys.readouterr().err
    assert err.startswith(f"gankit import: error: --out {out}: another process (pid {os.getpid()}, gankit import)")
    assert err.count("\n") == 1 and err.strip().endswith("choose another --out")
    assert main(["import", "dcgan-example", str(g), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.yaml", "imported.json"]


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    g = as_pth(tmp_path, "pe_dcgan_nz16_ngf8_G")
    run = import_dcgan_example(g, tmp_path / "run")
    before = (run / "checkpoints" / "G_last.pt").read_bytes()
    with pytest.raises(InteropError, match="already holds a run .* --overwrite"):
        import_dcgan_example(g, tmp_path / "run")
    assert (run / "checkpoints" / "G_last.pt").read_bytes() == before
    import_dcgan_example(g, tmp_path / "run", overwrite=True)


# ---------------------------------------------------------------------------------------- CLI


def test_cli_import_then_colorize_and_translate_and_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(photo)

    col = tmp_path / "col"
    g = as_pth(tmp_path, "jz_unet128_ngf4_instance_1to2_G")
    assert main(["import", "pix2pix-repo", str(g), "--task", "colorize", "--out", str(col)]) == 0
    assert "gankit colorize" in capsys.readouterr().out
    record = json.loads((col / "imported.json").read_text())
    assert record["netG"]["netG"] == "unet_128" and len(record["netG"]["sha256"]) == 64
    assert main(["colorize", str(col), str(photo), "--out", str(tmp_path / "colored")]) == 0
    assert Image.open(tmp_path / "colored" / "photo.png").size == (90, 70)

    p2p = tmp_path / "p2p"
    g, d = as_pth(tmp_path, "jz_unet128_ngf4_batch_G"), as_pth(tmp_path, "jz_basic_ndf8_batch_D")
    assert main(["import", "pix2pix-repo", str(g), "--netD", str(d), "--out", str(p2p)]) == 0
    assert (p2p / "checkpoints" / "D_imported.pt").is_file()
    assert main(["translate", str(p2p), str(photo), "--out", str(tmp_path / "translated")]) == 0
    assert Image.open(tmp_path / "translated" / "photo.png").size == (90, 70)

    dc = tmp_path / "dc"
    assert main(["import", "dcgan-example", str(as_pth(tmp_path, "pe_dcgan_nz16_ngf8_G")), "--out", str(dc)]) == 0
    assert main(["sample", str(dc), "--n", "3", "--out", str(tmp_path / "samples")]) == 0
    assert len(list((tmp_path / "samples").glob("*.png"))) == 3

    capsys.readouterr()
    assert main(["import", "dcgan-example", str(g), "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gankit import: error: netG") and err.count("\n") == 1
