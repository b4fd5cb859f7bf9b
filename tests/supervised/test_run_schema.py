"""The run checkpoint schema: each malformed field of model.pkl is a CheckpointError naming it."""

import numpy as np
import pytest

from minitrax import checkpoint
from minitrax.errors import CheckpointError
from minitrax.layers import Dense, L2Loss, Relu, Serial
from minitrax.optimizers import Momentum
from minitrax.shapes import ShapeDtype
from minitrax.supervised import run_checkpoint
from minitrax.supervised.run_state import new_run

_SIGNATURE = (ShapeDtype((2, 3)), ShapeDtype((2, 2)))


def _fresh(model=None, seed=0):
  model = model or Serial(Dense(4), Relu(), Dense(2))
  return new_run(Serial(model, L2Loss()), Momentum(0.1), _SIGNATURE, seed)


def _saved(tmp_path, **changes):
  """model.pkl of a fresh run with fields changed (None removes a field); its path."""
  tree = run_checkpoint.to_tree(_fresh()._replace(step=7, input_position=7))
  tree['history'] = {'eval': {'metrics/loss': [[5, 0.5], [7, 0.25]]}}
  for key, value in changes.items():
    if value is None:
      del tree[key]
    else:
      tree[key] = value
  path = str(tmp_path / 'model.pkl')
  checkpoint.save(path, tree)
  return path


def _restore(path, model=None):
  return run_checkpoint.restore_or_new(
      path, Serial(model or Serial(Dense(4), Relu(), Dense(2)), L2Loss()), Momentum(0.1),
      _SIGNATURE)


def test_a_well_formed_run_checkpoint_restores_every_field(tmp_path):
  run, restored = _restore(_saved(tmp_path))
  assert restored and (run.step, run.input_position, run.eval_position, run.seed) == (7, 7, 0, 0)
  assert run.history.get('eval', 'metrics/loss') == [(5, 0.5), (7, 0.25)]


def test_an_older_file_without_optional_fields_takes_their_defaults(tmp_path):
  path = _saved(tmp_path, input_position=None, eval_position=None, random_seed=None, rng_impl=None,
                history=None)
  run, _ = _restore(path)
  assert (run.step, run.input_position, run.eval_position, run.seed) == (7, 7, 0, 0)


@pytest.mark.parametrize(
    'changes, message',
    [
        (dict(step=None), 'the checkpoint has no field "step"'),
        (dict(step='abc'), "field \"step\" must be an int from 0 to 2147483647, got str 'abc'"),
        (dict(step=-5), 'field "step" must be an int from 0 to 2147483647, got int -5'),
        (dict(step=True), 'field "step" must be an int from 0 to 2147483647, got bool True'),
        (dict(step=2.0), 'field "step" must be an int from 0 to 2147483647, got float 2.0'),
        (dict(step=2**31), 'field "step" must be an int from 0 to 2147483647, got int 2147483648'),
        (dict(input_position=-1), 'field "input_position" must be an int from 0 to 2147483647'),
        (dict(eval_position=[3]), 'field "eval_position" must be an int .*, got list \\[3\\]'),
        (dict(random_seed=2**63),
         'field "random_seed" must be an int from 0 to 9223372036854775807'),
        (dict(random_seed='7'), "field \"random_seed\" must be an int .*, got str '7'"),
        (dict(rng_impl='rbg'), "field \"rng_impl\" must be 'threefry2x32', got str 'rbg'"),
        (dict(rng_impl=np.zeros(2)),
         'field "rng_impl" must be .*, got ndarray'),  # found by fuzzing
        (dict(weights=None), 'the checkpoint has no field "weights"'),
        (dict(slots=None), 'the checkpoint has no field "slots"'),
        (dict(opt_params=[1.0]),
         'field "opt_params" must be a dict {name: float32 scalar}, got list'),
        (dict(opt_params={'learning_rate': np.float32(0.1)}),
         "mismatched path(.|\\n)*opt_params\\['mass'\\]: missing in saved"),
        (dict(history=[1]), 'field "history" must be a dict {mode: {metric'),
        (dict(history={'eval': [1]}), "field \"history\"\\['eval'\\] must be a dict"),
        (dict(history={'eval': {'m': {}}}),
         "field \"history\"\\['eval'\\]\\['m'\\] must be a list"),
        (dict(history={'eval': {'m': [[1, 0.5], [2, 'x']]}}),
         "field \"history\"\\['eval'\\]\\['m'\\]\\[1\\] must be a \\[step, value\\] "
         "pair .*got list \\[2, 'x'\\]"),
        (dict(history={'eval': {'m': [[-1, 0.5]]}}),
         "\\['m'\\]\\[0\\] must be a \\[step, value\\]"),
        (dict(history={'eval': {'m': [[True, 0.5]]}}),
         "\\['m'\\]\\[0\\] must be a \\[step, value\\]"),
        (dict(history={'eval': {'m': [[1, 0.5, 2]]}}),
         "\\['m'\\]\\[0\\] must be a \\[step, value\\]"),
    ])
def test_a_malformed_field_is_refused_naming_the_file_and_field(tmp_path, changes, message):
  path = _saved(tmp_path, **changes)
  with pytest.raises(CheckpointError, match=f'^{path}: (.|\\n)*{message}'):
    _restore(path)


def test_a_format_field_that_is_an_array_is_not_a_trainer_checkpoint(tmp_path):
  path = _saved(tmp_path, format=np.zeros(2))  # found by fuzzing: `array != str` is ambiguous
  with pytest.raises(CheckpointError, match='model.pkl: not a Trainer checkpoint'):
    _restore(path)


def test_a_tuple_length_mismatch_is_reported_at_its_path(tmp_path):
  path = _saved(tmp_path)
  with pytest.raises(CheckpointError) as info:
    _restore(path, Serial(Dense(4), Relu(), Dense(3), Relu(), Dense(2)))
  lines = str(info.value).split('\n  ')[1:]
  assert lines[:5] == [
      'weights: saved tuple of 3 items, expected tuple of 5 items',
      'weights[2][0]: saved (4, 2) float32, expected (4, 3) float32',
      'weights[2][1]: saved (2,) float32, expected (3,) float32',
      'weights[3]: missing in saved, expected tuple of 0 items',
      'weights[4]: missing in saved, expected tuple of 2 items',
  ]
  assert 'slots[0]: saved tuple of 3 items, expected tuple of 5 items' in lines
  assert 'slots[0][4]: missing in saved, expected tuple of 2 items' in lines


def test_a_nested_length_mismatch_names_the_inner_path():
  saved = {'w': ((np.zeros(2), np.zeros(3)), [np.zeros(1)])}
  expected = {'w': ((np.zeros(2), np.zeros(4), np.zeros(3)), [np.zeros(1)])}
  assert checkpoint.tree_mismatches(saved, expected, root='weights') == [
      "weights['w'][0]: saved tuple of 2 items, expected tuple of 3 items",
      "weights['w'][0][1]: missing in saved, expected (4,) float64",
  ]
