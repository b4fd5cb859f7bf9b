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
from minitrax.shapes import ShapeDtype, signature

F = ShapeDtype((2, 6))
F4 = ShapeDtype((2, 4, 4, 3))
IDS = ShapeDtype((2, 5), np.int32)
SEQ = ShapeDtype((2, 5, 4))
LOGP = ShapeDtype((2, 5, 7))
W = ShapeDtype((2, 5))
MASK = ShapeDtype((2, 1, 1, 5), np.bool_)
SEQ8 = ShapeDtype((2, 8, 4))

CASES = {
    'Serial': (lambda: tl.Serial(tl.Dense(3), tl.Relu()), F),
    'Parallel': (lambda: tl.Parallel(tl.Dense(3), tl.Relu()), (F, F)),
    'Select': (lambda: tl.Select([1, 0, 1]), (F, F)),
    'Branch': (lambda: tl.Branch(tl.Dense(3), None), F),
    'Residual': (lambda: tl.Residual(tl.Dense(6)), F),
    'Dup': (tl.Dup, F),
    'Drop': (lambda: tl.Serial(tl.Drop()), (F, F)),
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
}

# Names in minitrax.layers that are not layers (helpers, initializers, base pieces).
NOT_LAYERS = {
    'Layer', 'EMPTY', 'LayerError', 'METRICS', 'one_hot', 'log_softmax', 'check_ids', 'poison',
    'get_fans', 'as_signature', 'split_rng', 'stack_inputs', 'push_outputs', 'as_stack',
    'from_stack', 'dot_product_attention', 'sinusoidal_encoding', 'check_positions',
    'ReversibleLayer', 'hash_vectors', 'random_rotations', 'hash_with_rotations', 'auto_n_buckets',
    'bucketed_attention', 'chunked_attention', 'cached_attention'
}


def _public_layers():
  return sorted(
      name for name in tl.__all__ if name not in NOT_LAYERS and not name.endswith('Initializer'))


def test_every_public_layer_has_a_case():
  missing = sorted(set(_public_layers()) - set(CASES))
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
