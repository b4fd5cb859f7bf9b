"""The schema of a run checkpoint (`model.pkl`): every field's type and range, checked on read.

`run_checkpoint` saves the fields; a file read back is trusted only after
`check_fields`: a missing or malformed field is a `CheckpointError` naming
the file, the field (and, inside 'history', the path) and what was found.

==================  =========  ==============================================
field               required   value
==================  =========  ==============================================
'format'            yes        'minitrax.trainer' (checked by `run_checkpoint.read`)
'step'              yes        int, 0 <= step < 2**31
'weights', 'state'  yes        trees, checked against the model (`tree_mismatches`)
'loss_weights',     yes        trees, checked against the loss layer
'loss_state'
'slots'             yes        tree, checked against the optimizer's
'opt_params'        yes        `{name: float32 scalar}`, the optimizer's names
'history'           no ({})    `{mode: {metric: [[step, value], ...]}}`, mode and
                               metric str, step an int >= 0, value an int or float
'input_position'    no (step)  int, 0 <= position < 2**31
'eval_position'     no (0)     int, 0 <= position < 2**31
'random_seed'       no (0)     int, 0 <= seed < 2**63
'rng_impl'          no         'threefry2x32'
==================  =========  ==============================================

Other fields (a Loop's 'input_signature' and 'tasks', see `loop_checkpoint`)
are checked by their readers. Steps and positions stay below 2**31 because
the compiled step takes them as int32; seeds below 2**63 because
`jax.random.key` takes an int64.
"""

from minitrax.errors import CheckpointError
from minitrax.supervised.run_state import RNG_IMPL

TREES = ('weights', 'state', 'loss_weights', 'loss_state', 'slots', 'opt_params')
COUNTS = {'step': 2**31, 'input_position': 2**31, 'eval_position': 2**31, 'random_seed': 2**63}


def _got(value):
  return f'{type(value).__name__} {value!r:.60}'


def count(saved, key, path, default=None):
  """Field `key` of `saved`, an int in [0, COUNTS[key]); `default` if absent (None: required)."""
  if key not in saved:
    if default is None:
      raise CheckpointError(f'{path}: the checkpoint has no field "{key}"')
    return default
  value = saved[key]
  if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < COUNTS[key]:
    raise CheckpointError(f'{path}: field "{key}" must be an int from 0 to {COUNTS[key] - 1}, '
                          f'got {_got(value)}')
  return value


def check_history(history, path):
  """`history` is `{mode: {metric: [[step, value], ...]}}`; else CheckpointError naming the path."""

  def fail(where, expected, value):
    raise CheckpointError(f'{path}: field "history"{where} must be {expected}, got {_got(value)}')

  if not isinstance(history, dict):
    fail('', 'a dict {mode: {metric: [[step, value], ...]}}', history)
  for mode, metrics in history.items():
    if not isinstance(mode, str) or not isinstance(metrics, dict):
      fail(f'[{mode!r}]', 'a dict {metric: [[step, value], ...]} under a str mode', metrics)
    for metric, pairs in metrics.items():
      where = f'[{mode!r}][{metric!r}]'
      if not isinstance(metric, str) or not isinstance(pairs, list):
        fail(where, 'a list of [step, value] pairs under a str metric name', pairs)
      for i, pair in enumerate(pairs):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        step, value = pair if ok else (None, None)
        ok = ok and type(step) is int and step >= 0 and type(value) in (int, float)
        if not ok:
          fail(f'{where}[{i}]', 'a [step, value] pair (an int >= 0 and a float)', pair)


def check_fields(saved, path):
  """Checks the fields of run checkpoint dict `saved` (read from `path`) against the schema.

  Raises:
    CheckpointError: naming `path` and the first missing or malformed field.
  """
  for key in TREES:
    if key not in saved:
      raise CheckpointError(f'{path}: the checkpoint has no field "{key}"')
  if not isinstance(saved['opt_params'], dict):
    raise CheckpointError(f'{path}: field "opt_params" must be a dict {{name: float32 scalar}}, '
                          f'got {_got(saved["opt_params"])}')
  if 'rng_impl' in saved and not (isinstance(saved['rng_impl'], str) and
                                  saved['rng_impl'] == RNG_IMPL):
    raise CheckpointError(f'{path}: field "rng_impl" must be {RNG_IMPL!r}, '
                          f'got {_got(saved["rng_impl"])}')
  check_history(saved.get('history', {}), path)
  for key in COUNTS:
    count(saved, key, path, default=0 if key != 'step' else None)


__all__ = ['TREES', 'COUNTS', 'count', 'check_history', 'check_fields']
