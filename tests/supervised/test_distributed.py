"""Tests for minitrax.distributed and supervised.sharding: many processes, sharded weights.

Multi-process runs: each process runs `distributed_run.py` (a tiny model on
the copy task, one CPU device per process, 127.0.0.1 with gloo); the
reference is the same run in one process with the same global batch. FSDP:
`sharding_run.py` on 4 virtual CPU devices; over 2 processes, `distributed_run.py
--fsdp`, its checkpoint restored in one process by `shards_restore_run.py`.
"""

import concurrent.futures
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jax.sharding import PartitionSpec as P

from minitrax import checkpoint, distributed
from minitrax.errors import ConfigError
from minitrax.supervised import run_checkpoint, sharding, summaries

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, 'distributed_run.py')
ROOT = os.path.dirname(os.path.dirname(HERE))
FAILURE_BOUND_S = 30  # kill -> the survivor's exit: heartbeat (3 s) + 2 s polling + slack


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start(tmp_path, output_dir, n_processes, process_id, port, *options, script=SCRIPT):
  """Starts one process of a run (of `script`, default `distributed_run.py`); compiled programs
  are shared through a cache in `tmp_path`."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=ROOT,
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'compiled'),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, script,
       str(output_dir),
       str(n_processes),
       str(process_id),
       str(port)] + list(options), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=env)


def _communicate_all(processes, timeout=240):
  """`[(stdout, stderr)]` of processes run side by side. If one is still running after `timeout`
  seconds, all are killed and the test fails with every process's last output, so a hang names
  the process that waited and shows where the others were."""

  def wait(process):
    try:
      return process.communicate(timeout=timeout) + (False,)
    except subprocess.TimeoutExpired:
      process.kill()
      return process.communicate() + (True,)

  with concurrent.futures.ThreadPoolExecutor(len(processes)) as pool:
    results = list(pool.map(wait, processes))
  if any(hung for _, _, hung in results):
    reports = []
    for i, (process, (out, err, hung)) in enumerate(zip(processes, results)):
      status = f'killed after {timeout} s' if hung else f'exit {process.returncode}'
      reports.append(f'process {i} ({status}):\n{out[-1500:]}\n{err[-1500:]}')
    pytest.fail('\n'.join(reports))
  return [(out, err) for out, err, _ in results]


def _finish(processes, rows=None):
  """`[(final weights, stdout)]` of processes run side by side (`_communicate_all`); checks each
  exited with 0 and, if `rows`, the batch sizes it read."""
  results = []
  for process, (out, err) in zip(processes, _communicate_all(processes)):
    assert process.returncode == 0, err[-3000:]
    if rows is not None:
      assert json.loads(out.split('ROWS ', 1)[1].split('\n', 1)[0]) == rows
    results.append((json.loads(out.split('WEIGHTS ', 1)[1]), out))
  return results


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
  TrainingError naming it, within FAILURE_BOUND_S. Both restarted resume from the checkpoint,
  each reading only its half of every global batch: every step's loss and the final weights
  equal one process's with the same global batch."""
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
  (weights0, out0), (weights1, out1) = _finish(restarted, rows=[4])  # halves of 8
  [(expected, _)] = _finish([reference], rows=[8])
  _assert_close(weights0, expected)
  _assert_close(weights1, expected)
  # Process 0 logs the run; process 1 only its own lines, prefixed by its index.
  assert 'Step     12: Ran 6 train steps' in out0 and 'Step' not in out1, out1
  assert re.search(
      r'^\[process 1/2\] joined the run: devices \[\d+\] of 2; reads part 1 of every '
      r'global batch$', out1, re.M), out1
  losses, expected_losses = _losses(run), _losses(tmp_path / 'one')
  assert sorted(losses) == list(range(1, 13))
  np.testing.assert_allclose([losses[s] for s in range(1, 13)],
                             [expected_losses[s] for s in range(1, 13)], atol=1e-5, rtol=0)


def test_sigterm_to_one_process_stops_all_at_the_same_step_and_they_resume_exactly(tmp_path):
  """A preemption notice (SIGTERM) to process 1 alone, mid-run: both processes stop after the
  same call (JAX's preemption sync point), save one checkpoint there and raise
  TrainingInterrupted; restarted, they train on to step 40 with one process's losses."""
  never = ('--slow-from-batch', '100000', str(tmp_path / 'unused'))
  reference = _start(tmp_path, tmp_path / 'one', 1, 0, 0, *never)
  port, run, marker = _free_port(), tmp_path / 'two', tmp_path / 'slow'
  processes = [
      _start(tmp_path, run, 2, p, port, '--slow-from-batch', '12', str(marker)) for p in range(2)
  ]
  _wait_for(marker.exists)
  os.kill(processes[1].pid, signal.SIGTERM)
  errors = [err for _, err in _communicate_all(processes, timeout=120)]
  stops = [
      re.findall(r'TrainingInterrupted: Step (\d+): training interrupted by SIGTERM', e)
      for e in errors
  ]
  assert stops[0] and stops[0] == stops[1], [e[-2000:] for e in errors]
  step = int(stops[0][0])
  assert 0 < step < 40 and _saved_step(run) == step
  port = _free_port()
  restarted = [_start(tmp_path, run, 2, p, port, *never) for p in range(2)]
  weights = [w for w, _ in _finish(restarted)]
  [(expected, _)] = _finish([reference])
  _assert_close(weights[0], expected)
  losses, expected_losses = _losses(run), _losses(tmp_path / 'one')
  assert sorted(losses) == list(range(1, 41))
  np.testing.assert_allclose([losses[s] for s in range(1, 41)],
                             [expected_losses[s] for s in range(1, 41)], atol=1e-5, rtol=0)


def test_a_trax14_loop_over_2_processes_trains_on_their_rows_as_one_process_on_all(tmp_path):
  """Trax 1.4's Loop: each process's labeled_data gives its own 8 rows of every batch of 16 (as
  Trax's per-host pipelines); 2 processes give the history and weights of 1 process fed whole
  batches (1e-5), and only process 0 writes the checkpoint."""
  script = os.path.join(HERE, 'loop_processes_run.py')
  port = _free_port()
  processes = [_start(tmp_path, tmp_path / 'one', 1, 0, 0, script=script)]
  processes += [_start(tmp_path, tmp_path / 'two', 2, p, port, script=script) for p in range(2)]
  outputs = _communicate_all(processes)
  reports = []
  for process, (out, err) in zip(processes, outputs):
    assert process.returncode == 0, err[-3000:]
    reports.append(json.loads(out.split('REPORT ', 1)[1]))
  one, *two = reports
  for report in two:
    _assert_close(report['weights'], one['weights'])
    assert sorted(report['history']) == sorted(one['history'])
    for name, values in one['history'].items():
      np.testing.assert_allclose(report['history'][name], values, atol=1e-5, rtol=0)
  assert len(one['history']['eval metrics/WeightedCategoryAccuracy']) == 3
  assert sorted(os.listdir(tmp_path / 'two')) == sorted(os.listdir(tmp_path / 'one'))


def test_fsdp_on_4_devices_holds_a_quarter_and_trains_as_one_device(tmp_path):
  """Weights and Adam slots split over 4 virtual devices: <= 0.3x the bytes per device of a
  replicated run, the same losses and weights as one device (1e-5); the checkpoint restores
  onto 1, 2 and 4 devices."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', PYTHONPATH=ROOT,
             JAX_PLATFORMS='cpu')
  result = subprocess.run(
      [sys.executable, os.path.join(HERE, 'sharding_run.py'),
       str(tmp_path)], capture_output=True, text=True, env=env, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.split('REPORT ', 1)[1])
  replicated_bytes, fsdp_bytes = report['bytes']
  assert fsdp_bytes <= 0.3 * replicated_bytes, report['bytes']
  np.testing.assert_allclose(report['losses'][1], report['losses'][0], atol=1e-5, rtol=0)
  assert report['weight_diff'] < 1e-5 and report['fsdp_step'] == 6
  assert not [n for n in os.listdir(tmp_path) if '.shards-' in n]  # one process: whole arrays
  restored = report['restored']
  assert [restored[n]['step'] for n in ('1', '2', '4')] == [6, 6, 6]
  assert max(restored[n]['weight_diff'] for n in ('1', '2', '4')) == 0.0
  assert restored['1']['bytes'] == replicated_bytes and restored['4']['bytes'] == fsdp_bytes
  assert restored['2']['bytes'] <= 0.55 * replicated_bytes


def _records(tree):
  """The reference records of the sharded arrays in a checkpoint tree read with shards=False."""
  if isinstance(tree, dict) and 'sharded_array' in tree:
    return [tree]
  items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree,
                                                                          (list, tuple)) else []
  return [r for item in items for r in _records(item)]


def test_fsdp_over_2_processes_saves_each_its_pieces_and_restores_in_one_process(tmp_path):
  """FSDP over 2 processes (1 device each), saving at steps 6 (model.pkl, model_6.pkl) and 12:
  each process writes half the bytes of the sharded weights and slots into its own shard file,
  process 0's model.pkl holds the rest, and step 6's folder of model.pkl is gone after step 12's
  commit; one process restores model.pkl onto 1 device and onto 4 (FSDP) with the 2-process run's
  final weights (1e-6), and trains on."""
  port, run = _free_port(), tmp_path / 'two'
  processes = [_start(tmp_path, run, 2, p, port, '--fsdp') for p in range(2)]
  weights = [w for w, _ in _finish(processes)]
  _assert_close(weights[1], weights[0])
  folders = sorted(n for n in os.listdir(run) if '.shards-' in n)
  assert [n.rsplit('-', 1)[0] for n in folders] == ['model.pkl.shards-12', 'model_6.pkl.shards-6']
  folder = folders[0]
  assert checkpoint.load(run / 'model_6.pkl')['weights'][1][0].shape == (64, 128)  # whole
  saved = checkpoint.load(run / 'model.pkl', shards=False)
  assert saved['shard_folder'] == folder
  records = _records(saved)
  assert len(records) == 6  # 2 kernels and their 2 Adam slots each
  sharded_bytes = sum(math.prod(r['shape']) * 4 for r in records)
  held = {}
  for p in (0, 1):
    arrays = checkpoint.load(run / folder / f'process-{p}.msgpack')['arrays']
    held[p] = sum(piece['data'].nbytes for pieces in arrays.values() for piece in pieces)
  assert held == {0: sharded_bytes // 2, 1: sharded_bytes // 2}
  assert os.path.getsize(run / 'model.pkl') < sharded_bytes / 4
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', PYTHONPATH=ROOT,
             JAX_PLATFORMS='cpu', JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'compiled'))
  result = subprocess.run([
      sys.executable,
      os.path.join(HERE, 'shards_restore_run.py'),
      str(run),
      str(tmp_path / 'one')
  ], capture_output=True, text=True, env=env, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.split('REPORT ', 1)[1])
  for n in ('1', '4'):
    assert report[n]['step'] == 12 and report[n]['step_after'] == 14
    assert report[n]['finite'] and report[n]['change'] > 1e-4  # it trains on
    for w, e in zip(report[n]['weights'], weights[0], strict=True):
      np.testing.assert_allclose(w, e, atol=1e-6, rtol=0)
    # One process saves model.pkl whole: its old folder goes; model_6.pkl keeps its own.
    assert report[n]['folders'] == [folders[1]]


def test_array_spec_splits_the_largest_divisible_axis_of_large_arrays():
  assert sharding.array_spec((512, 64), 4) == P('batch', None)
  assert sharding.array_spec((3, 5000), 4) == P(None, 'batch')
  assert sharding.array_spec((64,), 4) == P()  # small: replicated
  assert sharding.array_spec((1001, 3), 4) == P()  # no axis divisible by 4
  assert sharding.array_spec((512, 64), 1) == P()


def test_sharding_must_be_a_known_mode():
  assert sharding.check_sharding('Trainer', None) == 'replicated'
  with pytest.raises(ConfigError,
                     match=r"Trainer: sharding must be one of 'replicated', 'fsdp', got 'zero'"):
    sharding.check_sharding('Trainer', 'zero')


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


def _command_line(*flags, home):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=ROOT, HOME=str(home))
  return subprocess.run([sys.executable, '-m', 'minitrax.trainer', *flags], env=env,
                        capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow  # ~20 s: the command line imports every model
def test_command_line_sharding_flag_configures_the_trainer(tmp_path):
  out = _command_line('--config_file=mlp_mnist', '--dataset=random', '--sharding=fsdp',
                      f'--output_dir={tmp_path / "d"}', '--config=train.steps=1',
                      '--config=MLP.d_hidden=8',
                      '--config=random_inputs.input_shape=(4, 28, 28, 1)',
                      '--config=random_inputs.output_shape=(4,)', '--config=train.eval_steps=0',
                      '--disable_jit', home=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "Trainer.sharding = 'fsdp'" in (tmp_path / 'd' / 'config.gin').read_text()


def test_command_line_multi_process_run_needs_an_output_dir(tmp_path):
  out = _command_line('--dataset=random', '--model=MLP', '--coordinator_address=127.0.0.1:1',
                      '--num_processes=2', '--process_id=0', home=tmp_path)
  assert out.returncode == 2  # a usage mistake
  assert ('minitrax.trainer: error: ConfigError: a multi-process run needs --output_dir'
          in out.stderr), out.stderr[-3000:]


def test_other_processes_print_only_their_own_lines_prefixed(monkeypatch, capsys):
  """In a run of several processes (simulated here), process 0 prints every log line; the
  others print only per-process lines, prefixed by their index; minitrax's logging records too."""
  monkeypatch.setattr(distributed, 'is_initialized', lambda: True)
  monkeypatch.setattr(distributed, 'process_count', lambda: 4)
  for index in (0, 2):
    monkeypatch.setattr(distributed, 'process_index', lambda index=index: index)
    summaries.log('Step 1: loss 0.5')
    summaries.log('devices [2]', every_process=True)
  assert capsys.readouterr().out.splitlines() == [
      'Step 1: loss 0.5', '[process 0/4] devices [2]', '[process 2/4] devices [2]'
  ]
  make = distributed._prefix_records(logging.getLogRecordFactory())  # pylint: disable=protected-access
  record = make('minitrax.data', logging.INFO, __file__, 1, 'seek %d', (3,), None)
  other = make('jax', logging.INFO, __file__, 1, 'compiled', (), None)
  assert (record.getMessage(), other.getMessage()) == ('[process 2/4] seek 3', 'compiled')


def test_one_process_logs_without_prefix(capsys):
  summaries.log('Step 1: loss 0.5')
  summaries.log('devices [0]', every_process=True)
  assert distributed.process_prefix() == ''
  assert capsys.readouterr().out.splitlines() == ['Step 1: loss 0.5', 'devices [0]']
