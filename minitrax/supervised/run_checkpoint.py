"""The run checkpoint: a `RunState` as a minitrax checkpoint file, and back.

`output_dir/model.pkl` keeps Trax's file name but is a minitrax msgpack
checkpoint (never a pickle, see `minitrax.checkpoint`) holding one dict:

==================  ==========================================================
field               value
==================  ==========================================================
'format'            'minitrax.trainer'
'step'              int >= 0: training steps done
'weights', 'state'  the model's trees (so `layer.init_from_file` reads the file)
'loss_weights',     the loss layer's trees
'loss_state'
'slots'             the optimizer's slots
'opt_params'        `{name: float32 scalar}`
'history'           `History.to_dict()`
'input_position'    int >= 0: the next training batch
'eval_position'     int >= 0: the next evaluation batch
'random_seed'       int >= 0
'rng_impl'          'threefry2x32'
==================  ==========================================================

In a run of several processes with arrays sharded over them
(`sharding='fsdp'`), those arrays are saved in pieces, each process its own,
in a shard folder beside the file that the file names (`minitrax.shard_files`;
numbered, best and pruned checkpoints keep or lose theirs with them); reading
puts them together, so the dict read is the same either way.

`restore` checks every field (the schema and its ranges: `run_schema`): a
missing or malformed one, or trees whose structure, shapes or dtypes differ
from the model's, is a `CheckpointError` naming the file and the field (for
trees, every mismatched path).
"""

import os
import re

from minitrax import checkpoint
from minitrax import distributed
from minitrax import shard_files
from minitrax.errors import CheckpointError
from minitrax.supervised.evaluation import is_best
from minitrax.supervised.history import History
from minitrax.supervised.run_schema import check_fields, count
from minitrax.supervised.run_state import RNG_IMPL, check_seed, new_run
from minitrax.supervised.summaries import log

FORMAT = 'minitrax.trainer'
_TREES = {
    'weights': 'model_weights', 'state': 'model_state', 'loss_weights': 'loss_weights',
    'loss_state': 'loss_state', 'slots': 'slots', 'opt_params': 'opt_params'
}
_COUNTS = {
    'step': 'step', 'input_position': 'input_position', 'eval_position': 'eval_position',
    'random_seed': 'seed'
}


def to_tree(run, keep_sharded=False):
  """The checkpoint dict of `run` (arrays fetched to the host).

  With `keep_sharded`, arrays sharded over several processes stay as they
  are, for `shard_files.save` to write in pieces (`distributed.to_host`).
  """
  trees = distributed.to_host({key: getattr(run, field) for key, field in _TREES.items()},
                              keep_sharded=keep_sharded)
  return {
      'format': FORMAT, **trees, 'step': run.step, 'history': run.history.to_dict(),
      'input_position': run.input_position, 'eval_position': run.eval_position,
      'random_seed': run.seed, 'rng_impl': RNG_IMPL
  }


def save(path, run):
  """Writes `run` to `path` atomically (`shard_files.save`); every process calls it.

  In a run of several processes, process 0 alone writes `path`, between
  barriers of all processes; each process writes its own pieces of the
  arrays sharded over processes into a shard folder that `path` names.
  """
  shard_files.save(path, to_tree(run, keep_sharded=True), run.step)


def read(path):
  """The checkpoint dict saved at `path`, or None if there is no file.

  Raises:
    CheckpointError: the file is not a minitrax checkpoint, or not one of a
      training run.
  """
  if not os.path.exists(path):
    return None
  saved = checkpoint.load(path)
  if not isinstance(saved, dict) or not (isinstance(saved.get('format'), str) and
                                         saved['format'] == FORMAT):
    raise CheckpointError(f'{path}: not a Trainer checkpoint (no "format": "{FORMAT}"); '
                          'move it away or pick another output_dir')
  return saved


def saved_seed(saved, path='<checkpoint>'):
  """The random seed recorded in a checkpoint dict (0 for files without one); checked."""
  return count(saved, 'random_seed', path, default=0)


def restore(saved, path, fresh):
  """The `RunState` of checkpoint dict `saved`, checked against `fresh` (the new run's).

  Args:
    saved: from `read`.
    path: the file, for messages.
    fresh: a `RunState` of the same model and optimizer; its trees give the
      expected structure, shapes and dtypes.

  The optimizer's hyperparameters stay `fresh`'s (those of the optimizer as
  now configured); the saved ones are only checked to have the same names.

  Raises:
    CheckpointError: naming the file and each malformed field or mismatched path.
  """
  check_fields(saved, path)
  _check_trees(saved, path, fresh)
  counts = {field: count(saved, key, path) for key, field in _COUNTS.items() if key in saved}
  counts.setdefault('input_position', counts['step'])
  history = History.from_dict(saved.get('history', {}), path)
  trees = {field: saved[key] for key, field in _TREES.items() if key != 'opt_params'}
  return fresh._replace(**trees, **counts, history=history)


class Checkpoints:
  """Where and when a run's checkpoints are written, and which numbered ones are kept.

  `model.pkl` is written at each epoch's end and is never deleted. Numbered
  checkpoints `model_<step>.pkl` are written at the steps of `steps`, at every
  `permanent_every`-th step (these are permanent: never deleted) and, when
  `keep` is set, at each epoch's end, after which only the newest `keep`
  numbered ones that are not permanent are kept (the one just written always
  among them). With `keep=None` no numbered checkpoint is ever deleted.

  Args:
    output_dir: the run's folder, or None (then nothing is saved).
    enabled: False saves nothing.
    steps: steps at which `model_{step}.pkl` is also kept.
    highest, lowest: metric names; the checkpoint with the highest (lowest)
      eval value so far is kept as `highest_<m>.pkl` (`lowest_<m>.pkl`).
    keep: int >= 1 or None (see above).
    permanent_every: int >= 1 or None (see above).
  """

  def __init__(self, output_dir, enabled=True, steps=(), highest=None, lowest=None, keep=None,
               permanent_every=None):
    self.output_dir = os.path.expanduser(output_dir) if output_dir else None
    self.enabled = bool(enabled and self.output_dir)
    self.steps = set(steps or ())
    self._best = {'highest': highest, 'lowest': lowest}
    self.keep, self.permanent_every = keep, permanent_every

  def path(self, prefix='model'):
    """`<output_dir>/<prefix>.pkl`; None without an output folder."""
    return os.path.join(self.output_dir, f'{prefix}.pkl') if self.output_dir else None

  def is_permanent(self, step):
    """Whether `model_<step>.pkl` is written mid-epoch if need be and never deleted."""
    return step in self.steps or bool(self.permanent_every and step % self.permanent_every == 0)

  def breaks(self, first, n_steps):
    """The offsets from step `first` inside an epoch of `n_steps` at which to stop and save."""
    return [i for i in range(1, n_steps) if self.is_permanent(first + i)]

  def save(self, run, keep=False, prefix='model'):
    """Writes `<prefix>.pkl`, and `<prefix>_<step>.pkl` too if `keep`."""
    save(self.path(prefix), run)
    if keep:
      save(self.path(f'{prefix}_{run.step}'), run)

  def at_step(self, run):
    """After a training step: keeps `model_{step}.pkl` if the step is a permanent one."""
    if self.enabled and self.is_permanent(run.step):
      self.save(run, keep=True)

  def at_epoch_end(self, run):
    """After an epoch's evaluation: `model.pkl` (and numbered ones), and the best if best."""
    if not self.enabled:
      return
    numbered = self.keep is not None and not self.is_permanent(run.step)
    self.save(run, keep=numbered)
    if numbered:
      self.prune(run.step)
    for kind, metric in self._best.items():
      if metric is not None and is_best(run.history, metric, run.step, kind == 'highest'):
        self.save(run, prefix=f'{kind}_{metric}')

  def numbered(self):
    """`{step: path}` of the `model_<step>.pkl` files in the output folder."""
    found = {}
    for name in os.listdir(self.output_dir):
      match = re.fullmatch(r'model_(\d+)\.pkl', name)
      if match:
        found[int(match.group(1))] = os.path.join(self.output_dir, name)
    return found

  def prune(self, latest):
    """Deletes numbered checkpoints of steps < `latest` beyond the newest `keep` (not permanent).

    Their shard folders (`shard_files`) go with them.

    Files of steps after `latest` (from another run that went further) are left alone.
    """
    candidates = sorted(
        (step for step in self.numbered() if step < latest and not self.is_permanent(step)),
        reverse=True)
    for step in candidates[self.keep - 1:]:
      shard_files.remove(self.path(f'model_{step}'))


def restore_or_new(path, model_with_loss, optimizer, signature, random_seed=None, clean=True):
  """`(run, restored)`: the run saved at `path` if there is a file, else a new one.

  The model's layers are initialised either way (they hold the new weights).
  With `clean`, temporary files that killed saves left beside `path` are
  removed (not for a file of another run, which may be saving now; the caller
  holds the folder's lock, `run_dir`), and a folder without a checkpoint logs
  `No checkpoint in <dir>; initialising`.

  Args:
    path: the run's `model.pkl`, or None for no file.
    model_with_loss, optimizer, signature: as for `run_state.new_run`.
    random_seed: int >= 0, or None for the saved run's seed (0 for a new run).
    clean: whether `path` is in this run's own folder.
  """
  saved = None
  if path and clean and distributed.is_main():
    checkpoint.remove_temporaries(os.path.dirname(path) or '.', '*.pkl')
  if path and os.path.exists(path):
    saved = read(path)
  elif path and clean and distributed.is_main():
    log(f'No checkpoint in {os.path.dirname(path) or "."}; initialising')
  seed = random_seed if random_seed is not None else saved_seed(saved, path) if saved else 0
  run = new_run(model_with_loss, optimizer, signature, check_seed(seed))
  if saved is None:
    return run, False
  run = restore(saved, path, run)
  if distributed.is_main():
    log(f'Model loaded from {path} at step {run.step}')
  return run, True


def _check_trees(saved, path, fresh):
  problems = []
  for key, field in _TREES.items():
    problems += checkpoint.tree_mismatches(saved[key], getattr(fresh, field), root=key)
  if problems:
    raise CheckpointError(f'{path}: the checkpoint does not fit this model and optimizer (it is '
                          'another run\'s: to start a new run, give a new output_dir, on the '
                          'command line --output_dir); '
                          f'{len(problems)} mismatched path(s):\n  ' + '\n  '.join(problems))


__all__ = [
    'FORMAT', 'to_tree', 'save', 'read', 'saved_seed', 'restore', 'restore_or_new', 'Checkpoints'
]
