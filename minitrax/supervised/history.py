"""`History`: the metrics of a training run, as `(step, value)` pairs per mode and name.

The Trainer appends, at every evaluation, `('train' | 'eval', 'metrics/<name>',
step, value)` for each metric and `('train', 'training/learning_rate', step,
value)`; schedules such as `lr.EvalAdjustingSchedule` read it back:

>>> history = History()
>>> history.append('eval', 'metrics/accuracy', 500, 0.52)
>>> history.append('eval', 'metrics/accuracy', 1000, 0.84)
>>> history.get('eval', 'metrics/accuracy')
[(500, 0.52), (1000, 0.84)]

A History is saved in checkpoints as plain data (`to_dict`/`from_dict`).
"""

from minitrax.errors import CheckpointError


class History:
  """Metrics recorded during training and evaluation (Trax's `History`)."""

  def __init__(self):
    self._values = {}  # mode -> metric -> list of (step, value)

  def append(self, mode, metric, step, value):
    """Records `value` of `metric` in `mode` ('train', 'eval', ...) at `step`."""
    self._values.setdefault(mode, {}).setdefault(metric, []).append((int(step), float(value)))

  def get(self, mode, metric):
    """The `(step, value)` pairs of `metric` in `mode`, oldest first; `[]` if none."""
    return list(self._values.get(mode, {}).get(metric, ()))

  @property
  def modes(self):
    """The modes recorded so far, sorted."""
    return sorted(self._values)

  def metrics_for_mode(self, mode):
    """The metric names recorded in `mode`, sorted."""
    return sorted(self._values.get(mode, {}))

  def truncate(self, step):
    """Drops every record made after `step` (used when a run resumes)."""
    for metrics in self._values.values():
      for name, pairs in metrics.items():
        metrics[name] = [(s, v) for s, v in pairs if s <= step]

  def to_dict(self):
    """The history as plain data: `{mode: {metric: [[step, value], ...]}}`."""
    return {
        mode: {name: [[s, v] for s, v in pairs] for name, pairs in metrics.items()}
        for mode, metrics in self._values.items()
    }

  @classmethod
  def from_dict(cls, data, source='<history>'):
    """The inverse of `to_dict`; raises CheckpointError naming `source` if malformed."""
    history = cls()
    try:
      for mode, metrics in data.items():
        for name, pairs in metrics.items():
          for step, value in pairs:
            history.append(mode, name, step, value)
    except (AttributeError, TypeError, ValueError) as e:
      raise CheckpointError(f'{source}: the saved history is malformed ({e})') from e
    return history

  def __eq__(self, other):
    return isinstance(other, History) and self.to_dict() == other.to_dict()

  def __repr__(self):
    return f'History({self.to_dict()})'


__all__ = ['History']
