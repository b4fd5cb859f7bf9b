"""Every optimizer against an independent NumPy (float64) version of its rule.

Five steps on a tree holding arrays of rank 0 to 3 (and an empty tuple), with
a different learning rate at each step, must match to 1e-6 relative: each
entry within 1e-6 of its own size plus 1e-6 of the array's largest entry (the
second term allows for float32 cancellation in sums such as a velocity that
passes near zero).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import optimizers

SHAPES = {'scalar': (), 'layers': [(3,), (2, 3)], 'conv': ((2, 3, 4), None)}
LEARNING_RATES = [0.1, 0.05, 0.2, 0.1, 0.15]
N_STEPS = len(LEARNING_RATES)

# NumPy references: init(w) -> list of slots; update(t, g, w, s, hp) -> w, s.
# `t` is the 1-based update count; `hp` holds the hyperparameters.


def sgd_init(w):
  del w
  return []


def sgd_update(t, g, w, s, hp):
  del t
  return w - hp['learning_rate'] * g, s


def momentum_update(nesterov):

  def update(t, g, w, s, hp):
    del t
    velocity = hp['mass'] * s[0] + g
    step = hp['mass'] * velocity + g if nesterov else velocity
    w = w * (1 - hp['weight_decay_rate']) - hp['learning_rate'] * step
    return w, [velocity]

  return update


def zeros_init(n):
  return lambda w: [np.zeros_like(w) for _ in range(n)]


def rms_prop_init(w):
  return [np.ones_like(w)]


def rms_prop_update(t, g, w, s, hp):
  del t
  a = hp['gamma'] * s[0] + (1 - hp['gamma']) * np.square(g)
  return w - hp['learning_rate'] * g / (np.sqrt(a) + hp['eps']), [a]


def adam_update(t, g, w, s, hp):
  b1, b2 = hp['b1'], hp['b2']
  m = b1 * s[0] + (1 - b1) * g
  v = b2 * s[1] + (1 - b2) * np.square(g)
  m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
  step = hp['learning_rate'] * m_hat / (np.sqrt(v_hat) + hp['eps'])
  return w * (1 - hp['weight_decay_rate']) - step, [m, v]


def adafactor_init(factored, momentum):

  def init(w):
    if factored and w.ndim >= 2:
      slots = [np.zeros(w.shape[:-1]), np.zeros(w.shape[:-2] + w.shape[-1:])]
    else:
      slots = [np.zeros_like(w)]
    return slots + ([np.zeros_like(w)] if momentum else [])

  return init


def adafactor_update(factored, momentum, scale_by_parameter):

  def update(t, g, w, s, hp):
    beta2 = 1 - t**(-hp['decay_rate'])
    g2 = np.square(g) + hp['epsilon1']
    if factored and w.ndim >= 2:
      r = beta2 * s[0] + (1 - beta2) * g2.mean(axis=-1)
      c = beta2 * s[1] + (1 - beta2) * g2.mean(axis=-2)
      r_factor = (r / r.mean(axis=-1, keepdims=True))**-0.5
      u = g * np.expand_dims(r_factor, -1) * np.expand_dims(c**-0.5, -2)
      new = [r, c]
    else:
      v = beta2 * s[0] + (1 - beta2) * g2
      u, new = g * v**-0.5, [v]
    u = u / max(1.0, np.sqrt(np.mean(u * u)) / hp['clipping_threshold'])
    rate = hp['learning_rate']
    if scale_by_parameter:
      rate *= max(np.sqrt(np.mean(w * w)), hp['epsilon2'])
    step = rate * u
    if momentum:
      step = hp['beta1'] * s[-1] + (1 - hp['beta1']) * step
      new.append(step)
    return w * (1 - hp['weight_decay_rate']) - step, new

  return update


def sm3_init(w):
  if w.ndim <= 1:
    return [np.zeros_like(w), np.zeros_like(w)]
  return [np.zeros_like(w)] + [np.zeros(n) for n in w.shape]


def sm3_update(t, g, w, s, hp):
  del t
  m, mus = s[0], s[1:]
  if w.ndim <= 1:
    nu = mus[0] + g * g
    mus = [nu]
  else:
    nu = np.full(w.shape, np.inf)
    for index in np.ndindex(*w.shape):
      nu[index] = min(mu[i] for mu, i in zip(mus, index)) + g[index]**2
    mus = [np.moveaxis(nu, axis, 0).reshape(n, -1).max(axis=1) for axis, n in enumerate(w.shape)]
  pre = np.divide(g, np.sqrt(nu), out=np.zeros_like(g), where=nu > 0)
  m = hp['momentum'] * m + (1 - hp['momentum']) * pre
  return w - hp['learning_rate'] * m, [m] + mus


CASES = {
    'SGD': (optimizers.SGD(), sgd_init, sgd_update),
    'Momentum': (optimizers.Momentum(weight_decay_rate=1e-3), zeros_init(1),
                 momentum_update(nesterov=True)),
    'Momentum-plain': (optimizers.Momentum(mass=0.8, nesterov=False), zeros_init(1),
                       momentum_update(nesterov=False)),
    'RMSProp': (optimizers.RMSProp(), rms_prop_init, rms_prop_update),
    'Adam': (optimizers.Adam(weight_decay_rate=1e-3, b2=0.98), zeros_init(2), adam_update),
    'Adafactor-factored': (optimizers.Adafactor(clipping_threshold=0.5),
                           adafactor_init(True, False), adafactor_update(True, False, True)),
    'Adafactor-full-momentum': (optimizers.Adafactor(factored=False, do_momentum=True, beta1=0.9,
                                                     multiply_by_parameter_scale=False),
                                adafactor_init(False, True), adafactor_update(False, True, False)),
    'SM3': (optimizers.SM3(), sm3_init, sm3_update),
}


def _random_tree(rng, shapes):
  """A tree shaped like `shapes` (None becomes an empty tuple ())."""
  return jax.tree.map(
      lambda s: rng.normal(size=s) if s is not None else (), shapes, is_leaf=lambda s: s is None or
      (isinstance(s, tuple) and all(isinstance(d, int) for d in s)))


def _numpy_run(init, update, weights, grads_per_step, hyperparameters):
  leaves, treedef = jax.tree.flatten(weights)
  slots = [init(w) for w in leaves]
  for t, (grads, rate) in enumerate(zip(grads_per_step, LEARNING_RATES), 1):
    hp = dict(hyperparameters, learning_rate=rate)
    pairs = [update(t, g, w, s, hp) for g, w, s in zip(jax.tree.leaves(grads), leaves, slots)]
    leaves = [w for w, _ in pairs]
    slots = [s for _, s in pairs]
  return treedef.unflatten(leaves), slots


def _jax_run(optimizer, weights, grads_per_step):
  weights = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), weights)
  slots, opt_params = optimizer.tree_init(weights)
  step_fn = jax.jit(optimizer.tree_update)
  for step, (grads, rate) in enumerate(zip(grads_per_step, LEARNING_RATES)):
    opt_params = optimizer.with_schedule(opt_params, {'learning_rate': rate})
    grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), grads)
    weights, slots, _ = step_fn(step, grads, weights, slots, opt_params)
  return weights, slots


@pytest.mark.parametrize('name', list(CASES))
def test_matches_numpy_reference(name):
  optimizer, init, update = CASES[name]
  rng = np.random.default_rng(0)
  weights = _random_tree(rng, SHAPES)
  grads = [_random_tree(rng, SHAPES) for _ in range(N_STEPS)]
  # Round inputs to float32 so both runs start from the same numbers.
  weights, grads = jax.tree.map(lambda x: np.float32(x).astype(np.float64), (weights, grads))

  want_w, want_s = _numpy_run(init, update, weights, grads, optimizer.hyperparameters)
  got_w, got_s = _jax_run(optimizer, weights, grads)

  assert jax.tree.structure(got_w) == jax.tree.structure(weights)
  assert got_w['conv'][1] == ()
  for got, want in zip(jax.tree.leaves(got_w), jax.tree.leaves(want_w)):
    assert got.dtype == jnp.float32
    _assert_close(got, want)
  got_s_leaves = jax.tree.structure(weights).flatten_up_to(got_s)
  for got, want in zip(got_s_leaves, want_s):
    assert len(got) == len(want)
    for got_slot, want_slot in zip(got, want):
      assert got_slot.shape == np.shape(want_slot)
      _assert_close(got_slot, want_slot)


def _assert_close(got, want, rtol=1e-6):
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))
