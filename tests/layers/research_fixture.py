"""Reading fixtures/research_141.npz (real Trax 1.4.1 outputs; see fixtures/make_research_141.py).

Case `name` holds Trax's weight leaves `name/w{i}` in its flattening order
and the output `name/y`; the inputs are shared arrays ('x', 'mask', ...).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.shapes import signature

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = dict(np.load(os.path.join(HERE, 'fixtures', 'research_141.npz')))


def trax_weights(layer, name, inputs):
  """Inits `layer` for `inputs`; returns `(weights, state)` with Trax's weights in its leaves.

  Fails unless the layer's weight leaves have Trax's shapes in Trax's order.
  """
  weights, state = layer.init(signature(inputs))
  leaves, tree = jax.tree_util.tree_flatten(weights)
  trax = []
  while f'{name}/w{len(trax)}' in DATA:
    trax.append(DATA[f'{name}/w{len(trax)}'])
  assert [tuple(w.shape) for w in leaves] == [w.shape for w in trax], name
  return jax.tree_util.tree_unflatten(tree, [jnp.asarray(w) for w in trax]), state


def output_with_trax_weights(layer, name, inputs, rng=None):
  """`(our output, Trax's output)` of case `name` (the first output when there are two)."""
  weights, state = trax_weights(layer, name, inputs)
  y, _ = layer.pure_fn(inputs, weights, state, jax.random.PRNGKey(0) if rng is None else rng)
  return np.asarray(y[0] if isinstance(y, tuple) else y), DATA[f'{name}/y']
