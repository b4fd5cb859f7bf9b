"""Tests for minitrax.supervised.summaries: TensorBoard event files and the JSON-lines log."""

import json
import os
import subprocess
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from minitrax.supervised.summaries import MetricsLog, SummaryWriter, read_metrics


def _scalars(logdir, tag):
  acc = EventAccumulator(logdir, purge_orphaned_data=True)
  acc.Reload()
  return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_event_files_are_readable_by_tensorboard(tmp_path):
  writer = SummaryWriter(str(tmp_path))
  for step in (1, 10, 20):
    writer.scalar('metrics/accuracy', step / 100, step)
  writer.scalar('training/steps per second', 123.5, 20)
  writer.text('gin_config', '    train.steps = 20', 1)
  writer.close()
  acc = EventAccumulator(str(tmp_path))
  acc.Reload()
  assert sorted(acc.Tags()['scalars']) == ['metrics/accuracy', 'training/steps per second']
  assert [(e.step, round(e.value, 6)) for e in acc.Scalars('metrics/accuracy')] == [(1, 0.01),
                                                                                    (10, 0.1),
                                                                                    (20, 0.2)]
  assert acc.Scalars('training/steps per second')[0].value == 123.5
  assert 'gin_config' in acc.Tags()['tensors']
  assert os.path.basename(writer.path).startswith('events.out.tfevents.')


def test_restart_drops_events_after_the_restored_step(tmp_path):
  first = SummaryWriter(str(tmp_path), start_step=0)
  for step in range(1, 11):
    first.scalar('training/loss', float(step), step)
  first.close()  # killed after step 10; the checkpoint was at step 5
  second = SummaryWriter(str(tmp_path), start_step=5)
  for step in range(6, 9):
    second.scalar('training/loss', 100.0 + step, step)
  second.close()
  assert _scalars(str(tmp_path), 'training/loss') == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0),
                                                      (5, 5.0), (6, 106.0), (7, 107.0), (8, 108.0)]


def test_metrics_log_writes_json_lines_and_truncates_on_restart(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')
  log = MetricsLog(path)
  for step in (1, 2, 3):
    log.write(step, 'train', 'training/loss', 1.0 / step)
  log.write(3, 'eval', 'metrics/accuracy', 0.5)
  log.write(3, 'eval', 'metrics/loss', float('nan'))
  log.close()
  with open(path, 'a', encoding='utf-8') as f:
    f.write('{"step": 4, "mode": "tr')  # a write torn by a kill
  lines = open(path, encoding='utf-8').read().splitlines()
  first = json.loads(lines[0])
  assert (first['step'], first['mode'], first['metric'], first['value']) == (1, 'train',
                                                                             'training/loss', 1.0)
  assert json.loads(lines[4])['value'] is None
  assert [r['value'] for r in read_metrics(path, 'eval', 'metrics/accuracy')] == [0.5]
  log = MetricsLog(path, start_step=2)  # resumed at step 2
  log.write(3, 'train', 'training/loss', 7.0)
  log.close()
  assert [(r['step'], r['value']) for r in read_metrics(path, 'train')] == [(1, 1.0), (2, 0.5),
                                                                            (3, 7.0)]


def test_summaries_never_import_tensorflow(tmp_path):
  code = ('import sys; from minitrax.supervised.summaries import SummaryWriter; '
          f'w = SummaryWriter({str(tmp_path)!r}); w.scalar("a", 1.0, 1); w.close(); '
          'print("tensorflow" in sys.modules)')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == 'False'
