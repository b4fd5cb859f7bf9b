"""Summaries of a training run: TensorBoard event files and a JSON-lines metrics log.

`SummaryWriter` writes TensorBoard event files with the tensorboard package's
own record writer and protocol buffers; TensorFlow is never imported. The
Trainer keeps one writer in `output_dir/train` and one in `output_dir/eval`,
with the tags `metrics/<name>`, `training/learning_rate`, `training/loss` and
`training/steps per second`.

`MetricsLog` appends one JSON object per line to `output_dir/metrics.jsonl`:
`{"step": 500, "mode": "eval", "metric": "metrics/accuracy", "value": 0.52,
"time": 1700000000.0}`, which pandas reads with
`pandas.read_json(path, lines=True)`.

Both continue correctly after a restore: the writer records a session start at
the restored step (TensorBoard then drops the older events of later steps), and
the log drops its records of steps after the restored one.
"""

import functools
import json
import math
import os
import socket
import time

from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import tensor_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from minitrax import distributed
from minitrax.errors import RunDirError

_FILE_VERSION = 'brain.Event:2'
_uid = [0]


def log(message, every_process=False):
  """Prints a log line to stdout at once (as Trax's `trainer_lib.log`).

  In a run of several processes (`minitrax.distributed`) process 0 alone
  prints, unless the line is one that differs between processes
  (`every_process`): every process prints those, prefixed by its index,
  `[process 1/4] ...`.
  """
  if distributed.is_initialized():
    if every_process:
      message = distributed.process_prefix() + message
    elif not distributed.is_main():
      return
  print(message, flush=True)


def _write_errors(method):
  """Turns an OSError of a summary file (disk full, ...) into a RunDirError naming the file."""

  @functools.wraps(method)
  def wrapped(self, *args, **kwargs):
    try:
      return method(self, *args, **kwargs)
    except OSError as e:
      path = getattr(self, 'path', None) or args[0]
      raise RunDirError(f'{path}: cannot write summaries ({e.strerror or e})') from e

  return wrapped


class SummaryWriter:
  """Writes scalar and text summaries to a new TensorBoard event file in `logdir`.

  Args:
    logdir: folder for the event file (created if missing).
    start_step: the step this run starts at. A session-start event is written
      at that step, so TensorBoard discards events of later steps left by an
      interrupted earlier run in the same folder.
  """

  @_write_errors
  def __init__(self, logdir, start_step=0):
    os.makedirs(logdir, exist_ok=True)
    _uid[0] += 1
    name = (f'events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.'
            f'{os.getpid()}.{_uid[0]}')
    self.logdir = logdir
    self.path = os.path.join(logdir, name)
    self._writer = RecordWriter(open(self.path, 'wb'))  # pylint: disable=consider-using-with
    self._add(
        event_pb2.Event(wall_time=time.time(), step=int(start_step), file_version=_FILE_VERSION))
    # TensorBoard drops events of steps >= a session start's step: those after start_step.
    self._add(
        event_pb2.Event(wall_time=time.time(), step=int(start_step) + 1,
                        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
    self.flush()

  def _add(self, event):
    self._writer.write(event.SerializeToString())

  @_write_errors
  def scalar(self, tag, value, step):
    """Records the float `value` under `tag` at `step`."""
    value = summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
    self._add(
        event_pb2.Event(wall_time=time.time(), step=int(step),
                        summary=summary_pb2.Summary(value=[value])))

  @_write_errors
  def text(self, tag, text, step):
    """Records a Markdown `text` under `tag` at `step` (TensorBoard's Text tab)."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode('utf-8')],
                                    tensor_shape=tensor_shape_pb2.TensorShapeProto())
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name='text'))
    value = summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)
    self._add(
        event_pb2.Event(wall_time=time.time(), step=int(step),
                        summary=summary_pb2.Summary(value=[value])))

  @_write_errors
  def flush(self):
    """Pushes written events to the file."""
    if not self._writer.closed:
      self._writer.flush()

  def close(self):
    """Flushes and closes the event file; later writes raise ValueError."""
    if not self._writer.closed:
      self._writer.flush()
      self._writer.close()


def _read_records(path):
  """The parsable records of a JSON-lines file (a torn last line is skipped)."""
  records = []
  try:
    with open(path, encoding='utf-8') as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except ValueError:
          continue
  except FileNotFoundError:
    pass
  return records


class MetricsLog:
  """Appends metric records to a JSON-lines file, one object per line.

  Args:
    path: the file, e.g. `output_dir/metrics.jsonl`.
    start_step: the step this run starts at; records of later steps already in
      the file (left by an interrupted run) are dropped.
  """

  @_write_errors
  def __init__(self, path, start_step=0):
    self.path = path
    kept = [
        r for r in _read_records(path)
        if isinstance(r, dict) and isinstance(r.get('step'), int) and r['step'] <= start_step
    ]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      f.writelines(_line(r) for r in kept)
    os.replace(tmp, path)
    self._file = open(path, 'a', encoding='utf-8')  # pylint: disable=consider-using-with

  @_write_errors
  def write(self, step, mode, metric, value):
    """Appends one record; non-finite values are written as null."""
    self._file.write(
        _line({
            'step': int(step), 'mode': mode, 'metric': metric,
            'value': float(value) if math.isfinite(value) else None, 'time': round(time.time(), 3)
        }))

  @_write_errors
  def flush(self):
    """Pushes written records to the file."""
    if not self._file.closed:
      self._file.flush()

  def close(self):
    """Flushes and closes the file."""
    if not self._file.closed:
      self._file.close()


def _line(record):
  return json.dumps(record, allow_nan=False) + '\n'


class RunSummaries:
  """The summaries of one run in `output_dir`: event files in `train/` and `eval/`, and
  `metrics.jsonl`. With `output_dir=None` every method does nothing.

  Args:
    output_dir: the run's folder, or None.
    start_step: the step the run starts (or resumes) at.
  """

  def __init__(self, output_dir, start_step=0):
    self._writers, self._log = {}, None
    if output_dir:
      self._writers = {
          mode: SummaryWriter(os.path.join(output_dir, mode), start_step)
          for mode in ('train', 'eval')
      }
      self._log = MetricsLog(os.path.join(output_dir, 'metrics.jsonl'), start_step)

  def write(self, mode, tag, value, step, tensorboard=True, json_lines=True):
    """Records `value` of `tag` in `mode` ('train' or 'eval') at `step`."""
    if self._log and tensorboard:
      self._writers[mode].scalar(tag, value, step)
    if self._log and json_lines:
      self._log.write(step, mode, tag, value)

  def text(self, tag, text, step):
    """Writes a Markdown `text` to the training event file."""
    if self._log:
      self._writers['train'].text(tag, text, step)

  def flush(self):
    for writer in self._writers.values():
      writer.flush()
    if self._log:
      self._log.flush()

  def close(self):
    for writer in self._writers.values():
      writer.close()
    if self._log:
      self._log.close()


def read_metrics(path, mode=None, metric=None):
  """The records of a metrics log as a list of dicts, optionally filtered.

  >>> read_metrics('output_dir/metrics.jsonl', 'eval', 'metrics/accuracy')  # doctest: +SKIP
  [{'step': 500, 'mode': 'eval', 'metric': 'metrics/accuracy', 'value': 0.52, ...}]
  """
  return [
      r for r in _read_records(path) if isinstance(r, dict) and
      (mode is None or r.get('mode') == mode) and (metric is None or r.get('metric') == metric)
  ]


__all__ = ['log', 'SummaryWriter', 'MetricsLog', 'RunSummaries', 'read_metrics']
