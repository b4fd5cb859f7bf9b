"""Tests for minitrax.supervised.step: compiled, data-parallel train and eval steps."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jax

from minitrax.data.device import stack_batches
from minitrax.errors import ConfigError
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, LogSoftmax
from minitrax.layers.metrics import METRICS, CrossEntropyLoss
from minitrax.optimizers import SGD
from minitrax.supervised import step as step_lib

HERE = os.path.dirname(os.path.abspath(__file__))


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _batch():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(6, 3)).astype(np.float32)
  y = np.array([0, 1, 3, 2, 3, 0], np.int32)
  w = np.array([1, 0, 2, 1, 0.5, 1], np.float32)
  return x, y, w


def test_make_mesh_checks_the_device_count():
  assert step_lib.make_mesh().size == len(jax.local_devices())
  assert step_lib.make_mesh(1).axis_names == ('batch',)
  with pytest.raises(ConfigError, match=r'n_devices must be an int from 1 to \d+ .* got 0'):
    step_lib.make_mesh(0)
  with pytest.raises(ConfigError, match=r'got 999'):
    step_lib.make_mesh(999)


@pytest.mark.parametrize('has_weights,id_to_mask,expected', [(False, None, 6.0), (True, None, 5.5),
                                                             (True, 3, 3.0), (False, 0, 4.0)])
def test_loss_weight_fn_sums_weights_and_mask(has_weights, id_to_mask, expected):
  x, y, w = _batch()
  batch = (x, y, w) if has_weights else (x, y)
  assert float(step_lib.loss_weight_fn(has_weights, id_to_mask)(batch)) == expected


def _sgd_reference(kernel, bias, x, y, w, lr):
  """Loss, gradient norm and weights after one SGD step on the weighted cross-entropy."""
  log_p = _log_softmax(x @ kernel + bias)
  loss = -(w * log_p[np.arange(len(y)), y]).sum() / w.sum()
  d_logits = w[:, None] * (np.exp(log_p) - np.eye(kernel.shape[1])[y]) / w.sum()
  grad_kernel, grad_bias = x.T @ d_logits, d_logits.sum(0)
  norm = np.sqrt((grad_kernel**2).sum() + (grad_bias**2).sum())
  return loss, norm, kernel - lr * grad_kernel, bias - lr * grad_bias


def test_train_steps_are_sgd_steps_on_the_weighted_loss():
  """3 steps per call, 2 of them active: two SGD steps, then nothing."""
  x, y, w = _batch()
  batches = [(x, y, w), (x[::-1].copy(), y[::-1].copy(), w)]
  layer = Serial(Dense(4), LogSoftmax(), CrossEntropyLoss(has_weights=True))
  weights, state = layer.init((x, y, w))
  kernel, bias = (np.asarray(a) for a in weights[0])
  opt = SGD()
  slots, _ = opt.tree_init(weights)
  params = step_lib.stack_params([{'learning_rate': 0.5}, {'learning_rate': 0.25}], 3)
  np.testing.assert_array_equal(params['learning_rate'], [0.5, 0.25, 0.25])
  stacked = stack_batches(batches, 3)
  assert stacked[0].shape == (3, 6, 3) and not stacked[0][2].any()
  step_fn = step_lib.make_train_step(layer, opt, step_lib.make_mesh(1),
                                     step_lib.loss_weight_fn(True, None), n_steps=3)
  new_weights, _, _, losses, norms = step_fn(weights, slots, state, params, stacked, np.int32(0),
                                             np.int32(2), jax.random.key(0))
  loss_0, norm_0, kernel, bias = _sgd_reference(kernel, bias, *batches[0], 0.5)
  loss_1, norm_1, kernel, bias = _sgd_reference(kernel, bias, *batches[1], 0.25)
  np.testing.assert_allclose(losses, [loss_0, loss_1, 0], rtol=1e-6)
  np.testing.assert_allclose(norms, [norm_0, norm_1, 0], rtol=1e-5)
  np.testing.assert_allclose(new_weights[0][0], kernel, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new_weights[0][1], bias, rtol=1e-5, atol=1e-6)


def test_eval_step_computes_the_five_metrics():
  x, y, w = _batch()
  model = Serial(Dense(4), LogSoftmax())
  weights, state = model.init(x)
  names = sorted(METRICS)
  layers = [METRICS[n](has_weights=True, id_to_mask=None) for n in names]
  eval_fn = step_lib.make_eval_step(model, layers, step_lib.make_mesh(1),
                                    step_lib.loss_weight_fn(True, None))
  totals = eval_fn(weights, state, (x, y, w), jax.random.key(0), np.ones(5, np.float32))
  got = dict(zip(names, np.asarray(totals) - 1))
  log_p = _log_softmax(x @ np.asarray(weights[0][0]) + np.asarray(weights[0][1]))
  loss = -(w * log_p[np.arange(6), y]).sum() / w.sum()
  correct = log_p.argmax(-1) == y
  np.testing.assert_allclose(got['loss'], loss, rtol=1e-6)
  np.testing.assert_allclose(got['neg_log_perplexity'], -loss, rtol=1e-6)
  np.testing.assert_allclose(got['accuracy'], (w * correct).sum() / w.sum(), rtol=1e-6)
  # Trax 1.2.3's rule: a sequence scores 1 - min(1, weight of its wrong positions).
  np.testing.assert_allclose(got['sequence_accuracy'],
                             np.mean(1 - np.minimum(1, (1 - correct) * w)), rtol=1e-6)
  assert got['weights_per_batch_per_core'] == 5.5


def test_an_evaluation_round_compiles_its_step_once():
  """The first totals are placed as the step's outputs, so batch 2 reuses batch 1's program."""
  x, y, w = _batch()
  model = Serial(Dense(4), LogSoftmax())
  weights, state = model.init(x)
  layers = [METRICS['loss'](has_weights=True, id_to_mask=None)]
  eval_fn = step_lib.make_eval_step(model, layers, step_lib.make_mesh(1),
                                    step_lib.loss_weight_fn(True, None))
  totals = eval_fn.zeros()
  for i in range(3):
    totals = eval_fn(weights, state, (x, y, w), jax.random.key(i), totals)
  assert eval_fn._fn._cache_size() == 1
  log_p = _log_softmax(x @ np.asarray(weights[0][0]) + np.asarray(weights[0][1]))
  loss = -(w * log_p[np.arange(6), y]).sum() / w.sum()
  np.testing.assert_allclose(np.asarray(totals), [3 * loss], rtol=1e-6)


def test_four_devices_match_one_device():
  """Same global batches on 1 and 4 virtual CPU devices: same losses, weights and metrics."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, os.path.join(HERE, 'devices_run.py')], env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  line = [row for row in out.stdout.splitlines() if row.startswith('REPORT ')][-1]
  report = json.loads(line[len('REPORT '):])
  assert report['n_devices'] == [1, 4]
  assert report['weight_diff'] < 1e-5
  np.testing.assert_allclose(report['losses'][0], report['losses'][1], rtol=1e-5)
  one, four = report['metrics']
  for name in ('accuracy', 'loss', 'neg_log_perplexity', 'sequence_accuracy'):
    np.testing.assert_allclose(one[name], four[name], rtol=1e-5, atol=1e-6)
  # Trax reports the loss weight per batch per core: a quarter on 4 cores.
  np.testing.assert_allclose(four['weights_per_batch_per_core'],
                             one['weights_per_batch_per_core'] / 4, rtol=1e-6)
  assert not report['tensorflow_imported']
