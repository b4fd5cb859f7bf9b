"""Accelerate (Trax 1.4): run a layer compiled, and data-parallel over several devices.

On one device `Accelerate(layer)` is `layer` under `jax.jit`. On n devices it
is `jax.jit` of a `jax.shard_map` over a one-axis mesh ('batch', as in
minitrax's training steps): the inputs are split along their first (batch)
axis, weights and state are replicated, each device runs the layer on its
share and the outputs are put back together along the batch axis. A batch
that does not divide by n is padded with zeros and the padding dropped from
the outputs (layers that mix batch items, like BatchNorm in training, then
see the padding, as in Trax).

Differences from Trax, which keeps one copy of weights and state per device
(pmap): here the weights and state trees are the layer's own (sharding does
the replicating), and the state after a data-parallel call is made equal on
all devices: floating-point leaves averaged over devices, others by maximum.
Device i draws from `fold_in(rng, i)`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from minitrax.checks import check_int
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import EMPTY, Layer
from minitrax.layers.core_more import BATCH_AXIS


def _same_on_all_devices(state):
  """State leaves combined over the 'batch' axis: floats averaged, bools and ints by maximum."""

  def combine(x):
    if jnp.issubdtype(x.dtype, jnp.inexact):
      return jax.lax.pmean(x, BATCH_AXIS)
    if x.dtype == jnp.bool_:
      return jax.lax.pmax(x.astype(jnp.int32), BATCH_AXIS).astype(jnp.bool_)
    return jax.lax.pmax(x, BATCH_AXIS)

  return jax.tree.map(combine, state)


def _data_parallel(pure_fn, mesh):
  """`jit(shard_map(...))` of `pure_fn` with the batch split over `mesh` (see the module doc)."""

  def on_device(x, weights, state, rng):
    if rng is not None:
      rng = jax.random.fold_in(rng, jax.lax.axis_index(BATCH_AXIS))
    y, new_state = pure_fn(x, weights, state, rng)
    y = jax.tree.map(lambda a: a.reshape((1,)) if a.ndim == 0 else a, y)  # scalars: one per device
    return y, _same_on_all_devices(new_state)

  mapped = jax.shard_map(on_device, mesh=mesh, in_specs=(P(BATCH_AXIS), P(), P(), P()),
                         out_specs=(P(BATCH_AXIS), P()), check_vma=False)
  return jax.jit(mapped)


class Accelerate(Layer):
  """Runs `layer` compiled; on several devices, data-parallel over the batch axis.

  n_in and n_out are `layer`'s; every input must have the batch as its first
  axis. Outputs equal `layer`'s when the layer treats batch items
  independently. An output scalar comes back as one value per device
  (shape `(n_devices,)`) when several devices run. The weights and state
  trees are exactly `layer`'s; an already initialised `layer` needs no
  `init` of this one.

  Args:
    layer: the layer to run.
    n_devices: how many local devices to use; default (None or 0) all.
  """

  def __init__(self, layer, n_devices=None):
    if not isinstance(layer, Layer):
      raise ArgumentTypeError(f'Accelerate: layer must be a Layer, got {layer!r}')
    available = jax.local_devices()
    n = len(available) if not n_devices else check_int('Accelerate', 'n_devices', n_devices)
    if n > len(available):
      raise ArgumentError(f'Accelerate: n_devices={n} exceeds the {len(available)} local '
                          f'{available[0].platform} devices')
    super().__init__(n_in=layer.n_in, n_out=layer.n_out, name='Accelerate')
    self._sublayers = (layer,)
    self._n_devices = n
    if n == 1:
      self._run = jax.jit(layer.pure_fn)
    else:
      self._run = _data_parallel(layer.pure_fn, Mesh(np.array(available[:n]), (BATCH_AXIS,)))

  @property
  def sublayer(self):
    """The accelerated layer."""
    return self._sublayers[0]

  def pack_tree(self, kind, sub_trees, own):
    del kind, own
    return sub_trees[0]

  def unpack_tree(self, kind, tree):
    del kind
    return (tree,), EMPTY

  def init_weights_and_state(self, input_signature, rng):
    return self.sublayer.make_weights_and_state(input_signature, rng)

  def forward_with_state(self, x, weights, state, rng):
    xs = x if isinstance(x, (tuple, list)) else (x,)
    if not xs or any(jnp.ndim(a) == 0 for a in xs):
      raise ArgumentError(f'Accelerate: every input needs a leading batch axis, got shapes '
                          f'{[jnp.shape(a) for a in xs]}')
    batch = xs[0].shape[0]
    extra = -batch % self._n_devices
    if not extra:
      return self._run(x, weights, state, rng)
    pad = functools.partial(_pad_batch, extra=extra)
    y, new_state = self._run(jax.tree.map(pad, x), weights, state, rng)
    return jax.tree.map(lambda a: a[:batch]
                        if a.ndim and a.shape[0] == batch + extra else a, y), new_state

  def replicate_weights(self, weights):
    """Sets the layer's weights (Trax's name; nothing to replicate here)."""
    self.weights = weights

  def replicate_state(self, state):
    """Sets the layer's state (Trax's name; nothing to replicate here)."""
    self.state = state

  def __call__(self, x, weights=None, state=None, rng=None):
    """As `Layer.__call__`; an initialised sublayer counts as this layer initialised."""
    if not self._initialized and self.sublayer.initialized:
      self._initialized = True
      self._rng = self.sublayer.rng
    return super().__call__(x, weights, state, rng)


def _pad_batch(a, extra):
  """`a` with `extra` zero rows appended along axis 0."""
  return jnp.pad(a, [(0, extra)] + [(0, 0)] * (a.ndim - 1))


__all__ = ['Accelerate']
