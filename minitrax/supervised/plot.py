"""Training curves: loss and accuracy of a run, for train and eval data, in one call.

`plot_history(trainer.history)` or `plot_history(output_dir)` (a run folder,
read from its `metrics.jsonl`) draws two panels against the step: the loss
(the metric `loss` of training and eval data at each evaluation, and, from
`metrics.jsonl`, every step's training loss, lighter) and the accuracy. It
needs matplotlib, an optional extra: `pip install -e '.[plot]'`.

>>> figure = plot_history('~/train_dir', path='curves.png')   # doctest: +SKIP
"""

import json
import os

from minitrax.errors import DataError, ExtraMissingError
from minitrax.supervised.history import History

__all__ = ['plot_history', 'read_metrics']

PLOT_EXTRA = "pip install -e '.[plot]'"  # or `pip install matplotlib`
_PANELS = (('loss', 'metrics/loss'), ('accuracy', 'metrics/accuracy'))


def read_metrics(path):
  """The `History` of a run folder's `metrics.jsonl` (or of that file), every step included.

  Args:
    path: a run folder (its `output_dir`) or the path of a `metrics.jsonl`.

  Returns:
    A `History` with every record of the file (`training/loss` of each step too).

  Raises:
    DataError: no such file, or a line that is not a JSON record with
      `step`, `mode`, `metric` and `value` (names the file and line).
  """
  path = os.path.expanduser(os.fspath(path))
  if os.path.isdir(path):
    path = os.path.join(path, 'metrics.jsonl')
  if not os.path.isfile(path):
    raise DataError(f'plot_history: no metrics file {path!r}; give a History or a run folder '
                    '(an output_dir) with a metrics.jsonl')
  history = History()
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        history.append(record['mode'], record['metric'], record['step'], record['value'])
      except (ValueError, KeyError, TypeError) as e:
        raise DataError(f'{path}:{number}: not a metrics record with step, mode, metric and '
                        f'value: {line.strip()[:200]!r}') from e
  return history


def _figure_class():
  try:
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ExtraMissingError('plot_history needs matplotlib, an optional extra of minitrax: '
                            f'{PLOT_EXTRA} (or pip install matplotlib)') from e
  return Figure


def _draw(axes, history, label, metric):
  axes.set_xlabel('step')
  axes.set_ylabel(label)
  if label == 'loss' and history.get('train', 'training/loss'):
    steps, values = zip(*history.get('train', 'training/loss'))
    axes.plot(steps, values, color='tab:blue', alpha=0.3, linewidth=0.8, label='train (each step)')
  for mode, color in (('train', 'tab:blue'), ('eval', 'tab:orange')):
    pairs = history.get(mode, metric)
    if pairs:
      steps, values = zip(*pairs)
      axes.plot(steps, values, color=color, marker='o', markersize=3, label=mode)
  axes.grid(alpha=0.3)
  if axes.lines:
    axes.legend()


def plot_history(history_or_dir, path=None):
  """Plots the loss and accuracy curves of a run, train and eval, against the step.

  Args:
    history_or_dir: a `History` (`trainer.history`, `loop.history`), or a run
      folder (an `output_dir`) or `metrics.jsonl` path, read with
      `read_metrics`.
    path: if given, the figure is also saved there (the format follows the
      extension: `.png`, `.pdf`, `.svg`).

  Returns:
    The matplotlib `Figure`: two axes, 'loss' and 'accuracy' (y labels),
    'step' on x; an accuracy panel only if accuracy was recorded.

  Raises:
    ExtraMissingError: matplotlib is not installed (names the extra).
    DataError: no metrics file in the folder, or nothing to plot.
  """
  figure_class = _figure_class()
  history = history_or_dir if isinstance(history_or_dir, History) else read_metrics(history_or_dir)
  panels = [(label, metric) for label, metric in _PANELS if any(
      history.get(mode, metric) for mode in ('train', 'eval'))]
  if not panels:
    raise DataError('plot_history: the history holds no loss or accuracy at an evaluation '
                    f'(modes: {history.modes}); train at least one epoch first')
  figure = figure_class(figsize=(5 * len(panels), 3.5), layout='tight')
  for axes, (label, metric) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
    _draw(axes, history, label, metric)
  if path is not None:
    figure.savefig(os.path.expanduser(os.fspath(path)), dpi=100)
  return figure
