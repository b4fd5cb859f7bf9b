"""Models built from `minitrax.layers`, with Trax's signatures, and a registry by name.

This package imports every model module below, and each module registers its
own models (`@register`), so `import minitrax.models` is all that `get_model`
needs. A new model module is imported here.
"""

from minitrax.models.atari_cnn import AtariCnn
from minitrax.models.mlp import MLP
from minitrax.models.neural_gpu import NeuralGPU
from minitrax.models.reformer import Reformer, ReformerLM
from minitrax.models.registry import get_model, model_names, register
from minitrax.models.resnet import (ConvBlock, GlobalAvgPool, IdentityBlock, Resnet50, WideResnet,
                                    WideResnetBlock, WideResnetGroup)
from minitrax.models.rnn import GRULM, MultiRNNCell, RNNLM, Recurrent
from minitrax.models.transformer import (Transformer, TransformerDecoder, TransformerEncoder,
                                         TransformerLM)

__all__ = [
    'MLP', 'Resnet50', 'WideResnet', 'ConvBlock', 'IdentityBlock', 'WideResnetBlock',
    'WideResnetGroup', 'GlobalAvgPool', 'RNNLM', 'GRULM', 'Recurrent', 'MultiRNNCell',
    'Transformer', 'TransformerDecoder', 'TransformerEncoder', 'TransformerLM', 'Reformer',
    'ReformerLM', 'AtariCnn', 'NeuralGPU', 'register', 'get_model', 'model_names'
]
