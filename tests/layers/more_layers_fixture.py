"""Reading fixtures/more_layers_{141,123}.npz (real Trax outputs; see fixtures/make_more_layers.py).

Each case `name` holds inputs `name/x{i}`, weight leaves `name/w{i}` in Trax's
flattening order and outputs `name/y{call}_{output}`.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.shapes import signature

HERE = os.path.dirname(os.path.abspath(__file__))


def load(version='141'):
  """The arrays of `more_layers_{version}.npz` as a dict."""
  with np.load(os.path.join(HERE, 'fixtures', f'more_layers_{version}.npz')) as data:
    return dict(data)


def _series(data, prefix):
  out, i = [], 0
  while f'{prefix}{i}' in data:
    out.append(data[f'{prefix}{i}'])
    i += 1
  return out


def inputs(data, name):
  """The inputs of case `name`: one array, or a tuple of them."""
  xs = _series(data, f'{name}/x')
  return xs[0] if len(xs) == 1 else tuple(xs)


def init_with_trax_weights(layer, data, name):
  """Inits `layer` for the case's inputs and stores Trax's weights; checks leaf shapes and order."""
  weights, _ = layer.init(signature(inputs(data, name)))
  leaves, treedef = jax.tree.flatten(weights)
  trax = _series(data, f'{name}/w')
  assert [a.shape for a in leaves] == [a.shape for a in trax], name
  layer.weights = jax.tree.unflatten(treedef, [jnp.asarray(a) for a in trax])
  return layer


def outputs(data, name, call=0):
  """Trax's outputs of call number `call` of case `name` (a tuple)."""
  return tuple(_series(data, f'{name}/y{call}_'))


def assert_matches(actual, data, name, call=0, atol=1e-5):
  """`actual` (an array or tuple) equals Trax's outputs of `call` within `atol`."""
  actual = actual if isinstance(actual, tuple) else (actual,)
  expected = outputs(data, name, call)
  assert len(actual) == len(expected), name
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(np.asarray(a), e, atol=atol, rtol=1e-5)
