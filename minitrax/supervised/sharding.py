"""Where a run's weights and optimizer slots live: replicated, or sharded over the mesh (FSDP).

`sharding='replicated'` (the default) keeps a whole copy of the weights, the
optimizer slots and the model state on every device of the mesh (data
parallelism). `sharding='fsdp'` (fully sharded data parallelism, ZeRO-3
style) splits each large weight and its slots over the mesh's `'batch'` axis,
the axis that also splits the batch: every device holds `1/n` of them
between steps, and the compiled step gathers the whole weights where it needs
them (the shardings are annotations on the compiled step; layers know
nothing of them).

The rule for one array of shape `s` on a mesh of `n` devices (`array_spec`):
arrays of fewer than `MIN_SHARDED_SIZE` elements, and arrays with no axis
divisible by `n`, are replicated; otherwise the largest axis divisible by `n`
(the first of equals) is split. Model state (e.g. BatchNorm statistics) stays
replicated. Checkpoints read back whole arrays (in a run of several
processes, each process saves its pieces of the arrays split over them and
reading puts them together, `minitrax.shard_files`), so a run saved on one
mesh restores onto any other (`place` re-shards on load).

>>> array_spec((512, 64), 4), array_spec((64,), 4), array_spec((3, 5000), 4)
(P('batch', None), P(), P(None, 'batch'))
"""

import numpy as np

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

from minitrax import distributed
from minitrax.data.device import BATCH_AXIS
from minitrax.errors import ConfigError

__all__ = [
    'SHARDINGS', 'MIN_SHARDED_SIZE', 'check_sharding', 'array_spec', 'tree_shardings', 'place',
    'constrain', 'device_bytes'
]

SHARDINGS = ('replicated', 'fsdp')
MIN_SHARDED_SIZE = 1024  # Smaller arrays are replicated: splitting them saves little.


def check_sharding(who, sharding):
  """`sharding` if it is one of `SHARDINGS` (None means 'replicated'); else `ConfigError`."""
  if sharding is None:
    return 'replicated'
  if sharding not in SHARDINGS:
    raise ConfigError(f'{who}: sharding must be one of {", ".join(map(repr, SHARDINGS))}, '
                      f'got {sharding!r}')
  return sharding


def array_spec(shape, n_devices):
  """The `PartitionSpec` of a weight (or slot) of `shape` under FSDP on `n_devices`."""
  if n_devices == 1 or int(np.prod(shape, dtype=np.int64)) < MIN_SHARDED_SIZE:
    return P()
  axes = [i for i, d in enumerate(shape) if d % n_devices == 0]
  if not axes:
    return P()
  axis = max(axes, key=lambda i: (shape[i], -i))
  return P(*[BATCH_AXIS if i == axis else None for i in range(len(shape))])


def tree_shardings(tree, mesh, sharding='replicated'):
  """A `NamedSharding` on `mesh` for every array of `tree` under `sharding`."""
  if sharding == 'replicated':
    return jax.tree.map(lambda _: NamedSharding(mesh, P()), tree)
  return jax.tree.map(lambda x: NamedSharding(mesh, array_spec(np.shape(x), mesh.size)), tree)


def place(tree, mesh, sharding='replicated'):
  """A copy of `tree` on `mesh`'s devices, each array sharded by `sharding`.

  `tree` may hold NumPy arrays or `jax.Array`s of any placement (whole values:
  every process passes the same ones).
  """
  if jax.process_count() > 1:
    tree = jax.tree.map(np.asarray, distributed.to_host(tree))
  return jax.device_put(tree, tree_shardings(tree, mesh, sharding), may_alias=False)


def constrain(tree, mesh, sharding):
  """Inside a compiled function: `tree`'s arrays annotated with `sharding`'s placement."""
  if sharding == 'replicated':
    return tree
  return jax.tree.map(jax.lax.with_sharding_constraint, tree, tree_shardings(tree, mesh, sharding))


def device_bytes(tree):
  """The bytes of `tree`'s arrays held by one device: `{device: bytes}` over local devices."""
  totals = {}
  for x in jax.tree.leaves(tree):
    for shard in x.addressable_shards:
      totals[shard.device] = totals.get(shard.device, 0) + shard.data.nbytes
  return totals
