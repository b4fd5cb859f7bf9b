"""Trax 1.2's `trax.math`: the same functions as `minitrax.fastmath` (its later name).

`from trax import math` / `from trax.math import numpy as np` become
`from minitrax import math` / `from minitrax.math import numpy as np`.
"""

from minitrax.fastmath import (
    Backend, abstract_eval, backend_name, cond, custom_vjp, disable_jit, dynamic_slice,
    dynamic_slice_in_dim, dynamic_update_slice, dynamic_update_slice_in_dim, erf, expit, fori_loop,
    global_device_count, grad, index_add, index_max, index_min, index_update, is_backend, jit,
    local_device_count, logsumexp, lt, nested_map, nested_map_multiarg, nested_stack, nested_zip,
    numpy, psum, random, remat, scan, set_backend, sigmoid, sort_key_val, stop_gradient, top_k,
    tree_flatten, tree_leaves, tree_unflatten, use_backend, value_and_grad, vjp, vmap)
from minitrax.fastmath import map  # pylint: disable=redefined-builtin

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
