"""Network definitions. Each module holds one architecture; families wire them together."""

from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.models.layers import init_weights, norm_layer
from gankit.models.mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "init_weights",
    "norm_layer",
]
