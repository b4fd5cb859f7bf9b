"""ResNet-50 and Wide ResNet: shapes in every mode, blocks, and BatchNorm in train vs eval.

Drawing real initial weights costs one XLA compile per distinct weight shape,
so most tests fill weights from `jax.eval_shape` with NumPy draws instead; one
module-scoped Wide ResNet goes through the real `init`.
"""

import jax
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.normalization import BatchNorm, FilterResponseNorm
from minitrax.models.resnet import (ConvBlock, GlobalAvgPool, IdentityBlock, Resnet50, WideResnet,
                                    WideResnetBlock, WideResnetGroup)
from minitrax.shapes import ShapeDtype, signature

KEY = jax.random.key(0)
IMAGES = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype(np.float32)
SIG = signature(IMAGES)


def _abstract(model, sig):
  """(weights, state, output) of `model` as ShapeDtypeStructs, without drawing anything."""

  def init_and_run(x, rng):
    weights, state = model.init_weights_and_state(sig, rng)
    return weights, state, model.pure_fn(x, weights, state, rng)[0]

  return jax.eval_shape(init_and_run, sig.as_struct(), KEY)


def _numpy_weights(model, sig, seed=0):
  """Weights N(0, 0.3^2) drawn with NumPy; every state leaf ones (a valid BatchNorm state)."""
  rng = np.random.default_rng(seed)
  weights, state, _ = _abstract(model, sig)
  weights = jax.tree.map(lambda a: rng.normal(0, 0.3, a.shape).astype(a.dtype), weights)
  return weights, jax.tree.map(lambda a: np.ones(a.shape, a.dtype), state)


def _shapes(tree):
  return jax.tree.map(lambda a: (a.shape, a.dtype), tree)


def _layers(layer, kind):
  """All sublayers of type `kind`, depth first."""
  found = [layer] if isinstance(layer, kind) else []
  for sub in layer.sublayers:
    found.extend(_layers(sub, kind))
  return found


MODELS = {
    'resnet50':
        lambda mode: Resnet50(d_hidden=1, n_output_classes=3, mode=mode),
    'resnet50_frn':
        lambda mode: Resnet50(d_hidden=1, n_output_classes=3, mode=mode, norm=FilterResponseNorm),
    'wide_resnet':
        lambda mode: WideResnet(n_blocks=2, n_output_classes=3, mode=mode),
}


@pytest.mark.parametrize('name', list(MODELS))
def test_output_shapes_and_weights_trees_agree_in_every_mode(name):
  assert MODELS[name]('train').output_signature(SIG) == ShapeDtype((4, 3))
  trees = {}
  for mode in ('train', 'eval', 'predict'):
    weights, _, y = _abstract(MODELS[name](mode), SIG)
    assert signature(y) == ShapeDtype((4, 3))
    trees[mode] = _shapes(weights)
  assert trees['train'] == trees['eval'] == trees['predict']


def test_resnet50_structure_and_real_output():
  model = Resnet50(d_hidden=1, n_output_classes=3, mode='eval')
  names = [s.name for s in model.sublayers]
  assert names[:5] == ['ToFloat', 'Conv', 'BatchNorm', 'Relu', 'MaxPool(3,3)']
  assert names[-3:] == ['GlobalAvgPool', 'Dense_3', 'LogSoftmax']
  assert names[5:-3].count('ConvBlock') == 4 and names[5:-3].count('IdentityBlock') == 12
  assert len(_layers(model, BatchNorm)) == 1 + 4 * 4 + 12 * 3  # stem, 4 per ConvBlock, 3 per
  weights, state = _numpy_weights(model, SIG)
  y, _ = jax.jit(model.pure_fn)(IMAGES, weights, state, None)
  assert signature(y) == model.output_signature(SIG)
  np.testing.assert_allclose(np.exp(np.asarray(y, np.float64)).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize('block, in_shape, out_shape', [
    (lambda: ConvBlock(3, (2, 2, 8), (2, 2)), (2, 4, 4, 3), (2, 2, 2, 8)),
    (lambda: IdentityBlock(3, (2, 2, 3)), (2, 4, 4, 3), (2, 4, 4, 3)),
    (lambda: WideResnetBlock(5, (2, 2)), (2, 4, 4, 3), (2, 2, 2, 5)),
    (lambda: WideResnetGroup(2, 5, (2, 2)), (2, 4, 4, 3), (2, 2, 2, 5)),
])
def test_blocks_output_signature_matches_real_output(block, in_shape, out_shape):
  layer, sig = block(), ShapeDtype(in_shape)
  weights, state = _numpy_weights(layer, sig)
  x = np.random.default_rng(1).normal(size=in_shape).astype(np.float32)
  y, _ = jax.jit(layer.pure_fn)(x, weights, state, None)
  assert layer.output_signature(sig) == signature(y) == ShapeDtype(out_shape)


def test_wide_resnet_groups_have_one_residual_per_block():
  group = WideResnetGroup(3, 4)
  assert [s.name for s in group.sublayers] == ['Residual'] * 3


def test_global_avg_pool_matches_numpy():
  x = np.random.default_rng(2).normal(size=(2, 3, 2, 4)).astype(np.float32)
  layer = GlobalAvgPool()
  y = layer(x)
  np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-6)
  assert layer.output_signature(signature(x)) == signature(y) == ShapeDtype((2, 4))
  with pytest.raises(
      LayerError, match=r'GlobalAvgPool: expected \(batch, spatial\.\.\., '
      r'channels\) of rank >= 3, got shape \(2, 4\)'):
    GlobalAvgPool()(np.ones((2, 4), np.float32))


# ------------------------------------------------------------------ BatchNorm in train vs eval


@pytest.fixture(scope='module')
def wide_resnet():
  """A Wide ResNet (n_blocks=1) initialised by the real `init`, and its eval twin."""
  train = WideResnet(n_blocks=1, n_output_classes=3, mode='train')
  weights, state = train.init(SIG, rng=KEY)
  evaluate = WideResnet(n_blocks=1, n_output_classes=3, mode='eval')
  evaluate.weights, evaluate.state = weights, state
  return train, evaluate, weights, state


def _np_conv3x3_same(x, kernel, bias):
  """NHWC x HWIO convolution, stride 1, SAME padding (pad 1), plus bias."""
  xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for di in range(3):
    for dj in range(3):
      out += xp[:, di:di + x.shape[1], dj:dj + x.shape[2]] @ kernel[di, dj]
  return out + bias.reshape(-1)


def test_real_init_and_call(wide_resnet):
  train = wide_resnet[0]
  assert all(bn.state[2] == 0 for bn in _layers(train, BatchNorm))
  y = train(IMAGES, rng=KEY)
  assert signature(y) == train.output_signature(SIG) == ShapeDtype((4, 3))
  assert np.isfinite(np.asarray(y)).all()


def test_batchnorm_uses_batch_statistics_only_in_train(wide_resnet):
  train, evaluate, weights, state = wide_resnet
  other = np.concatenate([IMAGES[:2], 2.0 * IMAGES[2:]])  # same first two images
  run_train, run_eval = jax.jit(train.pure_fn), jax.jit(evaluate.pure_fn)
  y_train, train_state = run_train(IMAGES, weights, state, None)
  y_train_other, _ = run_train(other, weights, state, None)
  y_eval, eval_state = run_eval(IMAGES, weights, state, None)
  y_eval_other, _ = run_eval(other, weights, state, None)

  assert not np.allclose(y_train, y_eval, atol=1e-4)
  # Eval normalises each image alone; train mixes in the rest of the batch.
  np.testing.assert_allclose(y_eval_other[:2], y_eval[:2], rtol=1e-5, atol=1e-6)
  assert not np.allclose(y_train_other[:2], y_train[:2], atol=1e-4)
  # Eval leaves the state alone; train updates every BatchNorm's statistics.
  jax.tree.map(np.testing.assert_array_equal, eval_state, state)
  train.state = train_state
  batchnorms = _layers(train, BatchNorm)
  assert len(batchnorms) == 2 * 3 + 1 and all(int(bn.state[2]) == 1 for bn in batchnorms)
  # The first BatchNorm sees the first convolution's output (checked in NumPy).
  kernel, bias = (np.asarray(a, np.float64) for a in weights[1])
  h = _np_conv3x3_same(IMAGES.astype(np.float64), kernel, bias)
  mean, var, _ = batchnorms[0].state
  np.testing.assert_allclose(mean.reshape(-1), 0.1 * h.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(var.reshape(-1), 0.9 + 0.1 * h.var(axis=(0, 1, 2)), rtol=1e-4)
  train.state = state


@pytest.mark.parametrize('make, error, message', [
    (lambda: Resnet50(d_hidden=0), ValueError, r'Resnet50: d_hidden must be an int >= 1, got 0'),
    (lambda: Resnet50(mode='infer'), ValueError,
     r"Resnet50: mode must be one of \('train', 'eval', 'predict'\), got 'infer'"),
    (lambda: Resnet50(norm=None), TypeError,
     r'Resnet50: norm must be a function returning a layer \(e.g. BatchNorm\), got None'),
    (lambda: WideResnet(n_blocks=0), ValueError, r'WideResnet: n_blocks must be an int >= 1'),
    (lambda: WideResnet(bn_momentum=1.5), ValueError,
     r'BatchNorm: momentum must lie in \[0, 1\], got 1.5'),
])
def test_bad_arguments_fail_at_construction(make, error, message):
  with pytest.raises(error, match=message):
    make()
