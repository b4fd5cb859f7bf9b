"""Shape assertions (Trax 1.4's `assert_shape.py`) and Trax 1.2's `check_shape_agreement`.

A specification names the axes of each tensor with one character per axis,
tensors separated by commas, as in einsum: `'bld,df'` is two tensors of ranks
3 and 2 whose axes `d` must have equal sizes. A letter names a size, bound at
its first use and checked at the others; a digit is that size itself
(`'b3'`: the last axis has size 3); `'...'` stands for any number of axes
(at most one per tensor) and must cover the same sizes wherever it appears.
`assert_shape` and `AssertFunction` take `'inputs->outputs'` and check both
sides with one set of names, so a letter on both sides ties an input axis to
an output axis. The checks run when the layer is traced (shapes are static),
so they hold under `jax.jit` too.
"""

import functools
import inspect
import string
import sys

import jax
import numpy as np

from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.base import Layer, as_signature, as_stack
from minitrax.layers.combinators import Serial
from minitrax.shapes import signature

_ALLOWED = set(string.ascii_letters + string.digits + '.')


def _parse(spec):
  """`[(before, after, has_ellipsis)]`, one per comma-separated tensor of `spec`."""
  if not isinstance(spec, str):
    raise ArgumentTypeError(f'AssertShape: spec must be a string, got {spec!r}')
  parts = []
  for item in spec.replace('...', '.').split(','):
    bad = sorted(set(item) - _ALLOWED)
    if bad or item.count('.') > 1:
      raise ArgumentError(f'AssertShape: spec {spec!r} may hold letters, digits and one "..." '
                          f'per tensor, got {item!r}')
    before, _, after = item.partition('.')
    parts.append((before, after, '.' in item))
  return parts


def _where(depth=2):
  """`Defined at file:line` of the caller's caller."""
  frame = sys._getframe(depth)  # pylint: disable=protected-access
  return f'Defined at {frame.f_code.co_filename}:{frame.f_lineno}'


class AssertShape(Layer):
  """Checks the shapes of its inputs against `spec` and returns them unchanged.

  n_in = n_out = the number of tensors in `spec` (see the module docstring;
  no '->' here). A mismatch raises `ArgumentError` (wrapped in `LayerError`)
  naming the spec, the shapes, the sizes bound so far and `message`. Hidden
  from `repr` unless `visible_layer`.

  Args:
    spec: e.g. `'...d,df'`.
    message: added to the error; default 'Defined at file:line' of the caller.
    visible_layer: show this layer when printing a model.
  """

  def __init__(self, spec, message=None, visible_layer=False):
    parts = _parse(spec)
    super().__init__(n_in=len(parts), n_out=len(parts), name='AssertShape')
    self._spec, self._parts = spec, parts
    self._message = message if message is not None else f'Defined at {self._created_at}'
    self._visible = bool(visible_layer)
    self._sizes = {}  # name -> size, or '.' -> the axes under '...'; shared when linked
    self._linked = False

  def _create_link(self, other):
    """Shares `other`'s bound sizes: checks outputs against the names its inputs bound."""
    self._sizes = other._sizes  # pylint: disable=protected-access
    self._linked = True

  def _repr_lines(self):
    return super()._repr_lines() if self._visible else []

  def forward(self, x, weights):
    del weights
    if not self._linked:
      self._sizes.clear()
    shapes = [tuple(a.shape) for a in as_stack(x, self.n_in)]

    def fail():
      raise ArgumentError(f'AssertShape: expected {self._spec!r}, got shapes {shapes} with sizes '
                          f'{dict(self._sizes)}. {self._message}')

    def bind(name, size):
      if name.isdigit():
        expected = int(name)
      else:
        expected = self._sizes.setdefault(name, size)
      if expected != size:
        fail()

    for shape, (before, after, ellipsis) in zip(shapes, self._parts):
      fixed = len(before) + len(after)
      if len(shape) < fixed or (not ellipsis and len(shape) != fixed):
        fail()
      for name, size in zip(before + after, shape[:len(before)] + shape[len(shape) - len(after):]):
        bind(name, size)
      if ellipsis:
        bind('.', shape[len(before):len(shape) - len(after)])
    return x


def AssertFunction(specification, layer, message=None):  # pylint: disable=invalid-name
  """`layer` between shape checks of its inputs and outputs: `Serial(check, layer, check)`.

  Args:
    specification: `'inputs->outputs'`, e.g. `'...a->...b'` (module docstring).
    layer: the layer to check.
    message: added to errors; default 'Defined at file:line' of the caller.
  """
  if not isinstance(specification, str) or specification.count('->') != 1:
    raise ArgumentError(f"AssertFunction: specification must be 'inputs->outputs', got "
                        f'{specification!r}')
  message = _where() if message is None else message
  before, after = specification.split('->')
  check_in = AssertShape(before, message=message + ' function input')
  check_out = AssertShape(after, message=message + ' function output')
  check_out._create_link(check_in)  # pylint: disable=protected-access
  return Serial(check_in, layer, check_out)


def _wrap_class(cls, specification, message):
  """`cls` whose instances check their inputs and outputs against `specification`."""
  init, forward_with_state = cls.__init__, cls.forward_with_state
  before, after = specification.split('->')

  @functools.wraps(init)
  def checked_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self._check_in = AssertShape(before, message=message + ' function input')
    self._check_out = AssertShape(after, message=message + ' function output')
    self._check_out._create_link(self._check_in)  # pylint: disable=protected-access

  @functools.wraps(forward_with_state)
  def checked_forward(self, x, weights, state, rng):
    x = self._check_in.forward(x, ())
    y, state = forward_with_state(self, x, weights, state, rng)
    return self._check_out.forward(y, ()), state

  cls.__init__, cls.forward_with_state = checked_init, checked_forward
  return cls


def assert_shape(specification):  # pylint: disable=invalid-name
  """Decorator: a layer class, or a function returning a layer, with its shapes checked.

  >>> from minitrax.layers.base import Fn
  >>> @assert_shape('...a->...a')
  ... def Double():
  ...   return Fn('Double', lambda x: 2 * x)
  >>> Double()(np.ones((2, 3))).shape
  (2, 3)

  A function's layer is wrapped by `AssertFunction`; a class's
  `forward_with_state` checks its inputs before and its outputs after.

  Args:
    specification: `'inputs->outputs'` (see the module docstring).
  """
  if not isinstance(specification, str) or specification.count('->') != 1:
    raise ArgumentError(f"assert_shape: specification must be 'inputs->outputs', got "
                        f'{specification!r}')
  for side in specification.split('->'):
    _parse(side)
  message = _where()

  def decorate(fun_or_cls):
    if inspect.isclass(fun_or_cls):
      return _wrap_class(fun_or_cls, specification, message)

    @functools.wraps(fun_or_cls)
    def checked(*args, **kwargs):
      return AssertFunction(specification, fun_or_cls(*args, **kwargs), message)

    return checked

  return decorate


def _random_values(sig, rng):
  """Random inputs for a signature: 0/1 for integer dtypes, uniform in [-1, 1) for floats."""
  if isinstance(sig, tuple):
    return tuple(_random_values(s, r) for s, r in zip(sig, jax.random.split(rng, len(sig))))
  if np.issubdtype(sig.dtype, np.integer):
    return jax.random.bernoulli(rng, 0.5, sig.shape).astype(sig.dtype)
  return jax.random.uniform(rng, sig.shape, sig.dtype, -1.0, 1.0)


def check_shape_agreement(layer_obj, input_signature):
  """Initialises `layer_obj` and checks `output_signature` against a real call's output shapes.

  Trax 1.2's test helper: runs the layer on random inputs of the signature
  (with the weights and state of `init`) and asserts that the shapes agree.

  Args:
    layer_obj: The layer to check; it is initialised here.
    input_signature: Its input signature: a `ShapeDtype`, array or
      `jax.ShapeDtypeStruct`, or a tuple or list of them for several inputs.

  Returns:
    The output shape (a tuple), or a tuple of shapes for several outputs.

  Raises:
    AssertionError: if the shapes differ.
  """
  sig = as_signature(input_signature)
  weights, state = layer_obj.init(sig)
  expected = layer_obj.output_signature(sig)
  expected = tuple(s.shape for s in expected) if isinstance(expected, tuple) else expected.shape
  rng_x, rng_call = jax.random.split(jax.random.key(0))
  y = layer_obj(_random_values(sig, rng_x), weights=weights, state=state, rng=rng_call)
  got = signature(y)
  got = tuple(s.shape for s in got) if isinstance(got, tuple) else got.shape
  assert expected == got, f'output_signature shapes {expected} != shapes of the call {got}'
  return expected


__all__ = ['AssertShape', 'AssertFunction', 'assert_shape', 'check_shape_agreement']
