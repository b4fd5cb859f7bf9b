"""Argument checks shared by layers, models and decoding.

Each raises `ArgumentError` (a `MinitraxError` and a `ValueError`) with a
message that names the caller (`who`), the argument and both the expected and
the actual value, e.g.
`Dense: n_units must be an int >= 1, got 0`. Layers wrap such errors in
`LayerError` when they happen inside `init` or `pure_fn`; constructors call
these checks eagerly.
"""

import numbers

from minitrax.errors import ArgumentError

MODES = ('train', 'eval', 'predict')


def check_mode(who, mode):
  """`mode` must be one of 'train', 'eval', 'predict'."""
  if mode not in MODES:
    raise ArgumentError(f'{who}: mode must be one of {MODES}, got {mode!r}')


def check_int(who, what, value, minimum=1):
  """`value` must be an int (not a bool) of at least `minimum`."""
  if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
    raise ArgumentError(f'{who}: {what} must be an int >= {minimum}, got {value!r}')


def check_rate(who, what, rate):
  """`rate` must be a real number in [0, 1) (a dropout rate)."""
  if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
    raise ArgumentError(f'{who}: {what} must be a number in [0, 1), got {rate!r}')


__all__ = ['MODES', 'check_mode', 'check_int', 'check_rate']
