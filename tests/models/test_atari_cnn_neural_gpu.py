"""AtariCnn, AtariCnnBody, FrameStackMLP and NeuralGPU against real Trax 1.4.1 numbers and NumPy."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import minitrax.layers.rnn as rnn
from minitrax.errors import ArgumentError
from minitrax.models import get_model
from minitrax.models.atari_cnn import AtariCnn, AtariCnnBody, FrameStackMLP
from minitrax.models.neural_gpu import DiagonalGate, NeuralGPU, NeuralGPU14, SaturationCost
from minitrax.shapes import ShapeDtype

sys.path.insert(0,
                os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'layers'))
import research_fixture as fx  # noqa: E402

FRAMES = fx.DATA['frames']  # (2, 3, 8, 8, 1) bytes as floats


@pytest.mark.parametrize('name, make, x', [
    ('AtariCnn', lambda: AtariCnn(n_frames=2, hidden_sizes=(3, 4), output_size=5), FRAMES),
    ('AtariCnnBody',
     lambda: AtariCnnBody(n_frames=3, hidden_sizes=(2, 3, 4), output_size=5, padding='SAME'),
     FRAMES),
    ('FrameStackMLP', lambda: FrameStackMLP(n_frames=3, hidden_sizes=(4,), output_size=3),
     fx.DATA['x']),
])
def test_atari_models_give_the_numbers_of_trax(name, make, x):
  model = make()
  y, want = fx.output_with_trax_weights(model, name, x)
  np.testing.assert_allclose(y, want, atol=3e-6)  # printed by Trax 1.4.1
  assert model.output_signature(ShapeDtype(x.shape)) == ShapeDtype(y.shape, y.dtype)


def test_frame_stack_puts_earlier_frames_beside_each_frame():
  x = np.arange(2 * 4 * 3, dtype=np.float32).reshape((2, 4, 3))
  model = FrameStackMLP(n_frames=3, hidden_sizes=(), output_size=9)
  w, _ = model.init(ShapeDtype(x.shape))
  kernel, bias = (np.asarray(a) for a in jax.tree.leaves(w))
  stacked = np.concatenate(
      [x,
       np.pad(x, [(0, 0), (1, 0), (0, 0)])[:, :-1],
       np.pad(x, [(0, 0), (2, 0), (0, 0)])[:, :-2]], -1)
  np.testing.assert_allclose(model(x), stacked @ kernel + bias, rtol=1e-5, atol=1e-4)


def test_neural_gpu_gives_the_numbers_of_trax(monkeypatch):
  # Trax's GRU cell drops out 10% of its candidate in every mode; the fixture (and this test)
  # turn that dropout off to compare numbers.
  dropout = rnn.Dropout
  monkeypatch.setattr(rnn, 'Dropout', lambda rate, **kw: dropout(rate=0.0, **kw))
  ids = fx.DATA['gpu_ids']  # (2, 1, 5)
  model = NeuralGPU14(d_feature=6, steps=2, vocab_size=3)
  y, want = fx.output_with_trax_weights(model, 'NeuralGPU', ids)
  np.testing.assert_allclose(y, want, atol=2e-6)  # printed by Trax 1.4.1 (logits)
  old = NeuralGPU(d_feature=6, steps=2, vocab_size=3)  # Trax 1.2: log-probabilities
  weights, state = fx.trax_weights(old, 'NeuralGPU', ids)
  logp, _ = old.pure_fn(ids, weights, state, jax.random.key(0))
  np.testing.assert_allclose(logp, jax.nn.log_softmax(want), atol=2e-6)


def test_neural_gpu_shares_one_cell_and_learns():
  model = NeuralGPU(d_feature=6, steps=3, vocab_size=3)
  ids = fx.DATA['gpu_ids']
  w, s = model.init(ShapeDtype(ids.shape, np.int32))
  assert len(jax.tree.leaves(w)) == 1 + 6 + 2  # embedding, one cell (3 convs), dense
  loss = lambda w: -jnp.mean(model.pure_fn(ids, w, s, jax.random.key(1))[0][..., 0])
  grads = jax.grad(loss)(w)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert all(float(np.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_diagonal_gate_and_saturation_cost():
  x = np.arange(2 * 1 * 4 * 3, dtype=np.float32).reshape((2, 1, 4, 3))
  y = np.asarray(DiagonalGate()(x))
  np.testing.assert_array_equal(y[:, :, 1:, 0], x[:, :, :-1, 0])  # first third: to the right
  np.testing.assert_array_equal(y[:, :, :, 1], x[:, :, :, 1])
  np.testing.assert_array_equal(y[:, :, :-1, 2], x[:, :, 1:, 2])  # last third: to the left
  assert y[0, 0, 0, 0] == 0 and y[0, 0, -1, 2] == 0
  np.testing.assert_allclose(SaturationCost(jnp.array([0.5, -2.0])), [-0.4, 0.0])


def test_models_are_registered_and_check_arguments():
  assert get_model('AtariCnn') is AtariCnn and get_model('NeuralGPU') is NeuralGPU
  assert get_model('AtariCnnBody') is AtariCnnBody and get_model('FrameStackMLP') is FrameStackMLP
  with pytest.raises(ArgumentError, match='hidden_sizes needs 2 entries'):
    AtariCnn(hidden_sizes=(8,))
  with pytest.raises(ArgumentError, match='steps must be an int >= 1, got 0'):
    NeuralGPU(steps=0)
