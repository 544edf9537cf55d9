"""Typed configs: presets, ``--set`` overrides, config files and the dict round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gankit.config import (
    PRESETS,
    Config,
    ConfigError,
    apply_overrides,
    load_config_file,
    make_config,
    parse_augment,
    parse_set_args,
)
from gankit.families import FAMILIES


def _get(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# ------------------------------------------------------------------------------------ presets


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_resolves(preset: str) -> None:
    cfg = make_config(preset)
    assert cfg.preset == preset
    assert cfg.family == PRESETS[preset]["family"]
    assert cfg.family in FAMILIES
    for key, value in PRESETS[preset].items():
        if key != "family":
            assert _get(cfg, key) == value, key


def test_every_family_has_a_preset_of_its_name() -> None:
    for name in FAMILIES:
        assert name in PRESETS and PRESETS[name]["family"] == name


def test_presets_differ_from_defaults_where_they_say_so() -> None:
    assert make_config("cgan").model.d_hidden == [1024, 512, 256]
    assert make_config("dcgan-fmnist32").data.resolution == 32
    assert make_config("pix2pix").loss.d_scale == 0.5


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="unknown preset or family 'nope'"):
        make_config("nope")


# ------------------------------------------------------------------------------- --set parsing


def test_set_values_are_parsed_as_yaml() -> None:
    parsed = parse_set_args(
        [
            "train.batch_size=32",
            "optim.lr_g=0.001",
            "model.g_hidden=[128, 64]",
            "train.progress=false",
            "data.path=/some/where",
            "data.path2=a=b",
        ]
    )
    assert parsed == {
        "train.batch_size": 32,
        "optim.lr_g": 0.001,
        "model.g_hidden": [128, 64],
        "train.progress": False,
        "data.path": "/some/where",
        "data.path2": "a=b",
    }
    assert type(parsed["train.batch_size"]) is int


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("2e-4", 2e-4), ("5E-5", 5e-5), ("1.5e-4", 1.5e-4)])
def test_set_accepts_scientific_notation_for_floats(text: str, value: float) -> None:
    # `--set optim.lr_g=1e-4` is the example in the CLI help; YAML 1.1 reads "1e-4" as a string.
    cfg = make_config("gan", overrides=parse_set_args([f"optim.lr_g={text}"]))
    assert cfg.optim.lr_g == pytest.approx(value)


def test_set_without_equals_sign() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["train.batch_size"])


def test_set_unparseable_value() -> None:
    with pytest.raises(ConfigError, match="model.g_hidden"):
        parse_set_args(["model.g_hidden=[1, 2"])


@pytest.mark.parametrize("key", ["train.bogus", "model.widht", "optim.lr"])
def test_unknown_key_names_the_key(key: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        make_config("gan", overrides={key: 1})


def test_unknown_section_names_the_section() -> None:
    with pytest.raises(ConfigError, match="unknown config section 'trian' in 'trian.epochs'"):
        make_config("gan", overrides={"trian.epochs": 1})
    with pytest.raises(ConfigError, match="train.epochs.x"):
        make_config("gan", overrides={"train.epochs.x": 1})


def test_setting_a_whole_section_is_refused() -> None:
    with pytest.raises(ConfigError, match="is a section"):
        make_config("gan", overrides={"train": 5})


@pytest.mark.parametrize(
    "key, raw",
    [
        ("train.batch_size", "abc"),
        ("train.batch_size", "1.5"),
        ("train.batch_size", "true"),
        ("train.progress", "1"),
        ("optim.lr_g", "fast"),
        ("optim.lr_g", "true"),
        ("model.g_hidden", "5"),
        ("model.g_hidden", "[1, a]"),
        ("loss.gan", "3"),
        ("data.path", "[1]"),
    ],
)
def test_wrong_type_is_refused_and_names_the_key(key: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config("gan", overrides=parse_set_args([f"{key}={raw}"]))


def test_int_accepted_for_float() -> None:
    cfg = make_config("gan", overrides=parse_set_args(["optim.lr_g=1", "loss.gp_weight=5"]))
    assert cfg.optim.lr_g == 1.0 and type(cfg.optim.lr_g) is float
    assert cfg.loss.gp_weight == 5.0 and type(cfg.loss.gp_weight) is float


def test_list_and_optional_values() -> None:
    cfg = make_config(
        "gan", overrides=parse_set_args(["model.g_hidden=[8, 16, 32]", "model.d_hidden=[]", "data.path=null"])
    )
    assert cfg.model.g_hidden == [8, 16, 32]
    assert cfg.model.d_hidden == []
    assert cfg.data.path is None
    cfg = make_config("gan", overrides={"model.g_hidden": (4, 5), "data.path": "x"})
    assert cfg.model.g_hidden == [4, 5] and isinstance(cfg.model.g_hidden, list)
    assert cfg.data.path == "x"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train.batch_size", 0, "batch_size must be > 0"),
        ("loss.n_critic", 0, "n_critic must be >= 1"),
        ("train.amp", "fp8", "train.amp"),
        ("model.norm", "layer", "model.norm"),
        ("data.channels", 2, "data.channels"),
        ("train.ema_decay", 1.0, "ema_decay"),
        ("train.ema_halflife_kimg", -1, r"train.ema_halflife_kimg must be >= 0 \(0 = off\), not -1"),
        ("train.ema_rampup", -0.05, r"train.ema_rampup must be >= 0 \(0 = no ramp-up\), not -0.05"),
        ("loss.label_smoothing", 0.5, r"loss.label_smoothing must be in \[0, 0.5\) \(0 = off\), not 0.5"),
    ],
)
def test_value_checks(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config("gan", overrides={key: value})


def test_ema_decay_and_halflife_are_exclusive() -> None:
    both = {"train.ema_decay": 0.999, "train.ema_halflife_kimg": 10}
    with pytest.raises(ConfigError) as e:
        make_config("gan", overrides=both)
    assert str(e.value) == (
        "train.ema_decay=0.999 and train.ema_halflife_kimg=10 both set the generator EMA; set one of them to 0"
    )
    cfg = make_config("gan", overrides=parse_set_args(["train.ema_halflife_kimg=10", "train.ema_rampup=0"]))
    assert (cfg.train.ema_decay, cfg.train.ema_halflife_kimg, cfg.train.ema_rampup) == (0.0, 10.0, 0.0)
    assert make_config("gan").train.ema_rampup == 0.05  # StyleGAN2-ADA's, used once a half-life is set


def test_label_smoothing_needs_a_loss_with_targets() -> None:
    with pytest.raises(ConfigError, match="which loss.gan=hinge does not have; use loss.gan vanilla or lsgan"):
        make_config("gan", overrides={"loss.label_smoothing": 0.1, "loss.gan": "hinge"})
    assert make_config("gan", overrides={"loss.label_smoothing": 0.1, "loss.gan": "lsgan"}).loss.label_smoothing == 0.1


def test_overrides_do_not_leak_between_configs() -> None:
    a = make_config("gan", overrides={"model.g_hidden": [3]})
    a.model.d_hidden.append(7)
    b = make_config("gan")
    assert b.model.g_hidden == [256, 256] and b.model.d_hidden == [256, 256]
    assert PRESETS["gan"]["model.d_hidden"] == [256, 256]


# ------------------------------------------------------------------------------- config files


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file(tmp_path: Path, suffix: str) -> None:
    data = {"train": {"batch_size": 7, "epochs": 2}, "model": {"g_hidden": [8]}, "optim": {"lr_g": 1}}
    path = tmp_path / f"run{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    assert load_config_file(path) == {"train.batch_size": 7, "train.epochs": 2, "model.g_hidden": [8], "optim.lr_g": 1}
    cfg = make_config("gan", config_file=path, overrides={"train.epochs": 3})
    assert cfg.train.batch_size == 7
    assert cfg.model.g_hidden == [8]
    assert cfg.optim.lr_g == 1.0
    assert cfg.train.epochs == 3  # --set wins over the file
    assert cfg.model.z_dim == PRESETS["gan"]["model.z_dim"]  # the preset stays underneath


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_unknown_key_names_file_and_key(tmp_path: Path, suffix: str) -> None:
    data = {"train": {"batchsize": 7}}
    path = tmp_path / f"bad{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    with pytest.raises(ConfigError) as e:
        make_config("gan", config_file=path)
    assert str(path) in str(e.value) and "train.batchsize" in str(e.value)


def test_config_file_wrong_type_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=f"{path}.*train.batch_size"):
        make_config("gan", config_file=path)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        make_config("gan", config_file=tmp_path / "missing.yaml")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot parse"):
        make_config("gan", config_file=bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        make_config("gan", config_file=lst)
    other = tmp_path / "other.yaml"
    other.write_text("family: dcgan\n")
    with pytest.raises(ConfigError, match="family does not match"):
        make_config("gan", config_file=other)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert make_config("gan", config_file=empty) == make_config("gan")


def test_saved_run_config_can_be_fed_back(tmp_path: Path) -> None:
    cfg = make_config("cgan", overrides={"train.batch_size": 12})
    cfg.save(tmp_path / "config.yaml")
    again = make_config("cgan", config_file=tmp_path / "config.yaml")
    assert again == cfg


# -------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("preset", list(PRESETS))
def test_dict_round_trip(preset: str, tmp_path: Path) -> None:
    cfg = make_config(preset, overrides={"model.g_hidden": [5, 6], "data.path": "/x", "optim.lr_d": 3e-4})
    d = cfg.to_dict()
    assert d["model"]["g_hidden"] == [5, 6] and d["family"] == cfg.family
    assert Config.from_dict(d) == cfg
    assert Config.from_dict(json.loads(json.dumps(d))) == cfg
    cfg.save(tmp_path / "c.yaml")
    assert Config.from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text())) == cfg
    assert Config.from_dict(d) != make_config(preset)


def test_from_dict_errors_name_the_source() -> None:
    d = make_config("gan").to_dict()
    d["train"]["nope"] = 1
    with pytest.raises(ConfigError, match="ckpt.pt: unknown config key 'train.nope'"):
        Config.from_dict(d, source="ckpt.pt")


def test_apply_overrides_is_in_place_and_typed() -> None:
    cfg = Config()
    out = apply_overrides(cfg, {"train.seed": 5, "optim.beta1": 0})
    assert out is cfg and cfg.train.seed == 5 and cfg.optim.beta1 == 0.0 and type(cfg.optim.beta1) is float


def test_config_file_accepts_scientific_notation(tmp_path: Path) -> None:
    # Same YAML 1.1 pitfall as --set: "lr_g: 2e-4" is a string to yaml.safe_load.
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr_g: 2e-4\n  lr_d: 1.0e-4\n")
    cfg = make_config("gan", config_file=path)
    assert cfg.optim.lr_g == pytest.approx(2e-4) and cfg.optim.lr_d == pytest.approx(1e-4)


# ------------------------------------------------------------------------- config.yaml on disk


def test_an_interrupted_save_leaves_the_old_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run" / "config.yaml"
    make_config("gan").save(path)
    before = path.read_text()
    real_write = Path.write_text

    def killed_mid_write(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        real_write(self, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        make_config("gan", overrides={"train.batch_size": 7}).save(path)
    monkeypatch.undo()
    assert path.read_text() == before and [p.name for p in path.parent.iterdir()] == ["config.yaml"]
    assert Config.load(path) == make_config("gan")


DAMAGED = {
    "binary": (b"\x00\xff\xfe\x00", "not text: byte 1 is not UTF-8"),
    "bad yaml": (b"train:\n  batch_size: 64\n  epo", "could not find expected ':' at line 3"),
    "cut short": (b"family: gan\npreset: gan\ndata:\n  name: fash", "no model, loss, optim, train section: cut short"),
    "empty": (b"", "it holds nothing, not config sections"),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
@pytest.mark.parametrize("command", ["train", "report"])
def test_a_damaged_run_config_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, damage: str, command: str
) -> None:
    from gankit.cli import main

    run = tmp_path / "run"
    run.mkdir()
    content, reason = DAMAGED[damage]
    (run / "config.yaml").write_bytes(content)
    args = ["train", "gan", "--resume", "--out", str(run)] if command == "train" else ["report", str(run)]
    assert main(args) == 2  # a ConfigError, as for every bad config
    if command == "train":  # --resume would fall back to the copy in checkpoints/last.pt: there is none
        said = f"{run / 'config.yaml'}: damaged ({reason}), and no training state in {run / 'checkpoints'} holds a copy"
        fix = "restore the file, or train into another --out"
    else:
        said, fix = f"{run / 'config.yaml'} is damaged ({reason})", "restore it from a backup copy of the run"
    assert capsys.readouterr().err == f"gankit {command}: error: {said}; {fix}\n"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # nothing written beside it


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("loss.r1_gamma", -1.0, "loss.r1_gamma must be >= 0"), ("loss.r1_every", 0, "loss.r1_every must be >= 1")],
)
def test_bad_r1_options_are_one_line_config_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        make_config("gan", overrides={key: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", ("none", ())),
        ("diffaug", ("diffaug", ("color", "translation", "cutout"))),
        ("diffaug:cutout,translation", ("diffaug", ("translation", "cutout"))),  # applied in one fixed order
        ("diffaug: translation , color", ("diffaug", ("color", "translation"))),
        ("ada", ("ada", ("color", "translation", "cutout"))),
        ("ada:cutout", ("ada", ("cutout",))),
    ],
)
def test_augment_values_parse(value: str, expected: tuple[str, tuple[str, ...]]) -> None:
    assert parse_augment(value) == expected
    assert make_config("gan", overrides={"train.augment": value}).train.augment == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("diffaug:colour", "train.augment='diffaug:colour': unknown diffaug policy 'colour'; did you mean 'color'?"),
        (
            "diffaug:translation,cutoff",
            "train.augment='diffaug:translation,cutoff': unknown diffaug policy 'cutoff'; did you mean 'cutout'?",
        ),
        ("ada:zoom", "unknown ada policy 'zoom'; the policies are color, translation, cutout"),
        ("diffaug:", "train.augment='diffaug:': an empty name in the diffaug policy"),
        ("diffaugment", "use none, diffaug, diffaug:POLICY or ada (POLICY: a comma list of color, translation, cutout"),
        ("diffaugment", "did you mean 'diffaug'?"),
        ("none:color", "train.augment='none:color': use none, diffaug"),
    ],
)
def test_bad_augment_values_are_one_line_errors_naming_the_word(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config("gan", overrides={"train.augment": value})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.augment": "ada", "loss.gan": "wgan-gp"}, "train.augment=ada adapts to the sign of D's output"),
        ({"train.ada_target": 1.0}, "train.ada_target must be in (0, 1), not 1.0"),
        ({"train.ada_kimg": 0}, "train.ada_kimg must be > 0, not 0.0"),
    ],
)
def test_bad_ada_options_are_config_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config("gan", overrides=overrides)
    assert message in str(err.value)
    make_config("gan", overrides={"train.augment": "diffaug", "loss.gan": "wgan-gp"})  # diffaug needs no sign
