"""Layers: the `Layer` contract, combinators, core layers, losses and metrics.

Every name here is defined in one of the modules below; see their docstrings.
"""

from minitrax.layers.base import (EMPTY, Fn, Layer, as_signature, as_stack, from_stack,
                                  push_outputs, split_rng, stack_inputs)
from minitrax.layers.combinators import (Add, Branch, Cache, Chunk, Concatenate, Cond, Drop, Dup,
                                         Multiply, Parallel, Residual, Scan, Select, Serial, Split,
                                         SubtractTop, Swap)
from minitrax.layers.core import (ArgMax, Dense, Dropout, Embedding, Flatten, LogSoftmax, Mean,
                                  Negate, Softmax, StopGradient, Sum, ToFloat, check_ids,
                                  log_softmax, one_hot, poison)
from minitrax.layers.activation_fns import (Elu, Exp, FastGelu, Gelu, Glu, HardSigmoid, HardTanh,
                                            LeakyRelu, Log, ParametricRelu, Relu, Selu, Sigmoid,
                                            Softplus, Swish, Tanh)
from minitrax.layers.initializers import (GlorotNormalInitializer, GlorotUniformInitializer,
                                          KaimingNormalInitializer, KaimingUniformInitializer,
                                          LeCunNormalInitializer, LeCunUniformInitializer,
                                          OrthogonalInitializer, RandomNormalInitializer,
                                          RandomUniformInitializer, ScaledInitializer, get_fans)
from minitrax.layers.normalization import (BatchNorm, FilterResponseNorm, LayerNorm)
from minitrax.layers.convolution import (CausalConv, Conv, Conv1d)
from minitrax.layers.pooling import (AvgPool, MaxPool, SumPool)
from minitrax.layers.rnn import (GRU, GRUCell, LSTM, LSTMCell, MakeZeroState)
from minitrax.layers.attention import (Attention, AttentionQKV, CausalAttention,
                                       DotProductCausalAttention, EncoderDecoderMask, PaddingMask,
                                       PositionalEncoding, PureAttention, ShiftRight,
                                       check_positions, dot_product_attention, sinusoidal_encoding)
from minitrax.layers.metrics import (Accuracy, AccuracyScalar, BinaryCrossEntropy, CrossEntropyLoss,
                                     L2Loss, METRICS, NegLogPerplexity, NegLogPerplexityScalar,
                                     SequenceAccuracy, SequenceAccuracyScalar, SmoothL1Loss,
                                     SumOfWeights, WeightedCategoryAccuracy,
                                     WeightedCategoryCrossEntropy)
from minitrax.layers.reversible import (ReversibleHalfResidual, ReversibleLayer, ReversibleSerial,
                                        ReversibleSwap)
from minitrax.layers.attention_kernels import (auto_n_buckets, bucketed_attention, cached_attention,
                                               chunked_attention, hash_vectors, hash_with_rotations,
                                               random_rotations)
from minitrax.layers.lsh_attention import LSHSelfAttention, SelfAttention
from minitrax.layers.axial import (AxialPositionalEncoding)
from minitrax.errors import LayerError

__all__ = [
    'Layer', 'Fn', 'EMPTY', 'as_signature', 'split_rng', 'stack_inputs', 'push_outputs', 'as_stack',
    'from_stack', 'Serial', 'Parallel', 'Select', 'Branch', 'Residual', 'Dup', 'Drop', 'Swap',
    'Add', 'SubtractTop', 'Multiply', 'Concatenate', 'Split', 'Scan', 'Chunk', 'Cond', 'Cache',
    'Dense', 'Embedding', 'Dropout', 'Flatten', 'Mean', 'Sum', 'LogSoftmax', 'Softmax', 'ToFloat',
    'Negate', 'StopGradient', 'ArgMax', 'one_hot', 'log_softmax', 'check_ids', 'poison', 'Relu',
    'ParametricRelu', 'LeakyRelu', 'Elu', 'Selu', 'Gelu', 'FastGelu', 'Sigmoid', 'Tanh',
    'HardSigmoid', 'HardTanh', 'Softplus', 'Swish', 'Glu', 'Exp', 'Log', 'RandomNormalInitializer',
    'RandomUniformInitializer', 'ScaledInitializer', 'GlorotNormalInitializer',
    'GlorotUniformInitializer', 'LeCunNormalInitializer', 'LeCunUniformInitializer',
    'KaimingNormalInitializer', 'KaimingUniformInitializer', 'OrthogonalInitializer', 'get_fans',
    'LayerNorm', 'BatchNorm', 'FilterResponseNorm', 'Conv', 'Conv1d', 'CausalConv', 'MaxPool',
    'AvgPool', 'SumPool', 'LSTMCell', 'GRUCell', 'LSTM', 'GRU', 'MakeZeroState', 'Attention',
    'AttentionQKV', 'PureAttention', 'CausalAttention', 'DotProductCausalAttention',
    'PositionalEncoding', 'ShiftRight', 'PaddingMask', 'EncoderDecoderMask',
    'dot_product_attention', 'sinusoidal_encoding', 'check_positions', 'CrossEntropyLoss',
    'NegLogPerplexity', 'Accuracy', 'SequenceAccuracy', 'SumOfWeights', 'L2Loss', 'SmoothL1Loss',
    'BinaryCrossEntropy', 'WeightedCategoryCrossEntropy', 'WeightedCategoryAccuracy',
    'AccuracyScalar', 'SequenceAccuracyScalar', 'NegLogPerplexityScalar', 'METRICS',
    'ReversibleLayer', 'ReversibleSwap', 'ReversibleHalfResidual', 'ReversibleSerial',
    'SelfAttention', 'LSHSelfAttention', 'hash_vectors', 'random_rotations', 'hash_with_rotations',
    'auto_n_buckets', 'bucketed_attention', 'chunked_attention', 'cached_attention',
    'AxialPositionalEncoding', 'LayerError'
]
