"""Tests for minitrax.distributed: training in two processes on 127.0.0.1 (gloo on CPU).

Each process runs `distributed_run.py` (a tiny model on the copy task, one
CPU device per process); the reference is the same run in one process with
the same global batch.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from minitrax import distributed
from minitrax.errors import ConfigError
from minitrax.supervised import run_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, 'distributed_run.py')
ROOT = os.path.dirname(os.path.dirname(HERE))
FAILURE_BOUND_S = 30  # kill -> the survivor's exit: heartbeat (3 s) + 2 s polling + slack


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start(tmp_path, output_dir, n_processes, process_id, port, *options):
  """Starts one process of a run; compiled programs are shared through a cache in `tmp_path`."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=ROOT,
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'compiled'),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, SCRIPT,
       str(output_dir),
       str(n_processes),
       str(process_id),
       str(port)] + list(options), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=env)


def _finish(process, timeout=240):
  out, err = process.communicate(timeout=timeout)
  assert process.returncode == 0, err[-3000:]
  return json.loads(out.split('WEIGHTS ', 1)[1])


def _losses(output_dir):
  with open(os.path.join(output_dir, 'metrics.jsonl'), encoding='utf-8') as f:
    rows = [json.loads(line) for line in f]
  return {r['step']: r['value'] for r in rows if r['metric'] == 'training/loss'}


def _wait_for(condition, timeout=180):
  deadline = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < deadline, 'timed out'
    time.sleep(0.2)


def _saved_step(output_dir):
  try:
    saved = run_checkpoint.read(os.path.join(output_dir, 'model.pkl'))
  except Exception:  # pylint: disable=broad-except  (not there yet)
    return None
  return saved and saved['step']


def _assert_close(weights, expected):
  assert len(weights) == len(expected)
  for w, e in zip(weights, expected):
    np.testing.assert_allclose(w, e, atol=1e-5, rtol=0)


def test_a_killed_process_fails_the_other_and_a_restart_trains_as_one_process(tmp_path):
  """Process 1 is killed mid-run (after the step-6 checkpoint): process 0 exits with a
  TrainingError naming it, within FAILURE_BOUND_S. Both restarted resume from the checkpoint:
  every step's loss and the final weights equal one process's with the same global batch."""
  reference = _start(tmp_path, tmp_path / 'one', 1, 0, 0)
  port, run, marker = _free_port(), tmp_path / 'two', tmp_path / 'hang1'
  survivor = _start(tmp_path, run, 2, 0, port)
  victim = _start(tmp_path, run, 2, 1, port, '--hang-at-batch', '9', marker)
  _wait_for(lambda: marker.exists() and _saved_step(run) == 6)
  time.sleep(1.0)  # process 0 is in the collective of step 7
  os.kill(victim.pid, signal.SIGKILL)
  killed = time.monotonic()
  victim.communicate()
  _, err = survivor.communicate(timeout=120)
  elapsed = time.monotonic() - killed
  assert survivor.returncode not in (0, None)
  assert 'TrainingError: process 0: training cannot go on: process(es) 1 of 2 died' in err, err[
      -3000:]
  assert elapsed < FAILURE_BOUND_S
  port = _free_port()
  restarted = [_start(tmp_path, run, 2, p, port) for p in range(2)]
  weights = [_finish(p) for p in restarted]
  expected = _finish(reference)
  _assert_close(weights[0], expected)
  _assert_close(weights[1], expected)
  losses, expected_losses = _losses(run), _losses(tmp_path / 'one')
  assert sorted(losses) == list(range(1, 13))
  np.testing.assert_allclose([losses[s] for s in range(1, 13)],
                             [expected_losses[s] for s in range(1, 13)], atol=1e-5, rtol=0)


def test_initialize_checks_its_arguments():
  with pytest.raises(ConfigError, match=r'initialize: num_processes must be an int >= 1, got 0'):
    distributed.initialize('127.0.0.1:1', num_processes=0, process_id=0)
  with pytest.raises(ConfigError, match=r'initialize: process_id must be < num_processes=2, got 2'):
    distributed.initialize('127.0.0.1:1', num_processes=2, process_id=2)


def test_one_process_is_the_main_one_and_keeps_whole_batches():
  x = np.arange(12).reshape(6, 2)
  assert distributed.process_count() == 1 and distributed.is_main()
  assert distributed.process_rows(x) is x
  assert distributed.dead_processes() == []
