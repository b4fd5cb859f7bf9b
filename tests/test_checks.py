"""The shared argument checks: one order (who, what, value, ...), exact messages, error classes."""

import numpy as np
import pytest

from minitrax import checks
from minitrax.errors import (ArgumentError, ArgumentTypeError, DataError, OptimizerError,
                             ShapeError)


@pytest.mark.parametrize('check, args, error, message', [
    (checks.check_int,
     ('Dense', 'n_units', 0), ArgumentError, 'Dense: n_units must be an int >= 1, got 0'),
    (checks.check_int, ('MLP', 'n_hidden_layers', -1, 0), ArgumentError,
     'MLP: n_hidden_layers must be an int >= 0, got -1'),
    (checks.check_int,
     ('Dense', 'n_units', True), ArgumentError, 'Dense: n_units must be an int >= 1, got True'),
    (checks.check_int, ('Dense', 'n_units', np.bool_(True)), ArgumentError,
     'Dense: n_units must be an int >= 1, got '),
    (checks.check_int,
     ('Dense', 'n_units', 2.0), ArgumentError, 'Dense: n_units must be an int >= 1, got 2.0'),
    (checks.check_positive_int,
     ('GRU', 'n_units', 2.5), ArgumentError, 'GRU: n_units must be a positive int, got 2.5'),
    (checks.check_int_tuple,
     ('Axial', 'shape',
      (4, 0)), ArgumentError, r'Axial: shape must be a non-empty tuple of ints >= 1, got \(4, 0\)'),
    (checks.check_int_tuple,
     ('Axial', 'shape',
      ()), ArgumentError, r'Axial: shape must be a non-empty tuple of ints >= 1, got \(\)'),
    (checks.check_axis,
     ('Softmax', 'axis', 1.0), ArgumentTypeError, 'Softmax: axis must be an int, got 1.0'),
    (checks.check_axis,
     ('Mean', 'axis', 'x', True), ArgumentTypeError, "Mean: axis must be an int or None, got 'x'"),
    (checks.check_real,
     ('Elu', 'a', '1'), ArgumentTypeError, "Elu: a must be a real number, got '1'"),
    (checks.check_real, ('Elu', 'a', float('inf'), True), ArgumentTypeError,
     'Elu: a must be a finite real number, got inf'),
    (checks.check_non_negative,
     ('Init', 'stddev', -1), ArgumentError, 'Init: stddev must be a number >= 0, got -1'),
    (checks.check_non_negative, ('Init', 'stddev', float('nan')), ArgumentError,
     'Init: stddev must be a number >= 0, got nan'),
    (checks.check_positive,
     ('LayerNorm', 'epsilon', 0), ArgumentError, 'LayerNorm: epsilon must be > 0, got 0'),
    (checks.check_rate, ('Dropout', 'rate', 1.0), ArgumentError,
     r'Dropout: rate must be a number in \[0, 1\), got 1.0'),
    (checks.check_mode, ('Dropout', 'mode', 'test'), ArgumentError,
     r"Dropout: mode must be one of \('train', 'eval', 'predict'\), got 'test'"),
    (checks.check_flag,
     ('Adam', 'amsgrad', 'yes'), ArgumentError, "Adam: amsgrad must be True or False, got 'yes'"),
    (checks.check_callable, ('Dense', 'kernel_initializer', 3, 'a function init(shape, rng)'),
     ArgumentTypeError, r'Dense: kernel_initializer must be a function init\(shape, rng\), got 3'),
    (checks.check_shape,
     ('Init', 'shape', 3), ArgumentTypeError, 'Init: shape must be a tuple of ints, got 3'),
    (checks.check_shape,
     ('Init', 'shape',
      (3, -1)), ArgumentError, r'Init: shape dimensions must be >= 0, got \(3, -1\)'),
])
def test_each_check_names_caller_argument_expected_and_actual(check, args, error, message):
  with pytest.raises(error, match=f'^{message}'):
    check(*args)


def test_the_error_class_is_the_callers():
  with pytest.raises(DataError, match='^copy_inputs: seed must be an int >= 0, got -1$'):
    checks.check_int('copy_inputs', 'seed', -1, 0, error=DataError)
  with pytest.raises(OptimizerError, match='^multifactor: steps_per_cycle must be > 0, got 0$'):
    checks.check_positive('multifactor', 'steps_per_cycle', 0, error=OptimizerError)
  with pytest.raises(ShapeError, match='^ShapeDtype: shape must be a tuple of ints, got 3$'):
    checks.check_shape('ShapeDtype', 'shape', 3, error=ShapeError, type_error=ShapeError)


def test_a_caller_may_go_unnamed():
  with pytest.raises(DataError, match='^eval_batch_size must be an int >= 1, got 0$'):
    checks.check_int(None, 'eval_batch_size', 0, error=DataError)


def test_checks_that_convert_return_the_value():
  assert checks.check_int('f', 'n', np.int64(3)) == 3 and type(checks.check_int('f', 'n', 3)) is int
  assert checks.check_positive_int('f', 'n', np.int32(2)) == 2
  assert checks.check_int_tuple('f', 's', [2, 3]) == (2, 3)
  assert checks.check_flag('f', 'b', np.bool_(True)) is True
  assert checks.check_shape('f', 'shape', np.array([2, 3])) == (2, 3)
  assert checks.check_axis('f', 'axis', None, allow_none=True) is None
  for check, value in [(checks.check_real, 0.5), (checks.check_non_negative, 0),
                       (checks.check_positive, 1e-9), (checks.check_rate, 0.0),
                       (checks.check_mode, 'predict'), (checks.check_callable, len)]:
    args = ('f', 'x', value) + (('a function',) if check is checks.check_callable else ())
    assert check(*args) is None
