"""SIGTERM and SIGINT in training: the call ends, a checkpoint is saved, resume is exact.

The in-process tests send the signal from the data stream (a background
thread) while training runs; the subprocess test sends SIGTERM from outside.
"""

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import jax

from minitrax import checkpoint, lr
from minitrax.data import Inputs, Stream
from minitrax.errors import TrainingInterrupted
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Dropout, Embedding
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.layers.metrics14 import WeightedCategoryCrossEntropy
from minitrax.optimizers import Adam
from minitrax.supervised import interrupts
from minitrax.supervised.trainer import Trainer
from minitrax.supervised.training import EvalTask, Loop, TrainTask

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import interrupt_run  # noqa: E402
from codelab_source import subprocess_env  # noqa: E402
from resume_run import copy_batch, model  # noqa: E402


def _signalling(signum, at, sent):
  """Resume_run's copy task; reading training batch `at` sends `signum` to this process once."""

  def train_batch(i, _):
    if i == at and not sent:
      sent.append(i)
      os.kill(os.getpid(), signum)
    return copy_batch(1, i)

  return Inputs(Stream(train_batch), Stream(lambda i, n: copy_batch(2, i)),
                Stream(lambda i, n: copy_batch(3, i)))


def _trainer(output_dir, inputs=None):
  return Trainer(model, CrossEntropyLoss, Adam, lr.MultifactorSchedule, inputs or
                 _signalling(None, None, [0]), output_dir, has_weights=True, random_seed=7)


def _assert_same_run(a, b):
  """Equal trees of arrays, bit for bit; of `TrainerState`s, their weights, slots and state."""
  if hasattr(a, 'opt_state'):
    a, b = (a.step, a.opt_state, a.model_state), (b.step, b.opt_state, b.model_state)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_sigterm_mid_epoch_saves_logs_raises_and_resume_is_exact(tmp_path, capsys):
  before = signal.getsignal(signal.SIGTERM)
  with _trainer(str(tmp_path / 'straight')) as straight:
    straight.train_epoch(30, 1)
  interrupted = _trainer(str(tmp_path / 'run'), _signalling(signal.SIGTERM, 12, []))
  capsys.readouterr()
  with pytest.raises(TrainingInterrupted) as error:
    interrupted.train_epoch(30, 1)  # compiled calls of 10 steps: stops after step 10 or 20
  step, path = error.value.step, str(tmp_path / 'run' / 'model.pkl')
  assert step in (10, 20) and error.value.signum == signal.SIGTERM and error.value.path == path
  assert str(error.value) == (f'Step {step}: training interrupted by SIGTERM; saved {path}; run '
                              f'again on the same output_dir to continue from step {step}')
  assert capsys.readouterr().out.endswith(f'Step {step:6d}: interrupted, saved {path}\n')
  assert signal.getsignal(signal.SIGTERM) is before  # restored
  assert checkpoint.load(path)['step'] == step
  interrupted.close()
  with _trainer(str(tmp_path / 'run')) as resumed:
    assert resumed.step == step
    resumed.train_epoch(30 - step, 1)
    _assert_same_run(straight.state, resumed.state)
    assert resumed.history == straight.history


def test_sigint_stops_train_and_a_second_call_finishes_the_run_exactly(tmp_path):
  before = signal.getsignal(signal.SIGINT)
  reference = interrupt_run.run(str(tmp_path / 'straight'), interrupt_run.inputs())
  with pytest.raises(TrainingInterrupted, match=r'^Step \d+: training interrupted by SIGINT; '):
    interrupt_run.run(str(tmp_path / 'run'), _signalling(signal.SIGINT, 24, []))
  assert signal.getsignal(signal.SIGINT) is before
  final = interrupt_run.run(str(tmp_path / 'run'), interrupt_run.inputs())
  assert final.step == reference.step == interrupt_run.STEPS
  _assert_same_run(reference, final)
  assert final.history == reference.history


def _loop(output_dir, signum=None, at=None):
  """A Loop on the copy task; reading its training batch `at` sends `signum` (once)."""

  def batches(seed):
    rng = np.random.RandomState(seed)
    for i in itertools.count():
      if i == at:
        os.kill(os.getpid(), signum)
      x = rng.randint(1, 8, size=(8, 6)).astype(np.int32)
      yield x, x, np.ones_like(x, np.float32)

  task = TrainTask(batches(0), WeightedCategoryCrossEntropy(), Adam(0.01),
                   n_steps_per_checkpoint=25)
  eval_task = EvalTask(batches(1), [WeightedCategoryCrossEntropy()], n_eval_batches=1)
  copy_model = lambda mode: Serial(Embedding(8, 16), Dropout(0.1, mode=mode), Dense(8))
  return Loop(copy_model('train'), task, eval_model=copy_model('eval'), eval_tasks=eval_task,
              output_dir=output_dir)


def test_sigterm_stops_a_loop_run_mid_segment_and_a_new_loop_continues_exactly(tmp_path, capsys):
  with _loop(str(tmp_path / 'straight')) as straight:
    straight.run(30)
  interrupted = _loop(str(tmp_path / 'run'), signal.SIGTERM, 14)
  capsys.readouterr()
  with pytest.raises(TrainingInterrupted) as error:
    interrupted.run(30)  # segments 1 | 2-25 | 26-30, calls of up to 10 steps
  step, path = error.value.step, str(tmp_path / 'run' / 'model.pkl.gz')
  assert 1 < step < 25 and error.value.path == path
  assert f'Step {step:6d}: interrupted, saved {path}\n' in capsys.readouterr().out
  assert checkpoint.load(path)['step'] == step == interrupted.step
  interrupted.close()
  with _loop(str(tmp_path / 'run')) as resumed:
    assert resumed.step == step
    resumed.run(30 - step)
    _assert_same_run(straight.model.weights, resumed.model.weights)
    _assert_same_run(straight.tasks[0].optimizer.slots, resumed.tasks[0].optimizer.slots)


def test_handlers_are_installed_only_while_training_and_only_in_the_main_thread():
  original = signal.getsignal(signal.SIGTERM)

  def watched(seen):
    """Inputs whose training batch 1 (read while an epoch runs) records the SIGTERM handler."""

    def batch(i, _):
      if i == 1:
        seen.append(signal.getsignal(signal.SIGTERM))
      return copy_batch(1, i)

    return Inputs(Stream(batch), Stream(lambda i, n: copy_batch(2, i)))

  in_main, in_worker = [], []
  with _trainer(None, watched(in_main)) as trainer:
    trainer.train_epoch(2, 0)
  assert len(in_main) == 1 and in_main[0] is not original  # recording while training
  assert signal.getsignal(signal.SIGTERM) is original  # restored
  with _trainer(None, watched(in_worker)) as trainer:
    worker = threading.Thread(target=trainer.train_epoch, args=(2, 0))
    worker.start()
    worker.join()
    assert trainer.step == 2
  assert in_worker == [original]  # nothing installed outside the main thread
  assert interrupts.pending() is None


def test_a_second_signal_goes_at_once_to_the_handler_in_place_before_training(tmp_path):
  calls = []
  custom = lambda signum, frame: calls.append(signum)
  previous = signal.signal(signal.SIGTERM, custom)
  try:

    def twice(i, _):
      if i == 3 and not calls:
        os.kill(os.getpid(), signal.SIGTERM)  # recorded; puts `custom` back
        deadline = time.time() + 30
        while signal.getsignal(signal.SIGTERM) is not custom and time.time() < deadline:
          time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # to `custom`, at once
      return copy_batch(1, i)

    inputs = Inputs(Stream(twice), Stream(lambda i, n: copy_batch(2, i)))
    with _trainer(str(tmp_path), inputs) as trainer:
      with pytest.raises(TrainingInterrupted):
        trainer.train_epoch(20, 0)
    assert calls == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is custom
  finally:
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_to_a_run_in_a_subprocess_exits_143_and_the_run_resumes_exactly(tmp_path):
  reference = interrupt_run.run(str(tmp_path / 'straight'), interrupt_run.inputs())
  out, marker = str(tmp_path / 'run'), str(tmp_path / 'marker')
  process = subprocess.Popen([
      sys.executable,
      os.path.join(HERE, 'interrupt_run.py'), out, '--pause-at-batch', '24', marker
  ], env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not os.path.exists(marker):
    assert process.poll() is None, process.stderr.read()[-3000:]
    assert time.time() < deadline, 'the run never reached batch 24'
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  stdout, stderr = process.communicate(timeout=300)
  assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  path = os.path.join(out, 'model.pkl')
  match = re.search(rf'^Step +(\d+): interrupted, saved {re.escape(path)}$', stdout, re.M)
  assert match, stdout[-3000:]
  step = int(match.group(1))
  assert step < interrupt_run.STEPS and checkpoint.load(path)['step'] == step
  assert stderr.endswith(f'training interrupted by SIGTERM; saved {path}; run again on the same '
                         f'output_dir to continue from step {step}\n')
  final = interrupt_run.run(out, interrupt_run.inputs())
  _assert_same_run(reference, final)
  assert final.history == reference.history


@pytest.mark.slow
def test_sigterm_to_the_command_line_saves_and_exits_143_then_it_resumes(tmp_path):
  out = str(tmp_path / 'copy')
  command = [
      sys.executable, '-m', 'minitrax.trainer', '--config_file=transformer_copy',
      f'--output_dir={out}', '--config=train.steps=3000', '--config=train.eval_frequency=1000',
      '--config=train.eval_steps=1', '--config=TransformerLM.n_layers=1'
  ]
  process = subprocess.Popen(command, env=subprocess_env(HOME=str(tmp_path)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  lines = []
  for line in iter(process.stdout.readline, ''):
    lines.append(line)
    if line == 'Step      1: Finished evaluation\n':
      process.send_signal(signal.SIGTERM)
      break
  rest, stderr = process.communicate(timeout=600)
  stdout = ''.join(lines) + rest
  assert process.returncode == 143, stderr[-3000:]
  path = os.path.join(out, 'model.pkl')
  match = re.search(rf'^Step +(\d+): interrupted, saved {re.escape(path)}$', stdout, re.M)
  assert match and 1 <= int(match.group(1)) < 3000, stdout[-3000:]
  assert 'Traceback' not in stderr
  assert checkpoint.load(path)['step'] == int(match.group(1))
  again = subprocess.run(command, env=subprocess_env(HOME=str(tmp_path)), capture_output=True,
                         text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert f'Model loaded from {path} at step {match.group(1)}' in again.stdout
  assert again.stdout.endswith('Step   3000: Training done\n')
