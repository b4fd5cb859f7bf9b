"""Tests for minitrax.supervised.history."""

import pytest

from minitrax.errors import CheckpointError
from minitrax.supervised.history import History


def test_append_get_in_time_order():
  history = History()
  history.append('eval', 'metrics/accuracy', 500, 0.5)
  history.append('eval', 'metrics/accuracy', 1000, 0.75)
  history.append('train', 'metrics/loss', 500, 2.0)
  assert history.get('eval', 'metrics/accuracy') == [(500, 0.5), (1000, 0.75)]
  assert history.get('eval', 'metrics/loss') == []
  assert history.get('nope', 'metrics/loss') == []
  assert history.modes == ['eval', 'train']
  assert history.metrics_for_mode('eval') == ['metrics/accuracy']
  assert history.metrics_for_mode('nope') == []


def test_get_returns_a_copy():
  history = History()
  history.append('train', 'm', 1, 1.0)
  history.get('train', 'm').append((2, 2.0))
  assert history.get('train', 'm') == [(1, 1.0)]


def test_round_trip_through_plain_data_and_truncate():
  history = History()
  for step in (1, 100, 200):
    history.append('train', 'metrics/loss', step, 1.0 / step)
    history.append('eval', 'metrics/loss', step, 2.0 / step)
  data = history.to_dict()
  assert data['train']['metrics/loss'] == [[1, 1.0], [100, 0.01], [200, 0.005]]
  restored = History.from_dict(data)
  assert restored == history
  restored.truncate(100)
  assert restored.get('eval', 'metrics/loss') == [(1, 2.0), (100, 0.02)]
  assert history.get('eval', 'metrics/loss')[-1] == (200, 0.01)


def test_malformed_history_names_the_source():
  with pytest.raises(CheckpointError, match=r'model\.pkl: the saved history is malformed'):
    History.from_dict({'train': {'m': [[1]]}}, 'model.pkl')
