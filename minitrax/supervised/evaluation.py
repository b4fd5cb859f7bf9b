"""Evaluation rounds: metrics averaged over batches, and the best value so far.

`metrics_round` runs the compiled eval step (`step.make_eval_step`) over
`n` device batches of one stream and averages each metric; the key of the
`i`-th batch of a run's evaluations is `fold_in(eval_key, position + i)`, so
an evaluation is a pure function of the weights, the seed and the stream
position.
"""

import numpy as np

import jax


def metrics_round(eval_step, weights, state, batches, n, eval_key, position, names):
  """`{name: value}`: the metrics of `n` batches, each averaged over them.

  Args:
    eval_step: from `step.make_eval_step`, its metrics in the order of `names`.
    weights, state: the model's trees (on the devices).
    batches: a `data.device.DeviceBatches` of single batches.
    n: batches to evaluate; `{}` when n <= 0.
    eval_key: the run's evaluation key.
    position: the stream position of the first batch (keys follow it).
    names: the metric names.
  """
  if n <= 0:
    return {}
  totals = eval_step.zeros()
  keys = (jax.random.fold_in(eval_key, position + i) for i in range(n))
  for (batch, _), key in zip(batches.epoch(n), keys):
    totals = eval_step(weights, state, batch, key, totals)
  values = np.asarray(jax.device_get(totals), np.float64) / n
  return dict(zip(names, values))


def is_best(history, metric, step, highest):
  """Whether eval `metric` recorded at `step` is the highest (or lowest) in `history`."""
  pairs = history.get('eval', f'metrics/{metric}')
  if not pairs or pairs[-1][0] != step:
    return False
  values = [v for _, v in pairs]
  return values[-1] == (max(values) if highest else min(values))


def last_is_best(history, metric, highest):
  """Whether the last recorded eval value of `metric` is the highest (lowest) so far.

  Trax 1.4's `Loop` rule for `checkpoint_high_metric`/`checkpoint_low_metric`:
  ties count as best, the step of the last value is not checked; False while
  nothing is recorded.
  """
  values = [v for _, v in history.get('eval', f'metrics/{metric}')]
  return bool(values) and values[-1] == (max(values) if highest else min(values))


__all__ = ['metrics_round', 'is_best', 'last_is_best']
