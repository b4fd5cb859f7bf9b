"""Every public layer: output_signature equals the real output; gradients are finite.

One table lists a small instance and an input signature for every public
layer class or layer-making function in `minitrax.layers`; a test fails when a
public layer has no entry, so new layers join this check.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import layers as tl
from minitrax.layers import core as core_layers, metrics14
from minitrax.layers import (acceleration, combinators_more, core_more, deconvolution,
                             locally_connected, rnn)
from minitrax.layers.assert_shape import AssertFunction, AssertShape
from minitrax.shapes import ShapeDtype, signature
from minitrax.layers import (attention12, efficient_attention, heads, lsh_attention,
                             lsh_causal_attention)
from minitrax.layers.research import (infinite_positions, position_encodings, rel_attention, rotary,
                                      sparse_ff, sparsity)
from minitrax.layers.research import sparse_attention as spa

F = ShapeDtype((2, 6))
F4 = ShapeDtype((2, 4, 4, 3))
IDS = ShapeDtype((2, 5), np.int32)
SEQ = ShapeDtype((2, 5, 4))
LOGP = ShapeDtype((2, 5, 7))
W = ShapeDtype((2, 5))
MASK = ShapeDtype((2, 1, 1, 5), np.bool_)
SEQ8 = ShapeDtype((2, 8, 4))
F2 = ShapeDtype((2, 1))

CASES = {
    'Serial': (lambda: tl.Serial(tl.Dense(3), tl.Relu()), F),
    'Parallel': (lambda: tl.Parallel(tl.Dense(3), tl.Relu()), (F, F)),
    'Select': (lambda: tl.Select([1, 0, 1]), (F, F)),
    'Branch': (lambda: tl.Branch(tl.Dense(3), None), F),
    'Residual': (lambda: tl.Residual(tl.Dense(6)), F),
    'Dup': (tl.Dup, F),
    'Drop': (lambda: tl.Serial(tl.Select([0, 1]), tl.Drop()), (F, F)),
    'Swap': (tl.Swap, (F, F.replace(shape=(2, 3)))),
    'Add': (tl.Add, (F, F)),
    'SubtractTop': (tl.SubtractTop, (F, F)),
    'Multiply': (tl.Multiply, (F, F)),
    'Concatenate': (tl.Concatenate, (F, F)),
    'Split': (tl.Split, F),
    'Scan': (lambda: tl.Scan(tl.Fn('Cell', lambda x, c:
                                   (x + c, x * c), n_out=2), axis=1), (F, ShapeDtype((2,)))),
    'Chunk': (lambda: tl.Chunk(tl.Dense(3), 1), F),
    'Cond': (lambda: tl.Cond(tl.Fn('P', lambda x: jnp.sum(x) > 0), tl.Dense(6)), (ShapeDtype(
        ()), F)),
    'Cache': (lambda: tl.Cache(tl.Dense(3)), F),
    'Fn': (lambda: tl.Fn('Double', lambda x: 2 * x), F),
    'Dense': (lambda: tl.Dense(3), F),
    'Embedding': (lambda: tl.Embedding(10, 4), IDS),
    'Dropout': (lambda: tl.Dropout(0.5), F),
    'Flatten': (tl.Flatten, F4),
    'Mean': (tl.Mean, F),
    'Sum': (tl.Sum, F),
    'LogSoftmax': (tl.LogSoftmax, F),
    'Softmax': (tl.Softmax, F),
    'ToFloat': (tl.ToFloat, IDS),
    'Negate': (tl.Negate, F),
    'StopGradient': (tl.StopGradient, F),
    'ArgMax': (tl.ArgMax, F),
    'Relu': (tl.Relu, F),
    'ParametricRelu': (tl.ParametricRelu, F),
    'LeakyRelu': (tl.LeakyRelu, F),
    'Elu': (tl.Elu, F),
    'Selu': (tl.Selu, F),
    'Gelu': (tl.Gelu, F),
    'FastGelu': (tl.FastGelu, F),
    'Sigmoid': (tl.Sigmoid, F),
    'Tanh': (tl.Tanh, F),
    'HardSigmoid': (tl.HardSigmoid, F),
    'HardTanh': (tl.HardTanh, F),
    'Softplus': (tl.Softplus, F),
    'Swish': (tl.Swish, F),
    'Glu': (tl.Glu, F),
    'Exp': (tl.Exp, F),
    'Log': (tl.Log, F),
    'LayerNorm': (tl.LayerNorm, F),
    'BatchNorm': (tl.BatchNorm, F4),
    'FilterResponseNorm': (tl.FilterResponseNorm, F4),
    'Conv': (lambda: tl.Conv(2, (3, 3), padding='SAME'), F4),
    'Conv1d': (lambda: tl.Conv1d(2, 3), SEQ),
    'CausalConv': (lambda: tl.CausalConv(2, 3), SEQ),
    'MaxPool': (tl.MaxPool, F4),
    'AvgPool': (tl.AvgPool, F4),
    'SumPool': (tl.SumPool, F4),
    'LSTMCell': (lambda: tl.LSTMCell(3), (F, ShapeDtype((2, 6)))),
    'GRUCell': (lambda: tl.GRUCell(3), (F, ShapeDtype((2, 3)))),
    'LSTM': (lambda: tl.LSTM(3), SEQ),
    'GRU': (lambda: tl.GRU(3), SEQ),
    'MakeZeroState': (lambda: tl.MakeZeroState(4), SEQ),
    'CrossEntropyLoss': (tl.CrossEntropyLoss, (LOGP, IDS)),
    'NegLogPerplexity': (tl.NegLogPerplexity, (LOGP, IDS)),
    'Accuracy': (tl.Accuracy, (LOGP, IDS)),
    'SequenceAccuracy': (tl.SequenceAccuracy, (LOGP, IDS)),
    'SumOfWeights': (tl.SumOfWeights, (LOGP, IDS)),
    'AccuracyScalar': (tl.AccuracyScalar, (LOGP, IDS)),
    'SequenceAccuracyScalar': (tl.SequenceAccuracyScalar, (LOGP, IDS)),
    'NegLogPerplexityScalar': (tl.NegLogPerplexityScalar, (LOGP, IDS)),
    'L2Loss': (tl.L2Loss, (SEQ, SEQ)),
    'SmoothL1Loss': (tl.SmoothL1Loss, (SEQ, SEQ)),
    'BinaryCrossEntropy': (tl.BinaryCrossEntropy, (W, W)),
    'WeightedCategoryCrossEntropy': (tl.WeightedCategoryCrossEntropy, (LOGP, IDS, W)),
    'WeightedCategoryAccuracy': (tl.WeightedCategoryAccuracy, (LOGP, IDS, W)),
    'PureAttention': (lambda: tl.PureAttention(n_heads=2), (SEQ, SEQ, SEQ, MASK)),
    'AttentionQKV': (lambda: tl.AttentionQKV(4, n_heads=2), (SEQ, SEQ, SEQ, MASK)),
    'Attention': (lambda: tl.Attention(4, n_heads=2), (SEQ, MASK)),
    'CausalAttention': (lambda: tl.CausalAttention(4, n_heads=2), SEQ),
    'DotProductCausalAttention': (tl.DotProductCausalAttention, (SEQ, SEQ, SEQ)),
    'PositionalEncoding': (lambda: tl.PositionalEncoding(max_len=16), SEQ),
    'ShiftRight': (tl.ShiftRight, IDS),
    'PaddingMask': (tl.PaddingMask, IDS),
    'EncoderDecoderMask': (tl.EncoderDecoderMask, (SEQ, MASK)),
    'ReversibleSwap': (tl.ReversibleSwap, (SEQ, SEQ)),
    'ReversibleHalfResidual':
        (lambda: tl.ReversibleHalfResidual(tl.LayerNorm(), tl.Dense(4)), (SEQ, SEQ)),
    'ReversibleSerial':
        (lambda: tl.ReversibleSerial(tl.ReversibleHalfResidual(tl.Dense(4)), tl.ReversibleSwap()),
         (SEQ, SEQ)),
    'SelfAttention': (lambda: tl.SelfAttention(n_heads=2, d_qk=2, d_v=2, causal=True), SEQ8),
    'LSHSelfAttention': (lambda: tl.LSHSelfAttention(n_heads=2, d_qk=2, d_v=2, causal=True,
                                                     chunk_len=4, n_buckets=2), SEQ8),
    'AxialPositionalEncoding':
        (lambda: tl.AxialPositionalEncoding(shape=(2, 4), d_embs=(2, 2)), SEQ8),
    # Trax 1.3's classifiers (minitrax.layers.core) and Trax 1.4's metrics (metrics14, fscores),
    # which minitrax.trax14 exposes under Trax's names.
    'BinaryClassifier': (core_layers.BinaryClassifier, F),
    'MulticlassClassifier': (core_layers.MulticlassClassifier, F),
    'trax14.CategoryAccuracy': (metrics14.CategoryAccuracy, (LOGP, IDS)),
    'trax14.WeightedCategoryAccuracy': (metrics14.WeightedCategoryAccuracy, (LOGP, IDS, W)),
    'trax14.CategoryCrossEntropy': (metrics14.CategoryCrossEntropy, (LOGP, IDS)),
    'trax14.WeightedCategoryCrossEntropy':
        (lambda: metrics14.WeightedCategoryCrossEntropy(0.1, 0.5), (LOGP, IDS, W)),
    'trax14.BinaryCrossEntropy': (metrics14.BinaryCrossEntropy, (W, W)),
    'trax14.MaskedSequenceAccuracy': (metrics14.MaskedSequenceAccuracy, (LOGP, IDS, W)),
    'trax14.Accuracy': (metrics14.Accuracy, (LOGP, IDS, W)),
    'trax14.SequenceAccuracy': (metrics14.SequenceAccuracy, (LOGP, IDS, W)),
    'trax14.CrossEntropyLoss': (metrics14.CrossEntropyLoss, (LOGP, IDS, W)),
    'trax14.CrossEntropyLossWithLogSoftmax':
        (metrics14.CrossEntropyLossWithLogSoftmax, (LOGP, IDS, W)),
    'trax14.CrossEntropySum': (metrics14.CrossEntropySum, (LOGP, IDS, W)),
    'trax14.WeightedSum': (metrics14.WeightedSum, (W, W)),
    'trax14.BinaryCrossEntropyLoss': (metrics14.BinaryCrossEntropyLoss, (F2, F2, F2)),
    'trax14.BinaryCrossEntropySum': (metrics14.BinaryCrossEntropySum, (F2, F2, F2)),
    'trax14.L2Loss': (metrics14.L2Loss, (SEQ, SEQ, SEQ)),
    'trax14.SmoothL1Loss': (metrics14.SmoothL1Loss, (SEQ, SEQ, SEQ)),
    'trax14.MacroAveragedFScore': (metrics14.MacroAveragedFScore, (LOGP, IDS)),
    'trax14.WeightedFScore': (metrics14.WeightedFScore, (LOGP, IDS)),
    # More Trax layers (combinators_more, core_more, assert_shape, acceleration, deconvolution,
    # locally_connected, rnn), named as Trax names them.
    'SerialWithSideOutputs':
        (lambda: combinators_more.SerialWithSideOutputs([tl.Serial(tl.Dense(3), tl.Dup())]), F),
    'Gate': (combinators_more.Gate, (F, F, F)),
    'BatchLeadingAxes': (lambda: combinators_more.BatchLeadingAxes(tl.Dense(3)), SEQ),
    'Bidirectional': (lambda: combinators_more.Bidirectional(tl.GRU(3)), SEQ),
    'Weights': (lambda: core_more.Weights(tl.RandomNormalInitializer(), (2, 3)), ()),
    'RandomUniform': (lambda: core_more.RandomUniform(shape=(2, 3)), ()),
    'Min': (core_more.Min, F),
    'Max': (core_more.Max, F),
    'AssertShape': (lambda: AssertShape('ab,ab'), (F, F)),
    'AssertFunction': (lambda: AssertFunction('bd->bf', tl.Dense(3)), F),
    'Accelerate': (lambda: acceleration.Accelerate(tl.Dense(3)), F),
    'ConvTranspose': (lambda: deconvolution.ConvTranspose(2, (3, 3), strides=(2, 2)), F4),
    'LocallyConnected1d': (lambda: locally_connected.LocallyConnected1d(2, 3, padding='SAME'), SEQ),
    'SRU': (lambda: rnn.SRU(4), SEQ),
    'trax14.SRU': (lambda: rnn.SRU14(4), SEQ),
    'InnerSRUCell': (rnn.InnerSRUCell, (SEQ, SEQ, SEQ)),
    'GeneralGRUCell': (lambda: rnn.GeneralGRUCell(lambda: tl.Dense(6)), F),
    'ConvGRUCell': (lambda: rnn.ConvGRUCell(3), F4),
    # Efficient attention of Trax 1.2 and 1.4 (lsh_attention, efficient_attention, heads,
    # attention12, lsh_causal_attention) and Trax's research layers (layers/research/).
    'trax14.LSHSelfAttention': (lambda: lsh_attention.LSHSelfAttention14(
        n_heads=2, d_qk=2, d_v=2, causal=True, chunk_len=4, n_buckets=2, bias=True), SEQ8),
    'EncDecAttention': (lambda: efficient_attention.EncDecAttention(n_heads=2, d_qk=2, d_v=2),
                        (SEQ8, SEQ, ShapeDtype((2, 5), np.bool_))),
    'PureLSHSelfAttention': (lambda: efficient_attention.PureLSHSelfAttention(
        n_heads=2, causal=True, chunk_len=4, n_buckets=2), (ShapeDtype((4, 8, 2)),) * 2),
    'MixedLSHSelfAttention': (lambda: efficient_attention.MixedLSHSelfAttention(
        n_heads=2, causal=True, std_length=4, chunk_len=4, n_buckets=2), (ShapeDtype(
            (4, 8, 2)),) * 2),
    'PureLSHSelfAttentionWrapper': (lambda: efficient_attention.PureLSHSelfAttentionWrapper(
        n_heads=2, d_qk=2, d_v=2, causal=True, chunk_len=4, n_buckets=2), SEQ8),
    'SplitIntoHeads': (lambda: heads.SplitIntoHeads(2), SEQ),
    'MergeHeads': (lambda: heads.MergeHeads(2), ShapeDtype((4, 5, 2))),
    'ConfigurableAttention': (lambda: heads.ConfigurableAttention(tl.Dense(4), tl.Dense(
        4), tl.Dense(4), tl.Dense(4), tl.DotProductCausalAttention(), n_heads=2), SEQ),
    'MemoryEfficientCausalAttention':
        (lambda: attention12.MemoryEfficientCausalAttention(4, 0.1, 'train'), (ShapeDtype(
            (4, 8, 2)),) * 3),
    'TimeBinCausalAttention':
        (lambda: attention12.TimeBinCausalAttention('train', dropout=0.1, bin_length=3),
         (ShapeDtype((4, 8, 2)),) * 3),
    'LSHCausalAttention':
        (lambda: lsh_causal_attention.LSHCausalAttention(0.1, 'train', n_bins=2, n_buckets=4),
         (ShapeDtype((4, 8, 2)),) * 3),
    'Rotate': (rotary.Rotate, SEQ),
    'FixedBasePositionalEncoding': (position_encodings.FixedBasePositionalEncoding, SEQ),
    'trax14.FixedBasePositionalEncoding': (position_encodings.FixedBasePositionalEncoding14,
                                           ShapeDtype((2, 5, 8))),
    'SinCosPositionalEncoding': (position_encodings.SinCosPositionalEncoding, SEQ),
    'InfinitePositionalEncoding': (infinite_positions.InfinitePositionalEncoding, SEQ),
    'TimeBinPositionalEncoding': (lambda: infinite_positions.TimeBinPositionalEncoding(3), SEQ),
    'SparseFF': (lambda: sparse_ff.SparseFF(8, n_elements_in_block=4, d_lowrank=2), SEQ),
    'FactoredDense': (lambda: sparsity.FactoredDense(2, 4, 6), SEQ),
    'MultiplicativeModularSparseDense':
        (lambda: sparsity.MultiplicativeModularSparseDense(2, 4), SEQ),
    'LocallyConnectedDense': (lambda: sparsity.LocallyConnectedDense(2, 3, kernel_size=3), SEQ),
    'LocallyConvDense': (lambda: sparsity.LocallyConvDense(2, 3, 'train', 3, 3), SEQ),
    'LowRankDense': (lambda: sparsity.LowRankDense(3, 2), SEQ),
    'EinsumDense': (lambda: sparsity.EinsumDense(4, 3, True), SEQ),
    'SparseDenseWithOptions':
        (lambda: sparsity.SparseDenseWithOptions(6, d_input=4, sparsity_type='mult', sparsity=2),
         SEQ),
    'RandomLayer': (lambda: sparsity.RandomLayer(tl.Dense(3), tl.Dense(3), 0.5), SEQ),
    'SplitLastAxis': (lambda: sparsity.SplitLastAxis(2), SEQ),
    'MergeLastTwoAxes': (sparsity.MergeLastTwoAxes, F4),
    'ModularCausalAttention': (lambda: spa.ModularCausalAttention(4, n_heads=2), SEQ),
    'ConvCausalAttention': (lambda: spa.ConvCausalAttention(4, n_heads=2), SEQ),
    'LowRankCausalAttention': (lambda: spa.LowRankCausalAttention(4, n_heads=2, lowrank=2), SEQ),
    'MultiplicativeCausalAttention': (lambda: spa.MultiplicativeCausalAttention(4, n_heads=2), SEQ),
    'MultiplicativeModularCausalAttention':
        (lambda: spa.MultiplicativeModularCausalAttention(4, n_heads=2), SEQ),
    'MultiplicativeConvCausalAttention':
        (lambda: spa.MultiplicativeConvCausalAttention(4, n_heads=2), SEQ),
    'RelativeAttention': (lambda: rel_attention.RelativeAttention(False, n_heads=2), (ShapeDtype(
        (1, 2, 1, 2)), ShapeDtype((1, 2, 1, 2)), ShapeDtype(
            (5, 4)), SEQ, SEQ, SEQ, ShapeDtype((2, 1, 5, 5), np.bool_))),
    'RelativeAttentionLayer': (lambda: rel_attention.RelativeAttentionLayer(
        4, *rel_attention.get_rel_att_inputs(4, 2), 1, False, n_heads=2), (SEQ, SEQ, SEQ,
                                                                           ShapeDtype((2, 1, 5, 5),
                                                                                      np.bool_))),
    'RelativeAttentionLMLayer': (lambda: rel_attention.RelativeAttentionLMLayer(
        4, *rel_attention.get_rel_att_inputs(4, 2), 1, n_heads=2), (SEQ, SEQ, SEQ)),
    'RelativeAttentionWrapper': (lambda: rel_attention.RelativeAttentionWrapper(4, n_heads=2), SEQ),
    'PositionalEmbeddings': (lambda: rel_attention.PositionalEmbeddings(4, False, 1), (SEQ, SEQ)),
    'CreateAttentionMaskLayer': (rel_attention.CreateAttentionMaskLayer, (SEQ, SEQ, SEQ)),
    'ShiftRightCls': (lambda: rel_attention.ShiftRightCls(1), IDS),
    # Trax 1.4's forms of names whose 1.2 meaning is the default (minitrax.trax14's names).
    'trax14.CausalAttention': (lambda: tl.CausalAttention14(4, n_heads=2), SEQ),
    'trax14.PositionalEncoding': (lambda: tl.PositionalEncoding14(max_len=16), SEQ),
    'FixedBasePositionalEncoding12': (position_encodings.FixedBasePositionalEncoding12, SEQ),
    'PositionalEncodingView':
        (lambda: tl.PositionalEncodingView(tl.PositionalEncoding(max_len=16)), SEQ),
    'DotProductAttention': (tl.DotProductAttention, (SEQ, SEQ, SEQ, ShapeDtype((2, 1, 5),
                                                                               np.bool_))),
    'LogSumExp': (tl.LogSumExp, SEQ),
    'ThresholdToBinary': (tl.ThresholdToBinary, SEQ),
    'PrintShape': (lambda: tl.PrintShape(n_in=2), (SEQ, F)),
    # Inputs are positive; negated, they fall below the threshold, which then gets gradients.
    'ThresholdedLinearUnit': (lambda: tl.Serial(tl.Negate(), tl.ThresholdedLinearUnit()), SEQ),
    'ReversibleSelect': (lambda: tl.ReversibleSelect([2, 0, 1]), (SEQ, F, W)),
    'ReversibleReshape': (lambda: tl.ReversibleReshape((2, 5), (10,), n_in=2), (SEQ, SEQ)),
    'ReversibleConcatenatePair': (tl.ReversibleConcatenatePair, (SEQ, SEQ)),
    'ReversiblePrintShape': (lambda: tl.ReversiblePrintShape(n_in=2), (SEQ, F)),
    'ScanSRUCell': (lambda: tl.ScanSRUCell('train'), (SEQ, SEQ, ShapeDtype((2, 4)))),
    'PureLayer': (lambda: tl.PureLayer(lambda xs: xs[0] * xs[1], n_in=2), (SEQ, SEQ)),
}

# Names in minitrax.layers that are not layers: helpers, initializers, base pieces, base classes
# of attention layers (their subclasses have cases) and FlattenList (its one input is a nested
# list; tests/layers/test_trax_names.py).
NOT_LAYERS = {
    'Layer', 'EMPTY', 'LayerError', 'METRICS', 'one_hot', 'log_softmax', 'check_ids', 'poison',
    'get_fans', 'as_signature', 'split_rng', 'stack_inputs', 'push_outputs', 'as_stack',
    'from_stack', 'dot_product_attention', 'sinusoidal_encoding', 'check_positions',
    'ReversibleLayer', 'hash_vectors', 'random_rotations', 'hash_with_rotations', 'auto_n_buckets',
    'bucketed_attention', 'chunked_attention', 'cached_attention', 'InitializerFromFile',
    'check_shape_agreement', 'assert_shape', 'EMPTY_STATE', 'EMPTY_WEIGHTS', 'ShapeDtype',
    'signature', 'fastmath', 'layer', 'to_list', 'flatten_weights_and_state',
    'unflatten_weights_and_state', 'calc_funnel_ratio', 'check_buckets', 'factor_list',
    'get_rel_att_inputs', 'length_normalized', 'local_attention', 'look_adjacent', 'over_heads',
    'overflow_message', 'sinusoid_table', 'total_buckets', 'AtariConvInit', 'BaseCausalAttention',
    'EfficientAttention', 'EfficientAttentionBase', 'FlattenList'
}


def _public_layers():
  return sorted(
      name for name in tl.__all__ if name not in NOT_LAYERS and not name.endswith('Initializer'))


def test_every_public_layer_has_a_case():
  covered = lambda name: {name, f'trax14.{name}', f'trax14.{name.removesuffix("14")}'} & set(CASES)
  missing = [name for name in _public_layers() if not covered(name)]
  assert not missing, f'add these layers to CASES: {missing}'


def _random_input(sig, rng):
  if isinstance(sig, tuple):
    return tuple(
        _random_input(s, r) for s, r in zip(sig,
                                            np.random.default_rng(rng).spawn(len(sig))))
  gen = np.random.default_rng(rng)
  if np.issubdtype(sig.dtype, np.integer):
    return gen.integers(0, 4, sig.shape).astype(sig.dtype)
  if sig.dtype == np.bool_:
    return np.ones(sig.shape, bool)
  return (gen.random(sig.shape) + 0.5).astype(sig.dtype)  # positive: Log and BCE stay finite


@pytest.mark.parametrize('name', sorted(CASES))
def test_output_signature_matches_real_output(name):
  make, sig = CASES[name]
  layer = make()
  weights, state = layer.init(sig, rng=jax.random.key(0))
  x = _random_input(sig, 0)
  expected = layer.output_signature(sig)
  y, _ = layer.pure_fn(x, weights, state, jax.random.key(1))
  assert signature(y) == expected, name
  leaves = jax.tree.leaves(weights)
  floats = [w for w in leaves if jnp.issubdtype(w.dtype, jnp.floating)]
  if not floats:
    return

  def total(w):
    out, _ = layer.pure_fn(x, w, state, jax.random.key(1))
    outs = out if isinstance(out, tuple) else (out,)
    return sum(
        jnp.sum(o.astype(jnp.float32)) for o in outs if jnp.issubdtype(o.dtype, jnp.floating))

  grads = jax.grad(total, allow_int=True)(weights)
  grad_leaves = [g for g in jax.tree.leaves(grads) if jnp.issubdtype(g.dtype, jnp.floating)]
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in grad_leaves), name
  assert any(bool(jnp.any(g != 0)) for g in grad_leaves), f'{name}: no gradient reaches weights'


def test_cases_are_layers():
  for name, (make, _) in CASES.items():
    assert isinstance(make(), tl.Layer), name
  assert inspect.isclass(tl.Dense)
