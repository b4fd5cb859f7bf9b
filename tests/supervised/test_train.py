"""Tests for minitrax.supervised.train: epochs, resuming, and exact resume after SIGKILL."""

import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minitrax import checkpoint
from minitrax.data import copy_inputs
from minitrax.errors import ConfigError
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.optimizers import Adam
from minitrax.supervised.summaries import read_metrics
from minitrax.supervised.train import Objective, Plan, epochs, train

HERE = os.path.dirname(os.path.abspath(__file__))
RESUME_RUN = os.path.join(HERE, 'resume_run.py')


def _trax_epochs(eval_frequency):
  return [1, eval_frequency - 1] + [eval_frequency] * 100


@pytest.mark.parametrize(
    'total,skip,expected',
    [
        (1000, 0, [1, 99] + [100] * 9),
        (250, 0, [1, 99, 100, 50]),
        (250, 1, [99, 100, 50]),
        (250, 150, [50, 50]),  # stopped in the middle of the 3rd epoch
        (250, 100, [100, 50]),  # stopped at an epoch's end
        (250, 250, []),
        (1, 0, [1]),
    ])
def test_epochs_follow_trax(total, skip, expected):
  assert list(epochs(total, skip, _trax_epochs(100))) == expected


def test_epochs_without_eval_and_with_frequency_one():
  assert list(epochs(30, 10, [30])) == [20]
  assert list(epochs(3, 0, _trax_epochs(1))) == [1, 1, 1]


def tiny(mode):
  del mode
  return Serial(Embedding(8, 8), Dense(8), LogSoftmax())


def test_train_runs_epochs_logs_and_resumes(tmp_path, capsys):
  out = str(tmp_path)
  kwargs = dict(inputs=copy_inputs(4, 8, 6), optimizer=Adam, objective=Objective(has_weights=True))
  state = train(out, tiny, plan=Plan(steps=3, eval_steps=1, eval_frequency=2), **kwargs)
  log = capsys.readouterr().out
  assert state.step == 3
  assert log.startswith(f'No checkpoint in {out}; initialising\n'
                        'Step      0: Starting training using 1 devices\n'
                        'Step      0: Total number of trainable weights: 136\n\n'
                        'Step      1: Ran 1 train steps in ')
  assert 'Step      2: Ran 1 train steps in ' in log and 'Step      3: Ran 1 train steps' in log
  assert log.endswith('Step      3: Finished evaluation\nStep      3: Training done\n')
  assert open(os.path.join(out, 'config.gin'),
              encoding='utf-8').read().startswith('train.model = @tiny\n')
  state = train(out, tiny, plan=Plan(steps=6, eval_steps=1, eval_frequency=2), **kwargs)
  log = capsys.readouterr().out
  assert state.step == 6
  assert f'Model loaded from {os.path.join(out, "model.pkl")} at step 3\n' in log
  assert re.findall(r'Ran (\d+) train steps', log) == ['1', '2']  # the rest of epoch 3, epoch 4
  steps = [
      r['step'] for r in read_metrics(os.path.join(out, 'metrics.jsonl'), 'train', 'training/loss')
  ]
  assert steps == [1, 2, 3, 4, 5, 6]


def test_train_requires_model_and_inputs(tmp_path):
  with pytest.raises(
      ConfigError, match=r'train: no model given; pass model=\.\.\. \(on the '
      r'command line --model=MLP'):
    train(str(tmp_path), inputs=copy_inputs())
  with pytest.raises(ConfigError, match=r'train: no inputs given'):
    train(str(tmp_path), tiny)
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize('make,message', [
    (lambda: Plan(steps=0), 'train: steps must be an int >= 1, got 0'),
    (lambda: Plan(steps='abc'), "train: steps must be an int >= 1, got 'abc'"),
    (lambda: Plan(eval_frequency=-5), 'train: eval_frequency must be an int >= 0, got -5'),
    (lambda: Plan(checkpoints_at=[3, 0]), 'train: checkpoints_at must be an int >= 1, got 0'),
    (lambda: Objective(has_weights='yes'), "train: has_weights must be True or False, got 'yes'"),
    (lambda: Objective(id_to_mask=-1), 'train: id_to_mask must be an int >= 0, got -1'),
])
def test_settings_are_checked_when_made(make, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    make()


def test_plan_gives_trax_epochs():
  assert list(epochs(250, 0, Plan(250, eval_frequency=100).epoch_steps())) == [1, 99, 100, 50]
  assert list(epochs(250, 0, Plan(250, eval_steps=0).epoch_steps())) == [250]


# ------------------------------------------------------------------ exact resume after SIGKILL


def _saved_step(output_dir):
  path = os.path.join(output_dir, 'model.pkl')
  return checkpoint.load(path)['step'] if os.path.exists(path) else None


def _run(output_dir, *options, wait_for=None, saved_step=None):
  """Runs resume_run.py; with `wait_for`, SIGKILLs it once that marker file appears.

  With `saved_step`, it also waits until model.pkl holds that step before the kill.
  """
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  command = [sys.executable, RESUME_RUN, output_dir, *options]
  if wait_for is None:
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'tensorflow imported: False' in out.stdout
    return out.stdout
  process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
  deadline = time.time() + 300
  while not os.path.exists(wait_for) or saved_step not in (None, _saved_step(output_dir)):
    assert process.poll() is None, process.stderr.read()[-3000:]
    assert time.time() < deadline, 'the run never reached the kill point'
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  process.stderr.close()
  return None


def _final(output_dir):
  saved = checkpoint.load(os.path.join(output_dir, 'model.pkl'))
  log = read_metrics(os.path.join(output_dir, 'metrics.jsonl'))
  return saved, [(r['step'], r['mode'], r['metric'], r['value']) for r in log]


def _assert_same(saved, reference):
  assert saved['step'] == reference['step'] == 12
  for key in ('weights', 'state', 'slots'):
    assert not checkpoint.tree_mismatches(saved[key], reference[key])
    for a, b in zip(_leaves(saved[key]), _leaves(reference[key])):
      np.testing.assert_array_equal(a, b)  # bit for bit
  assert saved['history'] == reference['history']


def _leaves(tree):
  if isinstance(tree, (list, tuple)):
    return [leaf for item in tree for leaf in _leaves(item)]
  if isinstance(tree, dict):
    return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
  return [tree]


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp('reference'))
  _run(output_dir)
  return _final(output_dir)


def test_exact_resume_after_sigkill_during_training(tmp_path, reference):
  out, marker = str(tmp_path / 'run'), str(tmp_path / 'marker')
  # Epochs of 1, 5 and 6 steps; killed in the 3rd, waiting for the batch of step 10.
  _run(out, '--hang-at-batch', '9', marker, wait_for=marker, saved_step=6)
  assert 'Model loaded from' in _run(out)
  saved, log = _final(out)
  _assert_same(saved, reference[0])
  assert log == reference[1]
  assert [s for s, _, metric, _ in log if metric == 'training/loss'] == list(range(1, 13))


def test_exact_resume_after_sigkill_during_a_save(tmp_path, reference):
  out, marker = str(tmp_path / 'run'), str(tmp_path / 'marker')
  # model.pkl is written at steps 0, 1, 6 and 12: hang in the 4th write, before its rename.
  _run(out, '--hang-at-save', '4', marker, wait_for=marker)
  assert glob.glob(os.path.join(out, '.model.pkl.*.tmp'))
  assert _saved_step(out) == 6
  _run(out)
  assert not glob.glob(os.path.join(out, '.model.pkl.*.tmp'))
  saved, log = _final(out)
  _assert_same(saved, reference[0])
  assert log == reference[1]
