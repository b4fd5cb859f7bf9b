"""MLP: both Trax signatures against NumPy, shapes in every mode, and learning real MNIST."""

import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.layers.activation_fns import Tanh
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.models.mlp import MLP
from minitrax.optimizers import Adam
from minitrax.shapes import ShapeDtype, signature

X = np.random.default_rng(0).normal(size=(2, 2, 3)).astype(np.float32)
SIG = signature(X)


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _dense_weights(weights):
  """The (w, b) pairs of a model's Dense layers, in order, as float64."""
  leaves = [np.asarray(a, np.float64) for a in jax.tree.leaves(weights)]
  return list(zip(leaves[0::2], leaves[1::2]))


def test_trax_1_2_form_matches_numpy():
  model = MLP(d_hidden=4, n_hidden_layers=2, n_output_classes=3)
  weights, state = model.init(SIG)
  (w1, b1), (w2, b2), (w3, b3) = _dense_weights(weights)
  assert (w1.shape, w2.shape, w3.shape) == ((6, 4), (4, 4), (4, 3)) and state == ((),) * 7
  h = np.maximum(X.reshape(2, 6) @ w1 + b1, 0)
  h = np.maximum(h @ w2 + b2, 0)
  expected = _np_log_softmax(h @ w3 + b3)
  y = model(X)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
  assert model.output_signature(SIG) == signature(y) == ShapeDtype((2, 3))


def test_trax_1_4_form_matches_numpy():
  model = MLP(layer_widths=(4, 3), activation_fn=Tanh)
  (w1, b1), (w2, b2) = _dense_weights(model.init(SIG)[0])
  expected = np.tanh(X.reshape(2, 6) @ w1 + b1) @ w2 + b2  # no LogSoftmax, no last Tanh
  np.testing.assert_allclose(model(X), expected, rtol=1e-5, atol=1e-6)
  with_out = MLP(layer_widths=(4, 3), activation_fn=Tanh, out_activation=True, flatten=False)
  (w1, b1), (w2, b2) = _dense_weights(with_out.init(SIG)[0])
  expected = np.tanh(np.tanh(X @ w1 + b1) @ w2 + b2)  # axes kept: (2, 2, 3)
  y = with_out(X)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
  assert with_out.output_signature(SIG) == signature(y) == ShapeDtype((2, 2, 3))


def test_linear_classifier_and_layer_names():
  model = MLP(n_hidden_layers=0, n_output_classes=5)
  assert [s.name for s in model.sublayers] == ['Flatten_keep1', 'Dense_5', 'LogSoftmax']
  names = [s.name for s in MLP(d_hidden=8).sublayers]
  assert names == ['Flatten_keep1', 'Dense_8', 'Relu', 'Dense_8', 'Relu', 'Dense_10', 'LogSoftmax']


@pytest.mark.parametrize('mode', ['train', 'eval', 'predict'])
def test_same_shapes_and_weights_in_every_mode(mode):
  reference = MLP(d_hidden=4, n_output_classes=3).init(SIG)[0]
  model = MLP(d_hidden=4, n_output_classes=3, mode=mode)
  weights, _ = model.init(SIG)
  assert model.output_signature(SIG) == ShapeDtype((2, 3))
  assert jax.tree.structure(weights) == jax.tree.structure(reference)
  jax.tree.map(np.testing.assert_array_equal, weights, reference)


@pytest.mark.parametrize('kwargs, message', [
    ({'mode': 'test'}, r"MLP: mode must be one of \('train', 'eval', 'predict'\), got 'test'"),
    ({'d_hidden': 0}, r'MLP: d_hidden must be an int >= 1, got 0'),
    ({'n_hidden_layers': -1}, r'MLP: n_hidden_layers must be an int >= 0, got -1'),
    ({'n_output_classes': 2.0}, r'MLP: n_output_classes must be an int >= 1, got 2.0'),
    ({'layer_widths': (8,), 'd_hidden': 16
     }, r"MLP: pass either layer_widths \(Trax 1.4 form\) or d_hidden, n_hidden_layers and "
     r"n_output_classes \(Trax 1.2 form\), not both; got layer_widths=\(8,\) and "
     r"\{'d_hidden': 16\}"),
    ({'layer_widths': ()}, r'MLP: layer_widths must be a non-empty tuple of ints >= 1, got \(\)'),
    ({'layer_widths': (4, 0)}, r'MLP: every entry of layer_widths must be an int >= 1, got 0'),
    ({'out_activation': True}, r'MLP: out_activation belongs to the Trax 1.4 form'),
])
def test_bad_arguments_fail_at_construction(kwargs, message):
  with pytest.raises(ValueError, match=message):
    MLP(**kwargs)


def test_activation_must_be_callable():
  with pytest.raises(
      TypeError, match=r'MLP: activation_fn must be a function returning a '
      r'layer \(e.g. Relu\), got 3'):
    MLP(activation_fn=3)


# ------------------------------------------------------------------ learning real MNIST

_REPO = pathlib.Path(__file__).resolve().parents[2]
_MNIST_DIRS = [
    os.environ.get('MINITRAX_MNIST_DIR', ''), _REPO.parent / 'shared/data/mnist',
    _REPO / 'shared/data/mnist'
]


def _mnist_dir():
  for d in _MNIST_DIRS:
    if d and (pathlib.Path(d) / 't10k-images-idx3-ubyte.gz').exists():
      return pathlib.Path(d)
  return None


@pytest.mark.skipif(
    _mnist_dir() is None,
    reason=('the full MNIST test split (t10k-*-idx*-ubyte.gz, 10,000 examples) is not in any of '
            f'{[str(d) for d in _MNIST_DIRS if d]}; set MINITRAX_MNIST_DIR to a folder holding it'))
def test_small_mlp_learns_real_mnist():
  from minitrax.data import read_idx  # pylint: disable=import-outside-toplevel
  images = read_idx(_mnist_dir() / 't10k-images-idx3-ubyte.gz')
  labels = read_idx(_mnist_dir() / 't10k-labels-idx1-ubyte.gz')
  assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
  images = images.astype(np.float32) / 255.0
  train_x, train_y = jnp.asarray(images[:8000]), jnp.asarray(labels[:8000].astype(np.int32))
  batch, epochs = 100, 6
  order = np.concatenate([
      np.random.default_rng(epoch).permutation(8000) for epoch in range(epochs)
  ]).reshape(-1, batch)

  model = MLP(d_hidden=128, n_hidden_layers=1)
  loss_layer = CrossEntropyLoss()
  weights, state = model.init(ShapeDtype((batch, 28, 28)), rng=jax.random.key(1))
  optimizer = Adam(learning_rate=1e-3)
  slots, opt_params = optimizer.tree_init(weights)

  def loss_fn(w, idx):
    log_probs, _ = model.pure_fn(train_x[idx], w, state, None)
    return loss_layer.pure_fn((log_probs, train_y[idx]), (), (), None)[0]

  @jax.jit
  def train(weights, slots):

    def step(carry, idx_and_step):
      weights, slots = carry
      idx, i = idx_and_step
      loss, grads = jax.value_and_grad(loss_fn)(weights, idx)
      weights, slots, _ = optimizer.tree_update(i, grads, weights, slots, opt_params)
      return (weights, slots), loss

    steps = jnp.arange(order.shape[0], dtype=jnp.int32)
    (weights, slots), losses = jax.lax.scan(step, (weights, slots), (order, steps))
    return weights, losses

  weights, losses = train(weights, slots)
  log_probs, _ = jax.jit(model.pure_fn)(images[8000:], weights, state, None)
  accuracy = np.mean(np.argmax(np.asarray(log_probs), -1) == labels[8000:])
  assert np.isfinite(losses).all() and losses[-20:].mean() < losses[:20].mean() / 3
  assert accuracy >= 0.90, f'accuracy {accuracy:.3f} on the last 2,000 MNIST test images'
