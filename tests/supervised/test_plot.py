"""Tests for minitrax/supervised/plot.py: training curves from a History or a run folder."""

import json
import sys

import pytest

from minitrax.errors import DataError, ExtraMissingError
from minitrax.supervised import History, plot_history
from minitrax.supervised.plot import read_metrics


def write_metrics(folder):
  records = [(1, 'train', 'training/loss', 2.3), (2, 'train', 'training/loss', 2.0)]
  for step, loss, accuracy in ((2, 1.9, 0.4), (4, 1.2, 0.7)):
    records += [(step, mode, f'metrics/{name}', value)
                for mode in ('train', 'eval')
                for name, value in (('loss', loss), ('accuracy', accuracy))]
  lines = [json.dumps(dict(step=s, mode=m, metric=n, value=v, time=0.0)) for s, m, n, v in records]
  (folder / 'metrics.jsonl').write_text('\n'.join(lines) + '\n')


def test_a_run_folder_gives_a_png_with_loss_and_accuracy_axes(tmp_path):
  pytest.importorskip('matplotlib')
  write_metrics(tmp_path)
  figure = plot_history(str(tmp_path), path=tmp_path / 'curves.png')
  assert (tmp_path / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  loss, accuracy = figure.axes
  assert (loss.get_xlabel(), loss.get_ylabel()) == ('step', 'loss')
  assert (accuracy.get_xlabel(), accuracy.get_ylabel()) == ('step', 'accuracy')
  assert [line.get_label() for line in loss.lines] == ['train (each step)', 'train', 'eval']
  assert list(accuracy.lines[1].get_xdata()) == [2, 4]
  assert list(accuracy.lines[1].get_ydata()) == [0.4, 0.7]  # eval accuracy


def test_a_history_without_accuracy_has_one_panel():
  pytest.importorskip('matplotlib')
  history = History()
  history.append('eval', 'metrics/loss', 10, 0.5)
  figure = plot_history(history)
  assert [a.get_ylabel() for a in figure.axes] == ['loss']


def test_nothing_to_plot_and_bad_files_name_the_problem(tmp_path):
  pytest.importorskip('matplotlib')
  with pytest.raises(DataError, match=r"no metrics file '.*/metrics.jsonl'; give a History"):
    plot_history(str(tmp_path))
  with pytest.raises(DataError, match=r'holds no loss or accuracy at an evaluation'):
    plot_history(History())
  (tmp_path / 'metrics.jsonl').write_text('{"step": 1}\n')
  with pytest.raises(DataError, match=r'metrics.jsonl:1: not a metrics record'):
    read_metrics(tmp_path)


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)  # import fails
  with pytest.raises(ExtraMissingError) as error:
    plot_history(History())
  assert str(error.value) == ("plot_history needs matplotlib, an optional extra of minitrax: "
                              "pip install -e '.[plot]' (or pip install matplotlib)")
  assert isinstance(error.value, ImportError)
