"""Model families by name: each builds its generator and discriminator from a config and data facts.

``register_family`` / ``get_family`` / ``list_families`` follow torchvision's model registry. A
family's ``kind`` selects its objective: ``noise`` (noise -> image: gan, cgan, dcgan) or
``paired`` (image -> image: pix2pix, colorize). The registry is the one list of families: ``gankit
list``, the report, ``gankit serve``, export and the training loop all read it. Importing this
module loads no torch (builders import their networks when called), so ``gankit list`` stays fast.

Adding a family takes three steps (``tests/test_new_family.py`` does them for a tiny "toy" family):

1. **A model file**, ``gankit/models/<name>.py``: the generator and discriminator as ``nn.Module``
   classes. A ``noise`` generator is called ``G(z, labels)`` with ``z`` of shape ``(N, model.z_dim)``
   (``labels`` None unless ``conditional``) and returns images in [-1, 1] of shape ``(N, C, H, W)``;
   its discriminator is called ``D(images, labels)`` and returns logits. A ``paired`` generator maps
   ``G(input)`` to the target; its discriminator gets input and image stacked as channels and returns
   (patch) logits (:mod:`gankit.objectives`).
2. **A registration**, here (or in any module imported before use): a builder decorated with
   :func:`register_family`, which reads ``cfg.model`` fields and the data facts (``DataInfo``:
   channels, resolution, classes) and returns ``(G, D)``; ``model_fields`` names the fields it reads.
   An optional ``check_config`` refuses a config the builder cannot build before any data loads.
3. **A preset** of the same name, :func:`register_preset` (or an entry in
   :data:`gankit.presets.PRESETS`): the family, its dataset and the paper's settings.

Nothing else has to name a new family: the CLI's choices, help and ``gankit list``, objectives,
checkpoints, sampling, evaluation, the report, export and the demo go by the registry and the
family's ``kind`` and ``conditional`` (the few places that name a family, such as the importers of
reference checkpoints in :mod:`gankit.interop`, are about that family alone). A family registered
outside this module must be registered again (its module imported) before a process loads its runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gankit.config import Config, ConfigError, make_config

if TYPE_CHECKING:
    from torch import nn

    from gankit.data.base import DataInfo

Builder = Callable[[Config, "DataInfo"], "tuple[nn.Module, nn.Module]"]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    """noise (noise-to-image) or paired (image-to-image)."""
    description: str
    build_models: Builder
    conditional: bool = False
    """Noise families: whether G and D take class labels."""
    normalized_critic: bool = False
    """Whether the discriminator has normalization layers (set by ``model.norm`` / ``model.d_norm``)."""
    builder_fields: tuple[str, ...] = ()
    """The ``cfg.model`` fields its builder reads."""
    check_config: Callable[[Config], None] | None = None
    """Checks of the config its builder would fail (e.g. an unsupported ``data.resolution``), run by
    :meth:`check` before the data loads; raises ConfigError with a one-line message."""

    def check(self, cfg: Config) -> None:
        """Refuse a config this family cannot build before any data is read (a no-op without checks)."""
        if self.check_config is not None:
            self.check_config(cfg)

    @property
    def model_fields(self) -> tuple[str, ...]:
        """The ``cfg.model`` fields this family uses (the others are ignored by it)."""
        norm = ("d_norm",) if self.normalized_critic else ()
        return (*self.builder_fields, *norm, "init", "init_gain", "d_spectral_norm")

    def build(
        self, cfg: Config, info: DataInfo, *, init: bool = True, log: Callable[[str], None] | None = None
    ) -> tuple[nn.Module, nn.Module]:
        """Generator and discriminator, initialized with ``cfg.model.init`` unless ``init`` is False;
        with ``model.d_spectral_norm`` the discriminator's conv/linear weights are spectrally normalized.

        ``log`` receives a line when the discriminator's normalization differs from ``model.norm``
        (see :func:`critic_norm`)."""
        if log is not None and self.normalized_critic:
            note = critic_norm_note(cfg)
            if note:
                log(note)
        from gankit.models.layers import apply_spectral_norm, init_weights

        G, D = self.build_models(cfg, info)
        if init:
            init_weights(G, cfg.model.init, cfg.model.init_gain)
            init_weights(D, cfg.model.init, cfg.model.init_gain)
        if cfg.model.d_spectral_norm:
            apply_spectral_norm(D)  # after the init: the initialized weight is what gets normalized
        return G, D


FAMILIES: dict[str, Family] = {}


def register_family(
    name: str,
    *,
    kind: str,
    description: str,
    model_fields: tuple[str, ...],
    conditional: bool = False,
    normalized_critic: bool = False,
    check_config: Callable[[Config], None] | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder under ``name``; ``model_fields`` names the ``cfg.model`` fields it reads,
    ``check_config`` (optional) refuses configs it cannot build (see :attr:`Family.check_config`)."""

    def wrap(fn: Builder) -> Builder:
        if name in FAMILIES:
            raise ValueError(f"family '{name}' registered twice")
        FAMILIES[name] = Family(name, kind, description, fn, conditional, normalized_critic, model_fields, check_config)
        return fn

    return wrap


def register_preset(name: str, family: str, values: dict[str, Any]) -> None:
    """Add the preset ``name`` of the registered ``family`` to :data:`gankit.presets.PRESETS`.

    ``values`` are dotted config keys, as ``--set`` takes them. They are checked at once, as
    :func:`gankit.config.make_config` will apply them: an unknown key or a wrong type is a
    :class:`~gankit.config.ConfigError` here rather than at the first ``gankit train``. A name already
    taken, or a family not registered, is a ValueError.
    """
    from gankit.presets import PRESETS

    if name in PRESETS:
        raise ValueError(f"preset '{name}' registered twice")
    get_family(family)  # a ValueError naming the registered families
    PRESETS[name] = {"family": family, **values}
    try:
        make_config(name)
    except ConfigError:
        del PRESETS[name]
        raise


def critic_norm(cfg: Config) -> str:
    """The discriminator's normalization: ``model.d_norm``, or with ``auto`` ``model.norm``, except
    that a loss with a gradient penalty (``wgan-gp``) and ``model.norm=batch`` gets layer norm.

    The WGAN-GP penalty is a sum of per-sample terms; batch norm makes each critic output depend on
    the whole batch (so the penalty is not per-sample) and the interpolates would move its running
    statistics. Gulrajani et al. (2017, section 4) drop batch norm from the critic and recommend layer
    normalization in its place. The generator keeps ``model.norm``.
    """
    from gankit.losses import get_gan_loss

    if cfg.model.d_norm != "auto":
        return cfg.model.d_norm
    if cfg.model.norm == "batch" and get_gan_loss(cfg.loss.gan).gradient_penalty:
        return "layer"
    return cfg.model.norm


def critic_norm_note(cfg: Config) -> str | None:
    """A log line saying how the critic's norm departs from ``model.norm`` (None when it does not)."""
    from gankit.losses import get_gan_loss

    norm = critic_norm(cfg)
    penalty = get_gan_loss(cfg.loss.gan).gradient_penalty
    if cfg.model.d_norm == "auto" and norm != cfg.model.norm:
        return (
            f"discriminator: layer norm instead of batch norm, as loss.gan={cfg.loss.gan} needs a per-sample "
            f"gradient penalty (Gulrajani et al. 2017); model.d_norm=batch keeps batch norm"
        )
    if penalty and norm == "batch":
        return (
            f"warning: model.d_norm=batch with loss.gan={cfg.loss.gan}: batch statistics mix the samples, so the "
            f"gradient penalty is not per-sample; model.d_norm=layer (or auto) gives the per-sample penalty"
        )
    return None


def get_family(name: str) -> Family:
    """The family registered as ``name``; a ValueError lists the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family '{name}'; known: {', '.join(FAMILIES)}") from None


def list_families() -> list[str]:
    """The registered families' names, in registration order."""
    return list(FAMILIES)


_MLP_FIELDS = ("z_dim", "g_hidden", "d_hidden", "g_dropout", "d_dropout")
_UNET_PATCHGAN_FIELDS = ("ngf", "ndf", "norm", "g_dropout", "g_dropout_blocks", "n_layers")


@register_family(
    "gan", kind="noise", description="MLP GAN (Goodfellow et al. 2014), Fashion-MNIST", model_fields=_MLP_FIELDS
)
def _gan(cfg: Config, info: DataInfo) -> tuple[nn.Module, nn.Module]:
    from gankit.models.mlp import MLPDiscriminator, MLPGenerator

    shape = (info.channels, info.resolution, info.resolution)
    m = cfg.model
    return (
        MLPGenerator(m.z_dim, shape, hidden=m.g_hidden, dropout=m.g_dropout),
        MLPDiscriminator(shape, hidden=m.d_hidden, dropout=m.d_dropout),
    )


@register_family(
    "cgan",
    kind="noise",
    description="class-conditional MLP GAN (Mirza & Osindero 2014)",
    model_fields=(*_MLP_FIELDS, "embed_dim"),
    conditional=True,
)
def _cgan(cfg: Config, info: DataInfo) -> tuple[nn.Module, nn.Module]:
    from gankit.models.mlp import MLPDiscriminator, MLPGenerator

    if info.num_classes < 2:
        raise ValueError("cgan needs labelled data (Fashion-MNIST, MNIST, or a folder with one subfolder per class)")
    shape = (info.channels, info.resolution, info.resolution)
    m = cfg.model
    return (
        # the notes' cGAN generator uses LeakyReLU(0.2) between its layers (the plain GAN's uses ReLU)
        MLPGenerator(
            m.z_dim,
            shape,
            hidden=m.g_hidden,
            num_classes=info.num_classes,
            embed_dim=m.embed_dim,
            dropout=m.g_dropout,
            act="leaky_relu",
        ),
        MLPDiscriminator(
            shape, hidden=m.d_hidden, num_classes=info.num_classes, embed_dim=m.embed_dim, dropout=m.d_dropout
        ),
    )


def _dcgan_check(cfg: Config) -> None:
    """An explicit ``data.resolution`` must be one the DCGAN builds (0 takes the dataset's, checked at build)."""
    if cfg.data.resolution:
        from gankit.models.dcgan import check_resolution

        try:
            check_resolution(cfg.data.resolution)
        except ValueError as e:
            raise ConfigError(str(e)) from None  # an option's value: a usage error (exit code 2)


@register_family(
    "dcgan",
    kind="noise",
    description="DCGAN (Radford et al. 2016), 64x64 faces or any folder; 32-256 px presets",
    model_fields=("z_dim", "ngf", "ndf", "norm"),
    normalized_critic=True,
    check_config=_dcgan_check,
)
def _dcgan(cfg: Config, info: DataInfo) -> tuple[nn.Module, nn.Module]:
    from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator

    m = cfg.model
    return (
        DCGANGenerator(m.z_dim, info.channels, resolution=info.resolution, ngf=m.ngf, norm=m.norm),
        DCGANDiscriminator(info.channels, resolution=info.resolution, ndf=m.ndf, norm=critic_norm(cfg)),
    )


def _unet_patchgan(cfg: Config, info: DataInfo) -> tuple[nn.Module, nn.Module]:
    from gankit.models.patchgan import PatchDiscriminator
    from gankit.models.unet import UNetGenerator

    m = cfg.model
    G = UNetGenerator(
        info.in_channels,
        info.channels,
        resolution=info.resolution,
        ngf=m.ngf,
        norm=m.norm,
        dropout=m.g_dropout,
        dropout_blocks=m.g_dropout_blocks,
    )
    D = PatchDiscriminator(info.in_channels + info.channels, ndf=m.ndf, n_layers=m.n_layers, norm=critic_norm(cfg))
    return G, D


register_family(
    "pix2pix",
    kind="paired",
    description="pix2pix (Isola et al. 2017): U-Net + PatchGAN, adversarial + L1",
    model_fields=_UNET_PATCHGAN_FIELDS,
    normalized_critic=True,
)(_unet_patchgan)
register_family(
    "colorize",
    kind="paired",
    description="pix2pix in Lab space: L -> ab colorization",
    model_fields=_UNET_PATCHGAN_FIELDS,
    normalized_critic=True,
)(_unet_patchgan)
