"""Layers from plain functions: `Fn` (both Trax generations), `PureLayer` and `layer`.

* Trax 1.4: `Fn(name, f, n_out=1)`: `n_in` is the number of positional
  parameters of `f` (parameters with defaults excluded).
* Trax 1.2: `Fn(f, n_in=None, n_out=None)`: `n_in` as above unless given;
  `n_out`, unless given, is found by calling `f` once on `n_in` arrays of
  shape (1, 1).

`Fn` tells the two apart by its first argument: a string (a name) or a
function. `@layer(n_in=1, n_out=1, new_weights_fn=None)` is Trax 1.2's
decorator turning `f(x, weights, **kwargs)` into a layer class whose
constructor takes the keyword arguments of `f`.

>>> import jax.numpy as jnp
>>> double = Fn('Double', lambda x: 2 * x)
>>> double
Double
>>> double(jnp.array([1.0, 2.0])).tolist()
[2.0, 4.0]
>>> Fn('Pair', lambda a, b: (a + b, a - b), n_out=2)
Pair_in2_out2
>>> Fn(lambda a, b: (a + b, a - b)).n_out    # Trax 1.2's form counts the outputs
2
"""

import inspect

import numpy as np

from minitrax.checks import check_int
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import EMPTY, Layer


def _n_positional(who, f):
  """The positional parameters of `f` without defaults; `f` may not take `*args`/`**kwargs`."""
  try:
    params = inspect.signature(f).parameters.values()
  except (TypeError, ValueError) as e:
    raise ArgumentError(f'{who}: cannot read the parameters of {f!r}') from e
  if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
    raise ArgumentError(f'{who}: f must have a fixed number of positional parameters')
  return sum(1 for p in params if p.default is p.empty and p.kind != p.KEYWORD_ONLY)


class PureLayer(Layer):
  """A layer without weights computing `forward_fn(inputs)` (Trax 1.4's class).

  Args:
    forward_fn: a function of the layer's inputs packed as the stack gives
      them (one array for `n_in == 1`, else a tuple); returns the outputs.
    n_in, n_out: the layer's arities.
    name: the layer's name.
  """

  def __init__(self, forward_fn, n_in=1, n_out=1, name='PureLayer'):
    if not callable(forward_fn):
      raise ArgumentTypeError(f'PureLayer {name}: forward_fn must be callable, got '
                              f'{type(forward_fn).__name__}')
    super().__init__(n_in=n_in, n_out=n_out, name=name)
    self._forward_fn = forward_fn

  def forward(self, x, weights):
    del weights
    y = self._forward_fn(x)
    return () if y is None else y


class _Function(Layer):
  """The layer of `Fn`: `f(*inputs)`."""

  def __init__(self, name, f, n_in, n_out):
    super().__init__(n_in=n_in, n_out=n_out, name=name)
    self._f = f

  def forward(self, x, weights):
    del weights
    return self._f(*x) if self._n_in != 1 else self._f(x)


def Fn(name, f=None, n_out=None, n_in=None):  # pylint: disable=invalid-name
  """A layer without weights that applies a function to its inputs.

  Trax 1.4's form `Fn(name, f, n_out=1)` and Trax 1.2's `Fn(f, n_in=None,
  n_out=None)` (see the module docstring).

  Args:
    name: the layer's name (1.4); or, in the 1.2 form, the function `f`.
    f: the function of the `n_in` inputs, as positional arguments; returns one
      array or a tuple of `n_out` arrays (1.4 form).
    n_out: number of outputs (default 1; in the 1.2 form found by a call).
    n_in: number of inputs (1.2 form); default the positional parameters of f.

  Returns:
    The layer, `n_in -> n_out`.
  """
  trax12 = callable(name) and not isinstance(name, str)
  if trax12:  # Fn(f, n_in=None, n_out=None)
    if f is not None:
      n_in = f  # Fn(f, n_in, n_out) given positionally
    f, name = name, getattr(name, '__name__', 'Fn')
    name = 'Fn' if name == '<lambda>' else name
  elif n_out is None:
    n_out = 1
  if not isinstance(name, str):
    raise ArgumentTypeError(f'Fn: the first argument must be a name (str) or a function, '
                            f'got {type(name).__name__}')
  if not callable(f):
    raise ArgumentTypeError(f'Fn {name}: f must be callable, got {type(f).__name__}')
  n_in = _n_positional(f'Fn {name}', f) if n_in is None else check_int(
      f'Fn {name}', 'n_in', n_in, 0)
  n_out = _count_outputs(name, f, n_in) if n_out is None else check_int(
      f'Fn {name}', 'n_out', n_out, 0)
  return _Function(name, f, n_in, n_out)


def _count_outputs(name, f, n_in):
  """`f`'s number of outputs, from one call on `n_in` arrays of shape (1, 1) (Trax 1.2)."""
  try:
    y = f(*[np.zeros((1, 1), np.float32) for _ in range(n_in)])
  except Exception as e:  # pylint: disable=broad-except
    raise ArgumentError(f'Fn {name}: n_out is not given and calling f on {n_in} arrays of '
                        f'shape (1, 1) to count its outputs failed ({type(e).__name__}: {e}); '
                        'pass n_out') from e
  return len(y) if isinstance(y, (tuple, list)) else 1


def layer(n_in=1, n_out=1, new_weights_fn=None):
  """Trax 1.2's decorator: `f(x, weights, **kwargs)` becomes a layer class named `f`.

  The class's constructor takes keyword arguments, passed on to `f` (and to
  `new_weights_fn(input_signature, **kwargs)`, which makes the weights; none
  if it is None). The inputs reach `f` packed as the stack gives them.

  Args:
    n_in, n_out: How many inputs the layer takes from the stack and how many
      outputs `f` returns (`f` returning None counts as no outputs).
    new_weights_fn: None (a layer without weights), or a function
      `(input_signature, **kwargs) -> weights` called by `init`.

  >>> @layer()
  ... def AddConstant(x, weights, constant=1.0):
  ...   del weights
  ...   return x + constant
  >>> AddConstant(constant=2.0)(np.ones(2)).tolist()
  [3.0, 3.0]
  """

  def build(f):

    def __init__(self, **kwargs):
      Layer.__init__(self, n_in=n_in, n_out=n_out, name=f.__name__)
      self._kwargs = kwargs

    def init_weights_and_state(self, input_signature, rng):
      del rng
      if new_weights_fn is None:
        return EMPTY, EMPTY
      return new_weights_fn(input_signature, **self._kwargs), EMPTY

    def forward(self, x, weights):
      y = f(x, weights=weights, **self._kwargs)
      return () if y is None else y

    return type(
        f.__name__, (Layer,), {
            '__init__': __init__, 'init_weights_and_state': init_weights_and_state,
            'forward': forward, '__doc__': f.__doc__, '__module__': f.__module__
        })

  return build


__all__ = ['Fn', 'PureLayer', 'layer']
