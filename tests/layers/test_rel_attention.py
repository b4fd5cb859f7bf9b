"""Relative attention (Transformer-XL, Funnel) against real Trax 1.4.1 numbers and NumPy."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ArgumentError
from minitrax.layers.research import rel_attention as ra
from minitrax.shapes import ShapeDtype, signature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import research_fixture as fx  # noqa: E402

X = fx.DATA['x']  # (2, 6, 8)
X3 = X[:, ::2]
E = dict(mode='eval')


def layers(name):
  bias_c, bias_l = ra.get_rel_att_inputs(8, 2)  # shared by the layers, as in Trax
  return {
      'RelLM': (ra.RelativeAttentionLMLayer(8, bias_c, bias_l, 1, n_heads=2, **E), (X, X, X)),
      'RelPooled': (ra.RelativeAttentionLMLayer(8, bias_c, bias_l, 2, n_heads=2, **E), (X3, X, X)),
      'RelUp': (ra.RelativeAttentionLMLayer(8, bias_c, bias_l, 2, n_heads=2, **E), (X, X3, X3)),
      'RelLayer': (ra.RelativeAttentionLayer(8, bias_c, bias_l, 1, False, n_heads=2,
                                             **E), (X, X, X, fx.DATA['mask'][:, None, None, :])),
      'RelWrapper': (ra.RelativeAttentionWrapper(8, n_heads=2, context_bias_layer=bias_c,
                                                 location_bias_layer=bias_l, total_pooling=1,
                                                 **E), X),
  }[name]


@pytest.mark.parametrize('name', ['RelLM', 'RelPooled', 'RelUp', 'RelLayer', 'RelWrapper'])
def test_weights_and_outputs_are_those_of_trax_1_4(name):
  layer, inputs = layers(name)
  y, want = fx.output_with_trax_weights(layer, name, inputs)
  np.testing.assert_allclose(y, want, atol=3e-6)  # printed by Trax 1.4.1
  out = layer.output_signature(signature(inputs))
  out = out[0] if isinstance(out, tuple) else out
  assert out == ShapeDtype(y.shape, y.dtype)


def np_rel_scores(q, k, pos, u, v):
  """Transformer-XL scores of one head: (q_i + u).k_j + (q_i + v).r(j - i), lengths equal."""
  n = q.shape[0]
  s = np.zeros((n, n))
  for i in range(n):
    for j in range(n):
      s[i, j] = (q[i] + u) @ k[j] + (q[i] + v) @ pos[j - i + n - 1]
  return s


def test_relative_scores_depend_on_the_distance_as_in_transformer_xl():
  rng = np.random.default_rng(0)
  q, k, val = (rng.normal(size=(1, 1, 5, 4)) for _ in range(3))
  pos = rng.normal(size=(5, 1, 4))  # embeddings of distances -4 .. 0 (Trax's layout)
  u, v = (rng.normal(size=(1, 1, 1, 4)) for _ in range(2))
  mask = np.tril(np.ones((5, 5), bool))[None, None]
  out, weights = ra.relative_dot_product_attention(
      *(jnp.asarray(a) for a in (q, k, val, pos, u, v)), mask, False, 0.0, None)
  full = np.concatenate([pos[:, 0], np.zeros((4, 4))])  # distances -4 .. 4; future ones unused
  s = np_rel_scores(q[0, 0], k[0, 0], full, u[0, 0, 0], v[0, 0, 0]) / 2.0
  s = np.where(mask[0, 0], s, -1e9)
  e = np.exp(s - s.max(-1, keepdims=True))
  np.testing.assert_allclose(weights[0, 0], e / e.sum(-1, keepdims=True), atol=1e-5)
  np.testing.assert_allclose(out[0, 0], (e / e.sum(-1, keepdims=True)) @ val[0, 0], atol=1e-5)


def test_causal_masks_and_funnel_ratios():
  mask_layer = ra.CreateAttentionMaskLayer()
  *_, mask = mask_layer((X3, X, X))
  np.testing.assert_array_equal(mask[0, 0], np.repeat(np.tril(np.ones((3, 3), bool)), 2, -1))
  assert ra.calc_funnel_ratio(6, 3) == (2, False) and ra.calc_funnel_ratio(3, 6) == (2, True)
  with pytest.raises(ArgumentError, match='must be a multiple of the shorter'):
    ra.calc_funnel_ratio(4, 6)


def test_shift_right_cls_and_gradients_reach_the_shared_biases():
  ids = fx.DATA['ids']
  y = np.asarray(ra.ShiftRightCls(7)(ids))
  np.testing.assert_array_equal(y, np.concatenate([np.full((2, 1), 7), ids[:, :-1]], 1))
  np.testing.assert_array_equal(y, fx.DATA['ShiftRightCls/y'])  # Trax 1.4.1
  layer = ra.RelativeAttentionWrapper(8, n_heads=2, dropout=0.1)
  w, s = layer.init(ShapeDtype(X.shape))
  grads = jax.grad(lambda w: jnp.sum(layer.pure_fn(X, w, s, jax.random.key(0))[0]**2))(w)
  leaves = jax.tree.leaves(grads)
  assert len(leaves) == 12 and all(np.abs(np.asarray(g)).sum() > 0 for g in leaves)


def test_arguments_are_checked():
  with pytest.raises(ArgumentError, match='separate_cls=True is not supported'):
    ra.PositionalEmbeddings(8, True, 1)
  with pytest.raises(ArgumentError, match='d_model=6 must be even and a multiple of n_heads=4'):
    ra.get_rel_att_inputs(6, 4)
