"""Layers: the `Layer` contract, combinators, core layers, attention, losses and metrics.

Every name here is defined in one of the modules imported below (each lists
its public names in `__all__`); see their docstrings. The names are Trax's
(`trax.layers`, imported as `tl`), with Trax 1.2's meaning where the two
generations differ; `minitrax.trax14.layers` gives Trax 1.4's.
"""

# pylint: disable=wildcard-import,unused-wildcard-import
import minitrax.layers.assert_shape as _shape_checks
from minitrax.layers import (acceleration, activation_fns, attention, attention12,
                             attention_kernels, axial, base, combinators, combinators_more, control,
                             convolution, core, core_more, deconvolution, efficient_attention, fn,
                             fscores, heads, initializers, locally_connected, lsh_attention,
                             lsh_causal_attention, metrics, normalization, pooling, positions,
                             research, reversible, reversible_more, rnn)
from minitrax.layers.acceleration import *
from minitrax.layers.activation_fns import *
from minitrax.layers.assert_shape import *  # `assert_shape` becomes the decorator
from minitrax.layers.attention import *
from minitrax.layers.attention12 import *
from minitrax.layers.attention_kernels import *
from minitrax.layers.axial import *
from minitrax.layers.base import *
from minitrax.layers.combinators import *
from minitrax.layers.combinators_more import *
from minitrax.layers.control import *
from minitrax.layers.convolution import *
from minitrax.layers.core import *
from minitrax.layers.core_more import *
from minitrax.layers.deconvolution import *
from minitrax.layers.efficient_attention import *
from minitrax.layers.efficient_base import EfficientAttention
from minitrax.layers.fn import *
from minitrax.layers.fscores import *
from minitrax.layers.heads import *
from minitrax.layers.initializers import *
from minitrax.layers.locally_connected import *
from minitrax.layers.lsh_attention import *
from minitrax.layers.lsh_causal_attention import *
from minitrax.layers.metrics import *
from minitrax.layers.metrics14 import (BinaryCrossEntropyLoss, BinaryCrossEntropySum,
                                       CategoryAccuracy, CategoryCrossEntropy,
                                       CrossEntropyLossWithLogSoftmax, CrossEntropySum,
                                       MaskedSequenceAccuracy, WeightedSum)
from minitrax.layers.normalization import *
from minitrax.layers.pooling import *
from minitrax.layers.positions import *
from minitrax.layers.research import *
from minitrax.layers.reversible import *
from minitrax.layers.reversible_more import *
from minitrax.layers.rnn import *
from minitrax.layers.stack import to_list
from minitrax.layers.trees import flatten_weights_and_state, unflatten_weights_and_state
from minitrax.errors import LayerError
from minitrax.shapes import ShapeDtype, signature
from minitrax import fastmath

EMPTY_WEIGHTS = EMPTY_STATE = EMPTY  # (Trax's names for a layer's "no weights")
EfficientAttentionBase = EfficientAttention  # Trax 1.4's name

_METRICS14 = [
    'CategoryAccuracy', 'CategoryCrossEntropy', 'MaskedSequenceAccuracy',
    'CrossEntropyLossWithLogSoftmax', 'CrossEntropySum', 'WeightedSum', 'BinaryCrossEntropyLoss',
    'BinaryCrossEntropySum'
]
_MODULES = (acceleration, activation_fns, _shape_checks, attention, attention12, attention_kernels,
            axial, base, combinators, combinators_more, control, convolution, core, core_more,
            deconvolution, efficient_attention, fn, fscores, heads, initializers, locally_connected,
            lsh_attention, lsh_causal_attention, metrics, normalization, pooling, positions,
            research, reversible, reversible_more, rnn)
__all__ = sorted({name for module in _MODULES for name in module.__all__} | set(_METRICS14) | {
    'EfficientAttention', 'EfficientAttentionBase', 'EMPTY_WEIGHTS', 'EMPTY_STATE', 'to_list',
    'flatten_weights_and_state', 'unflatten_weights_and_state', 'LayerError', 'ShapeDtype',
    'signature', 'fastmath'
})
