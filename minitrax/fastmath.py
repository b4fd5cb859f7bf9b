"""Trax's `fastmath` (1.4) and `math` (1.2): NumPy-style math on accelerators, here always JAX.

Trax code imports its array functions from here (`from trax.fastmath import
numpy as jnp`, `trax.math.random.get_prng(0)`); minitrax has one backend, so
each name is JAX's own function under Trax's name:

* `numpy`: `jax.numpy`; `random`: Trax's random API (`get_prng`, `split`,
  `fold_in`, `uniform`, `randint`, `normal`, `bernoulli`) over `jax.random`.
* Transformations and control flow: `jit`, `grad`, `value_and_grad`, `vjp`,
  `vmap`, `remat`, `custom_vjp`, `stop_gradient`, `scan`, `map`, `fori_loop`,
  `cond`, `abstract_eval` (`jax.eval_shape`), `disable_jit`.
* Operations: `logsumexp`, `expit`/`sigmoid`, `erf`, `top_k`, `sort_key_val`,
  `dynamic_slice(_in_dim)`, `dynamic_update_slice(_in_dim)`, `index_update`,
  `index_add`, `index_min`, `index_max`, `psum`, `lt`.
* Trees: `nested_map`, `nested_map_multiarg`, `nested_zip`, `nested_stack`,
  `tree_flatten`, `tree_leaves`, `tree_unflatten`.
* Backends: `Backend`, `backend_name()` ('jax'), `is_backend`, `use_backend`
  (a no-op context for 'jax'; other backends are an error), `set_backend`.

>>> numpy.sum(numpy.arange(4))
Array(6, dtype=int32)
>>> random.split(random.get_prng(0)).shape
(2, 2)
"""

import contextlib
import enum
import types

import jax
import jax.numpy as numpy  # noqa: F401  (Trax's name)
import numpy as np

from minitrax.errors import ArgumentError

# ------------------------------------------------------------------ random


def _get_prng(seed):
  """A raw uint32 JAX key from an int seed (as Trax's `get_prng`)."""
  return jax.random.PRNGKey(seed)


random = types.SimpleNamespace(get_prng=_get_prng,
                               split=lambda prng, num=2: jax.random.split(prng, num),
                               fold_in=jax.random.fold_in, uniform=jax.random.uniform,
                               randint=jax.random.randint, normal=jax.random.normal,
                               bernoulli=jax.random.bernoulli)

# ------------------------------------------------------------------ transformations

jit, grad, value_and_grad, vjp, vmap = jax.jit, jax.grad, jax.value_and_grad, jax.vjp, jax.vmap
remat, stop_gradient, abstract_eval = jax.checkpoint, jax.lax.stop_gradient, jax.eval_shape
scan, map, cond = jax.lax.scan, jax.lax.map, jax.lax.cond  # pylint: disable=redefined-builtin
fori_loop, psum = jax.lax.fori_loop, jax.lax.psum
disable_jit = jax.disable_jit


def custom_vjp(f, f_fwd, f_bwd, nondiff_argnums=()):
  """`f` with the vector-Jacobian product given by `f_fwd` and `f_bwd` (Trax's signature)."""
  fn = jax.custom_vjp(f, nondiff_argnums=nondiff_argnums)
  fn.defvjp(f_fwd, f_bwd)
  return fn


# ------------------------------------------------------------------ operations

logsumexp = jax.nn.logsumexp
expit = sigmoid = jax.nn.sigmoid
erf = jax.scipy.special.erf
top_k = jax.lax.top_k
sort_key_val = jax.lax.sort_key_val
dynamic_slice, dynamic_slice_in_dim = jax.lax.dynamic_slice, jax.lax.dynamic_slice_in_dim
dynamic_update_slice = jax.lax.dynamic_update_slice
dynamic_update_slice_in_dim = jax.lax.dynamic_update_slice_in_dim
lt = jax.lax.lt


def index_update(x, idx, y):
  """`x` with `x[idx] = y` (a copy; Trax's name for `x.at[idx].set(y)`)."""
  return numpy.asarray(x).at[idx].set(y)


def index_add(x, idx, y):
  """`x` with `y` added at `idx`."""
  return numpy.asarray(x).at[idx].add(y)


def index_min(x, idx, y):
  """`x` with `min(x[idx], y)` at `idx`."""
  return numpy.asarray(x).at[idx].min(y)


def index_max(x, idx, y):
  """`x` with `max(x[idx], y)` at `idx`."""
  return numpy.asarray(x).at[idx].max(y)


# ------------------------------------------------------------------ trees


def _children(obj):
  """The items of a list/tuple or the values of a dict; None for a leaf."""
  if isinstance(obj, dict):
    return list(obj.values())
  return list(obj) if isinstance(obj, (list, tuple)) else None


def _at_level(obj, level):
  """Whether `obj` sits `level` levels above the leaves (0: a leaf; 1: a non-empty
  collection of leaves; ...)."""
  children = _children(obj)
  if level == 0 or children is None:
    return (level == 0) == (children is None)
  return bool(children) and all(_at_level(c, level - 1) for c in children)


def _rebuild(obj, items):
  """A collection of `obj`'s type (dict, list, tuple or namedtuple) holding `items`."""
  if isinstance(obj, dict):
    return dict(zip(obj.keys(), items))
  if isinstance(obj, tuple) and hasattr(obj, '_fields'):
    return type(obj)(*items)
  return type(obj)(items)


def nested_map(f, obj, level=0, ignore_nones=True):
  """`f` applied inside nested dicts/lists/tuples, at `level` above the leaves (Trax's).

  With `ignore_nones`, a part made only of Nones stays None and `f` is not
  called on it.
  """
  if _at_level(obj, level):
    if ignore_nones and tree_flatten(obj) and all(x is None for x in tree_flatten(obj)):
      return None
    return f(obj)
  children = _children(obj)
  if children is None:
    return obj
  return _rebuild(obj, [nested_map(f, c, level, ignore_nones) for c in children])


def nested_map_multiarg(f, *objs, ignore_nones=True):
  """`f` applied leaf by leaf to several structures of the same shape."""
  children = _children(objs[0])
  if children is not None:
    parts = zip(*(_children(o) for o in objs))
    return _rebuild(objs[0], [nested_map_multiarg(f, *p, ignore_nones=ignore_nones) for p in parts])
  return None if ignore_nones and objs[0] is None else f(*objs)


def nested_zip(objs):
  """Equally nested structures zipped into one structure whose leaves are tuples of leaves."""
  return nested_map_multiarg(lambda *leaves: tuple(leaves), *objs, ignore_nones=False)


def nested_stack(objs, axis=0, np_module=np):
  """The corresponding leaves of equally nested structures stacked along `axis`."""
  return nested_map_multiarg(lambda *leaves: np_module.stack(leaves, axis=axis), *objs)


def tree_flatten(tree):
  """The leaves of nested lists, tuples and dicts (values in order), depth first."""
  children = _children(tree)
  if children is None:
    return [tree]
  return [leaf for child in children for leaf in tree_flatten(child)]


def tree_leaves(tree, ignore_nones=True):
  """`tree_flatten(tree)`, without the Nones when `ignore_nones`."""
  return [x for x in tree_flatten(tree) if x is not None or not ignore_nones]


def tree_unflatten(flat, tree, copy_from_tree=None):
  """`(tree with leaves from flat, the unused rest of flat)`: the inverse of `tree_flatten`.

  Parts of `tree` equal to an item of `copy_from_tree` (e.g. `()` for empty
  weights) are kept as they are and take nothing from `flat`.
  """
  if copy_from_tree is not None and any(
      type(tree) is type(c) and tree == c for c in copy_from_tree):
    return tree, flat
  children = _children(tree)
  if children is None:
    return flat[0], flat[1:]
  items = []
  for child in children:
    value, flat = tree_unflatten(flat, child, copy_from_tree)
    items.append(value)
  return _rebuild(tree, items), flat


# ------------------------------------------------------------------ backends


class Backend(enum.Enum):
  """Trax's backend names; minitrax computes with JAX only."""
  JAX = 'jax'
  TFNP = 'tensorflow-numpy'
  NUMPY = 'numpy'


def backend_name():
  """'jax': minitrax's only backend."""
  return Backend.JAX.value


def is_backend(backend_):
  """Whether `backend_` (a `Backend`) is the one in use (only JAX is)."""
  return backend_ == Backend.JAX


def _check_jax(name):
  value = getattr(name, 'value', name)
  if value != 'jax':
    raise ArgumentError(f'fastmath: minitrax computes with JAX only; backend {value!r} is not '
                        "available (use 'jax')")


@contextlib.contextmanager
def use_backend(name):
  """A context in which `name` is the backend: only 'jax' (or `Backend.JAX`) is accepted."""
  _check_jax(name)
  yield


def set_backend(name):
  """Sets the backend: only 'jax' is accepted."""
  _check_jax(name)


def local_device_count():
  """The number of this process's devices."""
  return jax.local_device_count()


def global_device_count():
  """The number of devices of all processes."""
  return jax.device_count()


__all__ = [
    'numpy', 'random', 'jit', 'grad', 'value_and_grad', 'vjp', 'vmap', 'remat', 'stop_gradient',
    'abstract_eval', 'scan', 'map', 'cond', 'fori_loop', 'psum', 'disable_jit', 'custom_vjp',
    'logsumexp', 'expit', 'sigmoid', 'erf', 'top_k', 'sort_key_val', 'dynamic_slice',
    'dynamic_slice_in_dim', 'dynamic_update_slice', 'dynamic_update_slice_in_dim', 'lt',
    'index_update', 'index_add', 'index_min', 'index_max', 'nested_map', 'nested_map_multiarg',
    'nested_zip', 'nested_stack', 'tree_flatten', 'tree_leaves', 'tree_unflatten', 'Backend',
    'backend_name', 'is_backend', 'use_backend', 'set_backend', 'local_device_count',
    'global_device_count'
]
