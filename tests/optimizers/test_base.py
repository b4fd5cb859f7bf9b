"""The Optimizer contract: trees, opt_params, clipping, dtypes, recompiles."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import optimizers
from minitrax.errors import OptimizerError

ALL = [
    optimizers.SGD, optimizers.Momentum, optimizers.RMSProp, optimizers.Adam, optimizers.Adafactor,
    optimizers.SM3
]


def _tree(dtype=jnp.float32):
  """Weights of rank 0 to 3 in a dict/list/tuple tree, with an empty layer."""
  rng = np.random.default_rng(1)
  make = lambda *shape: jnp.asarray(rng.normal(size=shape), dtype)
  return {'a': make(), 'b': [make(3), (), make(2, 3)], 'c': (make(2, 3, 4),)}


@pytest.mark.parametrize('cls', ALL, ids=lambda c: c.__name__)
def test_constructible_without_arguments(cls):
  optimizer = cls()
  slots, opt_params = optimizer.tree_init(_tree())
  assert 'learning_rate' in opt_params
  assert all(v.dtype == jnp.float32 and v.shape == () for v in opt_params.values())
  assert set(opt_params) == set(optimizer.hyperparameters)
  # Slots mirror the weights; each leaf's slots are a tuple of arrays, so
  # that they can be written to a msgpack checkpoint.
  per_weight = jax.tree.structure(_tree()).flatten_up_to(slots)
  assert all(isinstance(s, tuple) for s in per_weight)
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(slots))


def test_trax_defaults():
  assert optimizers.SGD().hyperparameters == {'learning_rate': 0.01}
  assert optimizers.Momentum().hyperparameters == {
      'learning_rate': 0.01, 'mass': 0.9, 'weight_decay_rate': 1e-5
  }
  assert optimizers.RMSProp().hyperparameters == {'learning_rate': 0.001, 'gamma': 0.9, 'eps': 1e-8}
  assert optimizers.Adam().hyperparameters == {
      'learning_rate': 0.01, 'weight_decay_rate': 1e-5, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-5
  }
  assert optimizers.Adafactor().hyperparameters == {
      'learning_rate': 0.05, 'beta1': 0.0, 'decay_rate': 0.8, 'clipping_threshold': 1.0,
      'weight_decay_rate': 1e-5, 'epsilon1': 1e-30, 'epsilon2': 1e-3
  }
  assert optimizers.SM3().hyperparameters == {'learning_rate': 0.01, 'momentum': 0.9}
  assert repr(optimizers.Adam(
      learning_rate=1e-3,
      b2=0.98)) == ('Adam(learning_rate=0.001, weight_decay_rate=1e-05, b1=0.9, b2=0.98, '
                    'eps=1e-05)')


def test_slot_shapes_factored_and_per_axis():
  w = {'vector': jnp.zeros(3), 'cube': jnp.zeros((2, 3, 4))}
  factored, _ = optimizers.Adafactor(do_momentum=True).tree_init(w)
  assert [s.shape for s in factored['cube']] == [(2, 3), (2, 4), (2, 3, 4)]
  assert [s.shape for s in factored['vector']] == [(3,), (3,)]
  sm3, _ = optimizers.SM3().tree_init(w)
  assert [s.shape for s in sm3['cube']] == [(2, 3, 4), (2,), (3,), (4,)]
  assert [s.shape for s in sm3['vector']] == [(3,), (3,)]


def test_ten_learning_rates_compile_once():
  optimizer = optimizers.Adam()
  weights = _tree()
  slots, opt_params = optimizer.tree_init(weights)
  traces = []

  @jax.jit
  def step(i, weights, slots, opt_params):
    traces.append(i)
    grads = jax.tree.map(jnp.ones_like, weights)
    return optimizer.tree_update(i, grads, weights, slots, opt_params)

  first = jax.tree.map(lambda x: x, weights)
  for i, rate in enumerate(np.linspace(0.1, 0.01, 10)):
    opt_params = optimizer.with_schedule(opt_params, {'learning_rate': rate})
    opt_params = optimizer.with_schedule(opt_params, {'b1': 0.9 - i / 100})
    weights, slots, _ = step(i, weights, slots, opt_params)
  assert len(traces) == 1
  assert step._cache_size() == 1  # pylint: disable=protected-access
  assert not np.allclose(weights['a'], first['a'])


def test_with_schedule_merges_values_and_names_bad_keys():
  _, opt_params = optimizers.Momentum().tree_init(())
  merged = optimizers.Optimizer.with_schedule(opt_params,
                                              {'learning_rate': 0.5, 'mass': np.float32(0.8)})
  assert float(merged['learning_rate']) == 0.5
  assert merged['mass'].dtype == jnp.float32 and merged['mass'].shape == ()
  assert opt_params['learning_rate'] == np.float32(0.01)  # Not changed.
  bare = optimizers.Optimizer.with_schedule(opt_params, 0.25)
  assert float(bare['learning_rate']) == 0.25
  with pytest.raises(OptimizerError) as e:
    optimizers.Optimizer.with_schedule(opt_params, {'learning_rat': 0.1})
  assert str(e.value) == ("Optimizer.with_schedule: the schedule sets ['learning_rat'], which the "
                          "optimizer does not have; valid names are ['learning_rate', 'mass', "
                          "'weight_decay_rate']")
  with pytest.raises(OptimizerError, match='must be a scalar'):
    optimizers.Optimizer.with_schedule(opt_params, jnp.ones(2))


def test_weight_dtypes_preserved_and_slots_float32():
  weights = _tree(jnp.bfloat16)
  grads = jax.tree.map(jnp.ones_like, weights)
  for cls in ALL:
    optimizer = cls()
    slots, opt_params = optimizer.tree_init(weights)
    new, slots, stats = jax.jit(optimizer.tree_update)(0, grads, weights, slots, opt_params)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(new)), cls
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(slots)), cls
    assert stats['gradients_l2'].dtype == jnp.float32


def test_stats_and_clipping():
  weights = {'w': jnp.array([3.0, 4.0]), 'empty': ()}
  grads = {'w': jnp.array([6.0, 8.0]), 'empty': ()}  # Norm 10.
  clipped = optimizers.SGD(learning_rate=1.0, clip_grad_norm=2.0)
  slots, opt_params = clipped.tree_init(weights)
  assert float(opt_params['clip_grad_norm']) == 2.0
  new, _, stats = clipped.tree_update(0, grads, weights, slots, opt_params)
  np.testing.assert_allclose(new['w'], [3.0 - 1.2, 4.0 - 1.6], rtol=1e-6)
  assert new['empty'] == ()
  np.testing.assert_allclose(stats['gradients_l2'], 10.0)  # Before clipping.
  np.testing.assert_allclose(stats['weights_l2'], 5.0)
  # Under the threshold, gradients pass unchanged.
  loose = optimizers.SGD(learning_rate=1.0, clip_grad_norm=20.0)
  slots, opt_params = loose.tree_init(weights)
  new, _, _ = loose.tree_update(0, grads, weights, slots, opt_params)
  np.testing.assert_allclose(new['w'], [-3.0, -4.0])
  # The threshold is a hyperparameter: a schedule may change it.
  opt_params = loose.with_schedule(opt_params, {'clip_grad_norm': 5.0})
  new, _, _ = loose.tree_update(0, grads, weights, slots, opt_params)
  np.testing.assert_allclose(new['w'], [0.0, 0.0], atol=1e-6)


def test_tree_init_and_update_are_jittable():
  optimizer = optimizers.Adafactor(do_momentum=True)
  weights = _tree()
  slots, opt_params = jax.jit(optimizer.tree_init)(weights)
  eager_slots, _ = optimizer.tree_init(weights)
  assert jax.tree.structure(slots) == jax.tree.structure(eager_slots)
  new, _, _ = jax.jit(optimizer.tree_update)(jnp.int32(3), weights, weights, slots, opt_params)
  assert jax.tree.structure(new) == jax.tree.structure(weights)
  assert new['b'][1] == ()


def test_custom_optimizer_from_the_docstring():

  class SignSGD(optimizers.Optimizer):

    def init(self, weights):
      return ()

    def update(self, step, grads, weights, slots, opt_params):
      return weights - opt_params['learning_rate'] * jnp.sign(grads), slots

  optimizer = SignSGD(learning_rate=0.5)
  weights = {'w': jnp.zeros(2), 'b': ()}
  slots, opt_params = optimizer.tree_init(weights)
  new, _, _ = optimizer.tree_update(0, {'w': jnp.array([3.0, -1.0]), 'b': ()}, weights, slots,
                                    opt_params)
  np.testing.assert_array_equal(new['w'], [-0.5, 0.5])


@pytest.mark.parametrize('kwargs, message', [
    ({'learning_rate': 'fast'
     }, "SGD: hyperparameter learning_rate must be a finite real number, got "
     "'fast'"),
    ({'learning_rate': float('nan')}, 'must be a finite real number'),
    ({'clip_grad_norm': 0.0}, 'SGD: clip_grad_norm must be None or > 0, got 0.0'),
])
def test_bad_hyperparameters(kwargs, message):
  with pytest.raises(OptimizerError, match=message):
    optimizers.SGD(**kwargs)


def test_bad_flag():
  with pytest.raises(OptimizerError,
                     match=("Adafactor: factored must be True or False, got 'yes'")):
    optimizers.Adafactor(factored='yes')


def test_mismatched_trees_and_opt_params():
  optimizer = optimizers.Momentum()
  weights = {'w': jnp.zeros(2), 'b': jnp.zeros(())}
  slots, opt_params = optimizer.tree_init(weights)
  with pytest.raises(OptimizerError, match='grads must have the structure'):
    optimizer.tree_update(0, {'w': jnp.zeros(2)}, weights, slots, opt_params)
  with pytest.raises(
      OptimizerError, match=(r"Momentum.tree_update: opt_params has missing keys \['mass'\] and "
                             r"unknown keys \[\]; expected exactly \['learning_rate', 'mass', ")):
    params = {k: v for k, v in opt_params.items() if k != 'mass'}
    optimizer.tree_update(0, weights, weights, slots, params)
  with pytest.raises(OptimizerError, match='slots do not fit the weights'):
    optimizer.tree_update(0, weights, weights, {'w': ()}, opt_params)


def test_bad_rule_output_is_named():

  class Broken(optimizers.Optimizer):

    def init(self, weights):
      return ()

    def update(self, step, grads, weights, slots, opt_params):
      return weights[None], slots

  optimizer = Broken()
  weights = {'layer': [jnp.zeros(2)]}
  slots, opt_params = optimizer.tree_init(weights)
  with pytest.raises(OptimizerError) as e:
    optimizer.tree_update(0, weights, weights, slots, opt_params)
  assert str(e.value) == ("Broken.update returned weights of shape (1, 2) for "
                          "weights['layer'][0] of shape (2,)")


def test_docstring_example_runs():
  failed, attempted = doctest.testmod(optimizers)
  assert (failed, attempted) == (0, 7)


def test_adafactor_stays_finite_with_zero_rows_and_columns_of_gradients():
  """Dead units give whole zero rows/columns: the factored scale must not underflow to 0/0."""
  weights = jnp.ones((16, 16), jnp.float32)
  grads = jnp.zeros((16, 16), jnp.float32).at[3, 5].set(1e-3)
  opt = optimizers.Adafactor()
  slots, opt_params = opt.tree_init(weights)
  new_weights, _, _ = opt.tree_update(0, grads, weights, slots, opt_params)
  assert bool(jnp.all(jnp.isfinite(new_weights)))
  assert float(new_weights[3, 5]) < 1.0 and float(new_weights[0, 0]) == pytest.approx(1 - 1e-5)
