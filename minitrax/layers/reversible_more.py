"""More reversible plumbing from Trax 1.4: select, reshape, concatenate a pair, print shapes.

Each layer here has no weights and an exact inverse (`reverse`), so it can
stand inside a `ReversibleSerial`:

* `ReversibleSelect(indices)`: a permutation of the top `n_in` stack items;
* `ReversibleReshape(shape1, shape2, n_in=1)`: leading axes `shape1` <->
  `shape2` on each of `n_in` items;
* `ReversibleConcatenatePair()`: `(x, y) -> (xy, xy)` with `xy` their
  concatenation on the last axis; the inverse splits the first copy in half;
* `ReversiblePrintShape(n_in, msg)`: identity that prints shapes.
"""

import math

import jax.numpy as jnp

from minitrax.checks import check_int
from minitrax.errors import ArgumentError
from minitrax.layers.core_more import print_shapes
from minitrax.layers.reversible import ReversibleLayer


def _items(x):
  return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _packed(items):
  return items[0] if len(items) == 1 else tuple(items)


class ReversibleSelect(ReversibleLayer):
  """Reorders the top `n_in` stack items: output i is input `indices[i]`.

  n_in = `n_in` (default `max(indices) + 1`), n_out = `len(indices)`. Every
  input must appear exactly once, so that the inputs can be recovered.

  Args:
    indices: a permutation of `range(n_in)`.
    n_in: number of inputs; default `max(indices) + 1`.
    name: the layer's name; default `ReversibleSelect[...]`.
  """

  def __init__(self, indices, n_in=None, name=None):
    indices = [int(i) for i in indices]
    n_in = max(indices) + 1 if n_in is None else n_in
    check_int('ReversibleSelect', 'n_in', n_in, 1)
    if sorted(indices) != list(range(n_in)):
      raise ArgumentError(f'ReversibleSelect: indices must be a permutation of range(n_in={n_in})'
                          f' to be reversible, got {indices}')
    name = name or f'ReversibleSelect{indices}'.replace(' ', '')
    super().__init__(n_in=n_in, n_out=len(indices), name=name)
    self._indices = indices
    self._reverse_indices = [indices.index(i) for i in range(n_in)]

  def forward(self, x, weights):
    del weights
    items = _items(x)
    return _packed([items[i] for i in self._indices])

  def reverse(self, output, weights=(), state=(), rng=None):
    del weights, state, rng
    items = _items(output)
    return _packed([items[i] for i in self._reverse_indices])


class ReversibleReshape(ReversibleLayer):
  """Reshapes the leading axes `shape1` into `shape2` on each of `n_in` items (and back).

  `(*shape1, *rest) -> (*shape2, *rest)`; `prod(shape1)` must equal
  `prod(shape2)`. n_in = n_out = `n_in`.

  Args:
    shape1: The leading axes of each input (a tuple of ints).
    shape2: What they become: a tuple of ints with the same product.
    n_in: How many stack items are reshaped, each the same way.
  """

  def __init__(self, shape1, shape2, n_in=1):
    self._shape1, self._shape2 = tuple(shape1), tuple(shape2)
    if math.prod(self._shape1) != math.prod(self._shape2):
      raise ArgumentError(f'ReversibleReshape: shape1 {self._shape1} and shape2 {self._shape2} '
                          f'must hold the same number of elements')
    check_int('ReversibleReshape', 'n_in', n_in, 1)
    super().__init__(n_in=n_in, n_out=n_in, name=f'ReversibleReshape_{shape1}_{shape2}')

  def _reshape(self, x, old, new):
    items = []
    for a in _items(x):
      if tuple(a.shape[:len(old)]) != old:
        raise ArgumentError(f'{self.name}: input shape {a.shape} does not start with {old}')
      items.append(jnp.reshape(a, new + a.shape[len(old):]))
    return _packed(items)

  def forward(self, x, weights):
    del weights
    return self._reshape(x, self._shape1, self._shape2)

  def reverse(self, output, weights=(), state=(), rng=None):
    del weights, state, rng
    return self._reshape(output, self._shape2, self._shape1)


class ReversibleConcatenatePair(ReversibleLayer):
  """`(x, y) -> (xy, xy)`, `xy = concatenate([x, y], -1)`; x and y of one shape."""

  def __init__(self):
    super().__init__(n_in=2, n_out=2, name='ReversibleConcatenatePair')

  def forward(self, x, weights):
    del weights
    pair = jnp.concatenate(x, axis=-1)
    return pair, pair

  def reverse(self, output, weights=(), state=(), rng=None):
    del weights, state, rng
    x, y = jnp.split(output[0], 2, axis=-1)
    return x, y


class ReversiblePrintShape(ReversibleLayer):
  """Identity on `n_in` items that prints (and logs) their shapes and dtypes at each trace.

  Args:
    n_in: How many stack items pass through (and are printed).
    msg: Text printed after `PrintShape:` to tell the prints apart.
  """

  def __init__(self, n_in=1, msg=''):
    check_int('ReversiblePrintShape', 'n_in', n_in, 1)
    super().__init__(n_in=n_in, n_out=n_in, name='ReversiblePrintShape')
    self._msg = msg

  def forward(self, x, weights):
    del weights
    print_shapes(self._msg, _items(x))
    return x

  def reverse(self, output, weights=(), state=(), rng=None):
    del weights, state, rng
    return output


__all__ = [
    'ReversibleSelect', 'ReversibleReshape', 'ReversibleConcatenatePair', 'ReversiblePrintShape'
]
