"""Tests of the run folder: one run per output_dir, folder errors, write errors, retention."""

import errno
import gc
import glob
import itertools
import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from minitrax import checkpoint
from minitrax import config
from minitrax import lr
from minitrax.data import copy_inputs
from minitrax.errors import (ArgumentError, CheckpointError, ConfigError, RunDirError,
                             TrainingError)
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.layers.metrics import CrossEntropyLoss, L2Loss
from minitrax.optimizers import Adam, Momentum
from minitrax.supervised import run_dir
from minitrax.supervised.summaries import MetricsLog, SummaryWriter
from minitrax.supervised.train import Objective, Plan, train
from minitrax.supervised.trainer import Trainer
from minitrax.supervised.training import Loop, TrainTask

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from codelab_source import subprocess_env  # noqa: E402

VOCAB = 8


def tiny(mode='train', d=8):
  del mode
  return Serial(Embedding(VOCAB, d), Dense(VOCAB), LogSoftmax())


def make(output_dir, model=tiny, inputs=None, **kwargs):
  return Trainer(model, CrossEntropyLoss, Adam, lr.MultifactorSchedule, inputs or
                 copy_inputs(4, VOCAB, 6), output_dir, has_weights=True, **kwargs)


def held_by(folder, pid):
  """The start of the message refusing `folder`, held by process `pid` on this host."""
  return (f'Trainer: cannot use output_dir {folder}: another run holds its lock '
          f'{folder}/.lock (pid {pid} on host {socket.gethostname()} since ')


# ------------------------------------------------------------------ one run per folder


def test_a_second_trainer_on_the_folder_in_this_process_is_refused_until_closed(tmp_path):
  folder = str(tmp_path)
  first = make(folder)
  first.train_epoch(1, 0)
  with pytest.raises(RunDirError) as error:
    make(folder)
  assert str(error.value).startswith(held_by(folder, os.getpid()))
  assert str(error.value).endswith('wait for that run to end or pick another output_dir (it is '
                                   'this process: call close() on the Trainer or Loop that uses '
                                   'the folder, or use it in a with block)')
  assert isinstance(error.value, CheckpointError)
  first.close()
  with make(folder) as second:  # resumes the first run's checkpoint
    assert second.step == 1
    with pytest.raises(RunDirError, match='^Loop: cannot use output_dir .*another run holds'):
      Loop(Serial(Dense(1)), TrainTask(itertools.repeat(_batch), L2Loss(), Momentum(.01)),
           output_dir=folder)
  make(folder).close()  # released at the end of the with block


_batch = (np.ones((2, 3), np.float32), np.ones((2, 1), np.float32))


def test_a_trainer_is_released_when_garbage_collected_or_when_it_fails_to_start(tmp_path):
  folder = str(tmp_path)
  make(folder)  # not kept: collected at once
  trainer = make(folder)
  del trainer
  gc.collect()
  with pytest.raises(CheckpointError, match='does not fit this model') as error:
    make(folder, model=lambda mode: tiny(mode, d=6))
  assert error.value.__traceback__ is not None  # the failed Trainer's frames are still alive
  make(folder).close()


def test_a_trainer_that_fails_to_start_leaves_no_folder_it_made(tmp_path):
  with pytest.raises(ConfigError, match='inputs must be an Inputs'):
    make(str(tmp_path / 'new'), inputs=lambda: 'not inputs')
  assert os.listdir(tmp_path) == []


def test_reset_keeps_its_own_folder_and_takes_a_new_one_before_letting_the_old_go(tmp_path):
  first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
  trainer = make(first)
  trainer.reset(first)  # the same folder: still held
  with pytest.raises(RunDirError, match='another run holds its lock'):
    make(first)
  other = make(second)
  with pytest.raises(RunDirError, match='^Trainer.reset: cannot use output_dir .*another run'):
    trainer.reset(second)
  trainer.train_epoch(1, 0)  # unchanged: still on the first folder
  other.close()
  trainer.reset(second)
  make(first).close()  # released
  trainer.close()


def test_a_closed_trainer_refuses_to_train(tmp_path):
  trainer = make(str(tmp_path))
  trainer.close()
  with pytest.raises(TrainingError,
                     match=re.escape(f'Trainer: closed, its output_dir {tmp_path} released')):
    trainer.train_epoch(1, 0)


HOLDER = '''
import sys, time
from minitrax import lr
from minitrax.data import copy_inputs
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.optimizers import Adam
from minitrax.supervised.trainer import Trainer
model = lambda mode: Serial(Embedding(8, 8), Dense(8), LogSoftmax())
trainer = Trainer(model, CrossEntropyLoss, Adam, lr.MultifactorSchedule, copy_inputs(4, 8, 6),
                  sys.argv[1], has_weights=True)
print('holding', flush=True)
time.sleep(600)
'''


def test_a_run_in_another_process_is_refused_and_its_sigkill_frees_the_folder(tmp_path):
  folder = str(tmp_path / 'run')
  holder = subprocess.Popen([sys.executable, '-c', HOLDER, folder], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    lines = iter(holder.stdout.readline, '')  # ends when the holder exits
    assert 'holding\n' in lines, holder.stderr.read()[-3000:]
    stale = os.path.join(folder, '.model.pkl.abc123.tmp')  # as if the holder were saving now
    with open(stale, 'wb') as f:
      f.write(b'in flight')
    with pytest.raises(RunDirError) as error:
      make(folder)
    assert str(error.value).startswith(held_by(folder, holder.pid))
    assert 'it is this process' not in str(error.value)
    assert os.path.exists(stale)  # the refused run removed nothing
    with pytest.raises(RunDirError, match=f'pid {holder.pid} on host'):
      train(folder, tiny, copy_inputs(4, VOCAB, 6), objective=Objective(has_weights=True))
  finally:
    holder.send_signal(signal.SIGKILL)  # a crash: the OS drops the lock
    holder.wait()
    holder.stdout.close()
    holder.stderr.close()
  with make(folder) as trainer:
    assert trainer.step == 0
    assert not os.path.exists(stale)  # removed under the lock
    with open(os.path.join(folder, '.lock'), encoding='utf-8') as f:
      assert f'"pid": {os.getpid()}' in f.read()


# ------------------------------------------------------------------ folder errors


def _as_given(tmp_path, case):
  """An output_dir that cannot be used, and the reason the error gives."""
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a folder')
  if case == 'file':
    return str(a_file), 'it is a file, not a folder'
  return str(a_file / 'sub' / 'run'), f'it lies under {a_file}, which is a file, not a folder'


def _counting_inputs(calls):

  def inputs():
    calls.append(1)
    return copy_inputs(4, VOCAB, 6)

  return inputs


@pytest.mark.parametrize('case', ['file', 'under_a_file'])
def test_an_output_dir_that_is_or_lies_under_a_file_is_refused_before_any_work(tmp_path, case):
  folder, reason = _as_given(tmp_path, case)
  calls = []
  with pytest.raises(RunDirError) as error:
    make(folder, inputs=_counting_inputs(calls))
  assert str(error.value) == f'Trainer: cannot use output_dir {folder}: {reason}'
  with pytest.raises(RunDirError, match=re.escape(reason)):
    train(folder, tiny, _counting_inputs(calls), objective=Objective(has_weights=True))
  with pytest.raises(RunDirError,
                     match=re.escape(f'Loop: cannot use output_dir {folder}: {reason}')):
    Loop(Serial(Dense(1)), TrainTask(itertools.repeat(_batch), L2Loss(), Momentum(.01)),
         output_dir=folder)
  assert not calls  # no data read, nothing built or compiled


def test_a_read_only_output_dir_is_refused(tmp_path):
  if os.geteuid() == 0:
    pytest.skip('root writes into read-only folders; see the test with a patched os.access')
  folder = tmp_path / 'ro'
  folder.mkdir(mode=0o555)
  with pytest.raises(RunDirError, match=re.escape(f'output_dir {folder}: it is not writable')):
    make(str(folder))
  with pytest.raises(RunDirError, match=re.escape(f'its parent {folder} is not writable')):
    make(str(folder / 'run'))


def test_a_read_only_output_dir_is_refused_with_os_access_patched(tmp_path, monkeypatch):
  folder = tmp_path / 'ro'
  folder.mkdir()
  real_access = os.access
  monkeypatch.setattr(run_dir.os, 'access',
                      lambda path, mode: path != str(folder) and real_access(path, mode))
  with pytest.raises(RunDirError) as error:
    make(str(folder))
  assert str(error.value) == (f'Trainer: cannot use output_dir {folder}: it is not writable '
                              '(permission denied)')
  with pytest.raises(RunDirError, match=re.escape(f'its parent {folder} is not writable')):
    make(str(folder / 'run'))
  assert os.listdir(folder) == []


def test_the_command_line_prints_a_folder_error_without_a_traceback(tmp_path):
  (tmp_path / 'a_file').write_text('x')
  out = subprocess.run([
      sys.executable, '-m', 'minitrax.trainer', '--dataset=copy', '--model=GRULM',
      f'--output_dir={tmp_path / "a_file"}'
  ], env=subprocess_env(HOME=str(tmp_path)), capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert 'Traceback' not in out.stderr
  assert out.stderr.strip().splitlines()[0] == (
      f'minitrax.trainer: error: RunDirError: Trainer: cannot use output_dir '
      f'{tmp_path / "a_file"}: it is a file, not a folder')


# ------------------------------------------------------------------ write errors


def _full_disk(monkeypatch, where):
  """Makes checkpoint writes fail with ENOSPC: in `write` (a short quota) or in `fsync`."""
  full = OSError(errno.ENOSPC, 'No space left on device')
  if where == 'fsync':

    def fsync(fd):
      raise full

    monkeypatch.setattr(os, 'fsync', fsync)
    return
  real_fdopen = os.fdopen

  class Quota:

    def __init__(self, f):
      self._f = f

    def write(self, data):
      self._f.write(data[:100])
      raise full

    def __getattr__(self, name):
      return getattr(self._f, name)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self._f.close()

  monkeypatch.setattr(checkpoint.os, 'fdopen', lambda fd, mode: Quota(real_fdopen(fd, mode)))


@pytest.mark.parametrize('where', ['write', 'fsync'])
def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where):
  trainer = make(str(tmp_path))
  trainer.train_epoch(2, 0)
  path = str(tmp_path / 'model.pkl')
  with monkeypatch.context() as patch:
    _full_disk(patch, where)
    with pytest.raises(CheckpointError) as error:
      trainer.train_epoch(1, 0)
  assert str(error.value) == (f'{path}: cannot write checkpoint (No space left on device '
                              '[ENOSPC]); the previous checkpoint there, if any, is unchanged')
  assert isinstance(error.value.__cause__, OSError)
  assert checkpoint.load(path)['step'] == 2
  assert not glob.glob(str(tmp_path / '.model.pkl.*.tmp'))
  trainer.save_state(keep=False)  # space again: the run goes on
  assert checkpoint.load(path)['step'] == 3
  trainer.close()


# ------------------------------------------------------------------ retention and logs


def test_retention_keeps_the_newest_numbered_and_the_permanent_checkpoints(tmp_path):
  with make(str(tmp_path), keep_checkpoints=2, permanent_every=5, checkpoints_at=[3]) as trainer:
    for _ in range(6):
      trainer.train_epoch(2, 0)  # epochs end at steps 2, 4, ..., 12
  files = sorted(f for f in os.listdir(tmp_path) if f.endswith('.pkl'))
  assert files == [
      'model.pkl', 'model_10.pkl', 'model_12.pkl', 'model_3.pkl', 'model_5.pkl', 'model_8.pkl'
  ]
  assert checkpoint.load(str(tmp_path / 'model_5.pkl'))['step'] == 5  # saved mid-epoch
  assert checkpoint.load(str(tmp_path / 'model.pkl'))['step'] == 12


def test_train_and_its_gin_bindings_keep_checkpoints_as_the_plan_says(tmp_path):
  train(str(tmp_path / 'a'), tiny, copy_inputs(4, VOCAB, 6), optimizer=Adam,
        objective=Objective(has_weights=True), plan=Plan(steps=7, eval_steps=0, eval_frequency=0,
                                                         keep_checkpoints=1, permanent_every=3))
  config.train(str(tmp_path / 'b'), model=tiny, inputs=copy_inputs(4, VOCAB, 6), optimizer=Adam,
               has_weights=True, steps=7, eval_steps=0, keep_checkpoints=1, permanent_every=3)
  for run in 'ab':  # one epoch of 7 steps: permanent ones at steps 3 and 6, the newest at the end
    assert sorted(f for f in os.listdir(tmp_path / run) if f.endswith('.pkl')) == [
        'model.pkl', 'model_3.pkl', 'model_6.pkl', 'model_7.pkl'
    ]


@pytest.mark.parametrize('make_bad,message', [
    (lambda: Plan(keep_checkpoints=0), 'train: keep_checkpoints must be an int >= 1, got 0'),
    (lambda: Plan(permanent_every='5'), "train: permanent_every must be an int >= 1, got '5'"),
])
def test_retention_settings_are_checked(make_bad, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    make_bad()
  with pytest.raises(ArgumentError, match='^Trainer: keep_checkpoints must be an int >= 1'):
    make(None, keep_checkpoints=-1)


def test_an_empty_output_folder_logs_that_the_run_starts_afresh(tmp_path, capsys):
  make(str(tmp_path)).close()
  assert capsys.readouterr().out == f'No checkpoint in {tmp_path}; initialising\n'
  make(str(tmp_path)).close()
  assert capsys.readouterr().out.startswith('Model loaded from')


def test_a_full_disk_while_writing_summaries_names_the_file(tmp_path):
  full = OSError(errno.ENOSPC, 'No space left on device')

  class FullFile:

    closed = False

    def write(self, data):
      raise full

    flush = write

  log = MetricsLog(str(tmp_path / 'metrics.jsonl'))
  log._file = FullFile()  # pylint: disable=protected-access
  with pytest.raises(RunDirError) as error:
    log.write(1, 'train', 'metrics/loss', 0.5)
  assert str(error.value) == (f'{tmp_path / "metrics.jsonl"}: cannot write summaries (No space '
                              'left on device)')
  with pytest.raises(RunDirError,
                     match=re.escape(f'{tmp_path / "a_file"}: cannot write summaries')):
    (tmp_path / 'a_file').write_text('x')
    SummaryWriter(str(tmp_path / 'a_file'))
