"""Argument checks shared by every module: one set, one parameter order.

Every check is called as `check_x(who, what, value, ..., error=...)`:

* `who` names the caller (a layer, model, function or stream), e.g. `'Dense'`;
* `what` names the argument, e.g. `'n_units'`;
* `value` is the argument itself;
* `error` is the class raised, a `MinitraxError` of the caller's room:
  `ArgumentError` (a `ValueError`) by default, `ArgumentTypeError` (a
  `TypeError`) for checks of a kind, `DataError` in `minitrax.data`,
  `OptimizerError` in optimizers and schedules.

The message names the caller, the argument, what it must be and what it was:
`Dense: n_units must be an int >= 1, got 0`. Checks that convert return the
value converted (`check_int` an `int`, `check_flag` a `bool`, ...). Layers
wrap such errors in `LayerError` when they happen inside `init` or
`pure_fn`; constructors call these checks eagerly.
"""

import math
import numbers

import numpy as np

from minitrax.errors import ArgumentError, ArgumentTypeError

MODES = ('train', 'eval', 'predict')


def _fail(who, what, expected, value, error):
  """Raises `error('<who>: <what> must be <expected>, got <value!r>')`."""
  prefix = f'{who}: ' if who else ''  # Some data-stream arguments are named without a caller.
  raise error(f'{prefix}{what} must be {expected}, got {value!r}')


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(who, what, value, minimum=1, error=ArgumentError):
  """`value` as an `int` if it is an int (not a bool) >= `minimum`.

  Args:
    who: the layer, function or flag named in the error, e.g. 'Dense'.
    what: the argument named in the error, e.g. 'n_units'.
    value: the value checked.
    minimum: the least value allowed.
    error: the `MinitraxError` subclass raised (default `ArgumentError`).
  """
  if not _is_int(value) or value < minimum:
    _fail(who, what, f'an int >= {minimum}', value, error)
  return int(value)


def check_positive_int(who, what, value, error=ArgumentError):
  """`value` as an `int` if it is an int (not a bool) >= 1 ("a positive int")."""
  if not _is_int(value) or value < 1:
    _fail(who, what, 'a positive int', value, error)
  return int(value)


def check_int_tuple(who, what, value, error=ArgumentError):
  """`value` (a tuple or list) as a non-empty tuple of ints >= 1.

  A `value` that is not a tuple or list is reported as `None`.
  """
  values = tuple(value) if isinstance(value, (tuple, list)) else None
  if not values or not all(_is_int(v) and v >= 1 for v in values):
    _fail(who, what, 'a non-empty tuple of ints >= 1', values, error)
  return tuple(int(v) for v in values)


def check_axis(who, what, value, allow_none=False, error=ArgumentTypeError):
  """`value` must be an int (an axis, any sign), or None if `allow_none`."""
  if value is None and allow_none:
    return
  if not _is_int(value):
    _fail(who, what, 'an int or None' if allow_none else 'an int', value, error)


def check_real(who, what, value, finite=False, error=ArgumentTypeError):
  """`value` must be a real number (not a bool); also finite if `finite`.

  Args:
    who: the layer, function or flag named in the error, e.g. 'Dense'.
    what: the argument named in the error, e.g. 'n_units'.
    value: the value checked.
    finite: also refuse infinities and NaN.
    error: the `MinitraxError` subclass raised (default `ArgumentTypeError`).
  """
  if not _is_real(value) or (finite and not math.isfinite(value)):
    _fail(who, what, 'a finite real number' if finite else 'a real number', value, error)


def check_non_negative(who, what, value, error=ArgumentError):
  """`value` must be a real number (not a bool, not NaN) >= 0."""
  if not _is_real(value) or not value >= 0:
    _fail(who, what, 'a number >= 0', value, error)


def check_positive(who, what, value, error=ArgumentError):
  """`value` must compare > 0 (its type is the caller's to check).

  Args:
    who: the layer, function or flag named in the error, e.g. 'Dense'.
    what: the argument named in the error, e.g. 'n_units'.
    value: the value checked.
    error: the `MinitraxError` subclass raised (default `ArgumentError`).
  """
  if not value > 0:
    _fail(who, what, '> 0', value, error)


def check_rate(who, what, value, error=ArgumentError):
  """`value` must be a real number in [0, 1) (a dropout rate)."""
  if not _is_real(value) or not 0 <= value < 1:
    _fail(who, what, 'a number in [0, 1)', value, error)


def check_mode(who, what, value, error=ArgumentError):
  """`value` must be one of `MODES`: 'train', 'eval', 'predict'."""
  if value not in MODES:
    _fail(who, what, f'one of {MODES}', value, error)


def check_flag(who, what, value, error=ArgumentError):
  """`value` as a `bool` if it is a Python or NumPy bool."""
  if not isinstance(value, (bool, np.bool_)):
    _fail(who, what, 'True or False', value, error)
  return bool(value)


def check_callable(who, what, value, expected, error=ArgumentTypeError):
  """`value` must be callable; `expected` says what it should be, e.g. 'a function f(x)'.

  Args:
    who: the layer, function or flag named in the error, e.g. 'Dense'.
    what: the argument named in the error, e.g. 'n_units'.
    value: the value checked.
    expected: what the value should be, shown in the error.
    error: the `MinitraxError` subclass raised (default `ArgumentTypeError`).
  """
  if not callable(value):
    _fail(who, what, expected, value, error)


def check_shape(who, what, value, error=ArgumentError, type_error=ArgumentTypeError):
  """`value` as a tuple of non-negative Python ints (a scalar is not a shape).

  Raises `type_error` if `value` is not iterable or holds non-integers, and
  `error` if a dimension is negative.
  """
  try:
    dims = tuple(int(d) for d in value)
  except TypeError as e:
    raise type_error(f'{who}: {what} must be a tuple of ints, got {value!r}') from e
  if any(d < 0 for d in dims):
    raise error(f'{who}: {what} dimensions must be >= 0, got {dims}')
  return dims


__all__ = [
    'MODES',
    'check_int',
    'check_positive_int',
    'check_int_tuple',
    'check_axis',
    'check_real',
    'check_non_negative',
    'check_positive',
    'check_rate',
    'check_mode',
    'check_flag',
    'check_callable',
    'check_shape',
]
