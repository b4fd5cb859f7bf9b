"""Trax's research layers (`trax/layers/research/`): positions, rotary embeddings, sparsity.

Every name here is defined in one of the modules below; see their docstrings.
"""

from minitrax.layers.research.infinite_positions import (InfinitePositionalEncoding,
                                                         TimeBinPositionalEncoding)
from minitrax.layers.research.position_encodings import (FixedBasePositionalEncoding,
                                                         FixedBasePositionalEncoding12,
                                                         FixedBasePositionalEncoding14,
                                                         SinCosPositionalEncoding)
from minitrax.layers.research.rel_attention import (CreateAttentionMaskLayer, PositionalEmbeddings,
                                                    RelativeAttention, RelativeAttentionLayer,
                                                    RelativeAttentionLMLayer,
                                                    RelativeAttentionWrapper, ShiftRightCls,
                                                    calc_funnel_ratio, get_rel_att_inputs)
from minitrax.layers.research.rotary import Rotate
from minitrax.layers.research.sparse_ff import SparseFF
from minitrax.layers.research.sparse_attention import (ConvCausalAttention, LowRankCausalAttention,
                                                       ModularCausalAttention,
                                                       MultiplicativeCausalAttention,
                                                       MultiplicativeConvCausalAttention,
                                                       MultiplicativeModularCausalAttention)
from minitrax.layers.research.sparsity import (EinsumDense, FactoredDense, LocallyConnectedDense,
                                               LocallyConvDense, LowRankDense, MergeLastTwoAxes,
                                               MultiplicativeModularSparseDense, RandomLayer,
                                               SparseDenseWithOptions, SplitLastAxis)

__all__ = [
    'InfinitePositionalEncoding', 'TimeBinPositionalEncoding', 'FixedBasePositionalEncoding',
    'FixedBasePositionalEncoding12', 'FixedBasePositionalEncoding14', 'SinCosPositionalEncoding',
    'CreateAttentionMaskLayer', 'PositionalEmbeddings', 'RelativeAttention',
    'RelativeAttentionLayer', 'calc_funnel_ratio', 'RelativeAttentionLMLayer',
    'RelativeAttentionWrapper', 'ShiftRightCls', 'get_rel_att_inputs', 'Rotate', 'SparseFF',
    'ConvCausalAttention', 'EinsumDense', 'FactoredDense', 'LocallyConnectedDense',
    'LocallyConvDense', 'LowRankCausalAttention', 'LowRankDense', 'MergeLastTwoAxes',
    'ModularCausalAttention', 'MultiplicativeCausalAttention', 'MultiplicativeConvCausalAttention',
    'MultiplicativeModularCausalAttention', 'MultiplicativeModularSparseDense', 'RandomLayer',
    'SparseDenseWithOptions', 'SplitLastAxis'
]
