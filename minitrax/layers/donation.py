"""The compiled call behind `layer(x)`: the state a layer owns is donated and updated in place.

A loop of `layer(x)` calls (the codelab's predict-mode decoding, one token
per call) gives each call the state that the previous call stored. When those
arrays were made by the layer's own compiled program and nobody outside has
been handed them since, they are the layer's alone: `Layer.__call__` donates
them (`jax.jit(..., donate_argnums)`), and XLA writes the new keys and values
into the KV caches in place instead of copying every cache at every token.

Ownership is kept per root layer (`trees.own_state`, `trees.owns_state`):

* after `layer(x)` stores the state its program returned, the layer owns it,
  unless some of its arrays are the call's own inputs passed through (JAX
  returns an input array itself when the program does not change it) or the
  call was traced inside another transformation;
* reading `layer.state` (of the layer, or of any layer inside it) hands the
  arrays out (`trees.hand_out_state`), and setting it, `init` and loading a file
  store arrays that the caller holds: none of these are owned.

A state that is not owned is copied once by a small compiled copy, and the
copy is donated: so every call runs the same program, and an array that the
user holds (e.g. `fresh = model.state`, kept to start new sequences from) is
never donated and stays valid.

A NaN output makes `Layer.__call__` re-run the call eagerly to name the
error it hides (`diagnosis.eager_error`). That re-run needs the state from
before the call. When the state was copied, it is the original. When it was
donated, it is rebuilt: the 0-d leaves (position counters, flags) from
copies that the program returns, every other array as the call left it with
its NaNs set to 0 (a KV cache then holds the failed call's keys and values,
or zeros, at positions from its counter on, which later calls mask out and
overwrite; a recurrent carry that the failed call changed is lost: start
the sequence again). If the re-run raises, that state is stored and the
error propagates.
"""

import jax
import jax.numpy as jnp

from minitrax.layers import diagnosis, trees


@jax.jit
def _copy(tree):
  """New arrays holding the values of `tree`'s leaves."""
  return jax.tree.map(jnp.copy, tree)


def _scalars(tree):
  """Copies of the 0-d leaves of `tree`, in leaf order."""
  return [jnp.copy(leaf) for leaf in jax.tree.leaves(tree) if jnp.ndim(leaf) == 0]


def _rebuilt(tree, scalars):
  """`tree` with its 0-d leaves replaced, in leaf order, by `scalars`, and NaNs set to 0."""
  leaves, treedef = jax.tree.flatten(tree)
  given = iter(scalars if sum(jnp.ndim(a) == 0 for a in leaves) == len(scalars) else [])
  leaves = [next(given, a) if jnp.ndim(a) == 0 else a for a in leaves]
  return treedef.unflatten(
      [jnp.nan_to_num(a, nan=0.0) if jnp.issubdtype(a.dtype, jnp.inexact) else a for a in leaves])


class CompiledCall:
  """`Layer.__call__`'s one compiled program: `pure_fn` with a NaN flag, state donated.

  Args:
    pure_fn: the layer's `pure_fn(x, weights, state, rng) -> (y, new_state)`.
  """

  def __init__(self, pure_fn):
    run = diagnosis.with_nan_flag(pure_fn)

    def donating(x, weights, state, rng):
      y, new_state, has_nan = run(x, weights, state, rng)
      return y, new_state, has_nan, _scalars(state)

    self._run = jax.jit(donating, donate_argnums=(2,))

  def _cache_size(self):
    """How many programs were compiled (as `jax.jit`'s; one per input shapes)."""
    return self._run._cache_size()  # pylint: disable=protected-access

  def __call__(self, layer, x, weights, state, rng, owned):
    """Runs `layer` on `x`, stores the new state on it, returns the outputs.

    Args:
      layer: the layer whose `pure_fn` this runs.
      x, weights, state, rng: the call's arguments, as for `pure_fn`.
      owned: whether `state` is the layer's own (`trees.owns_state`): then
        it is donated, else a copy of it is.

    Raises:
      LayerError: the error that the eager re-run of a call whose outputs
        hold NaN raises; the layer then keeps its state from before the call
        (rebuilt when it was donated: see the module docstring).
    """
    given = state
    if not owned and jax.tree.leaves(state):
      state = _copy(state)
    y, new_state, has_nan, scalars = self._run(x, weights, state, rng)
    traced = isinstance(has_nan, jax.core.Tracer)
    if not traced and bool(has_nan):
      before = _rebuilt(new_state, scalars) if owned else given
      error = diagnosis.eager_error(layer, x, weights, before, rng)
      if error is not None:
        if owned:
          trees.scatter(layer, 'state', before)
        raise error
    trees.scatter(layer, 'state', new_state, keep=True)  # pure_fn keeps the tree's structure
    inputs = {id(leaf) for leaf in jax.tree.leaves((x, weights, rng))}
    if not traced and not any(id(leaf) in inputs for leaf in jax.tree.leaves(new_state)):
      trees.own_state(layer, new_state)
    return y


__all__ = ['CompiledCall']
