"""The checkpoint of a Trax 1.4 `training.Loop`: its task runs in one minitrax file.

`<output_dir>/<basename>.pkl.gz` keeps Trax 1.4's name, but holds a minitrax
checkpoint (msgpack, never pickle, not gzipped; see `minitrax.checkpoint`; the
arrays sharded over several processes in a shard folder beside it,
`minitrax.shard_files`) with the fields of the run checkpoint
(`run_checkpoint`): 'weights' and 'state' are the model's, so
`model.init_from_file('model.pkl.gz')` reads the file as it reads Trax's; the
loss trees, 'slots', 'opt_params' and 'input_position' are the first training
task's. Two more fields:

=================  ============================================================
'input_signature'  the model's input signature (as Trax 1.4 records it)
'tasks'            one dict per further training task: its 'loss_weights',
                   'loss_state', 'slots', 'opt_params', 'input_position'
=================  ============================================================

'eval_position' counts the evaluation rounds run. A real Trax checkpoint
(Trax 1.4's `model.pkl.gz` with its `.weights.npy.gz` and `.opt_slotsN.npy.gz`
side files, or Trax 1.2's `model.pkl`) is read by `import_trax` through
`minitrax.trax_import`, without running its pickle.
"""

import os

from minitrax import distributed, shard_files, trax_import
from minitrax.errors import CheckpointError
from minitrax.shapes import signature_to_data
from minitrax.supervised import run_checkpoint
from minitrax.supervised.history import History

__all__ = ['SUFFIX', 'save', 'load', 'import_trax']

SUFFIX = '.pkl.gz'
_TASK_FIELDS = ('loss_weights', 'loss_state', 'slots', 'opt_params', 'input_position')


def save(path, runs, input_signature):
  """Writes the runs of a Loop's tasks to `path` atomically.

  Args:
    path: the file.
    runs: one `RunState` per training task; `runs[0]` gives the model's trees,
      the step, seed, history and eval position (the Loop's current ones).
    input_signature: the model's input signature.
  """
  tree = run_checkpoint.to_tree(runs[0], keep_sharded=True)
  tree['input_signature'] = signature_to_data(input_signature)
  task_trees = [{field: getattr(run, field) for field in _TASK_FIELDS} for run in runs[1:]]
  tree['tasks'] = distributed.to_host(task_trees, keep_sharded=True)
  # As run_checkpoint.save: one writer between barriers, sharded arrays in per-process files.
  shard_files.save(path, tree, runs[0].step)


def load(path, fresh_runs):
  """The runs saved at `path`, checked against `fresh_runs` (the Loop's new runs, one per task).

  Reads a minitrax checkpoint, or a real Trax one (`import_trax`).

  Raises:
    CheckpointError: naming the file and what does not fit.
  """
  if trax_import.looks_like_trax(path):
    return import_trax(path, fresh_runs)
  saved = run_checkpoint.read(path)
  tasks = saved.get('tasks', [])
  if not isinstance(tasks, list) or len(tasks) != len(fresh_runs) - 1:
    held = len(tasks) + 1 if isinstance(tasks, list) else 'an unknown number of'
    raise CheckpointError(f'{path}: the checkpoint holds {held} training task(s) but the Loop '
                          f'has {len(fresh_runs)}')
  runs = [run_checkpoint.restore(saved, path, fresh_runs[0])]
  for entry, fresh in zip(tasks, fresh_runs[1:]):
    if not isinstance(entry, dict):
      raise CheckpointError(f'{path}: field "tasks" must hold dicts, got {type(entry).__name__}')
    runs.append(run_checkpoint.restore({**saved, **entry}, path, fresh))
  return runs


def import_trax(path, fresh_runs):
  """The runs of a real Trax checkpoint: model weights and state, step, history, slots.

  The arrays fill the trees of `fresh_runs` in Trax's order, each checked
  for shape and dtype (`trax_import.fill_tree`). Every task's slots are read
  when the file has them (Trax 1.4: `<base>.opt_slots<i>.npy.gz`; Trax 1.2:
  'slots'), else the fresh ones are kept. The data position is taken to be
  the step.
  """
  ckpt = trax_import.read_checkpoint(path)
  fresh = fresh_runs[0]
  model_weights = trax_import.fill_tree(fresh.model_weights, trax_import.trax_leaves(ckpt.weights),
                                        path, 'weights')
  model_state = trax_import.fill_tree(fresh.model_state, trax_import.state_leaves(ckpt.state), path,
                                      'state')
  step = ckpt.step
  if isinstance(step, bool) or not isinstance(step, int) or step < 0:
    raise CheckpointError(f'{path}: the Trax checkpoint\'s step must be an int >= 0, got {step!r}')
  history = _history(ckpt.history, path)
  runs = []
  for i, run in enumerate(fresh_runs):
    leaves = _slot_leaves(ckpt, path, i)
    slots = run.slots if leaves is None else trax_import.fill_tree(run.slots, leaves, path,
                                                                   f'slots of task {i}')
    runs.append(
        run._replace(model_weights=model_weights, model_state=model_state, slots=slots, step=step,
                     input_position=step, history=history))
  return runs


def _slot_leaves(ckpt, path, index):
  """The flat slot arrays of training task `index` in a Trax checkpoint, or None if absent."""
  raw = ckpt.raw
  if ckpt.version == '1.2' or 'slots' in raw:
    return trax_import.trax_leaves(raw['slots']) if index == 0 and 'slots' in raw else None
  per_task = raw.get('slots_per_task')
  if isinstance(per_task, int) and not isinstance(per_task, bool):
    side = path[:-len(SUFFIX)] if path.endswith(SUFFIX) else path
    side = f'{side}.opt_slots{index}.npy.gz'
    return trax_import.read_npy_records(side) if os.path.exists(side) else None
  if isinstance(per_task, (list, tuple)) and index < len(per_task):
    return trax_import.trax_leaves(per_task[index])
  return None


def _history(saved, path):
  """A `History` from Trax's (1.4: `{'_values': ...}`; 1.2: an object with `to_dict`)."""
  if saved is None:
    return History()
  data = saved.to_dict() if hasattr(saved, 'to_dict') else saved
  values = data.get('_values', {}) if isinstance(data, dict) else None
  if not isinstance(values, dict):
    raise CheckpointError(f'{path}: the Trax history is malformed ({type(data).__name__})')
  return History.from_dict(values, path)
