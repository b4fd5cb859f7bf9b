"""`train()`'s checks of its arguments and batches (issue 13): bad input is a clear error, early."""

import os

import numpy as np
import pytest

from minitrax.data import Inputs, Stream, copy_inputs
from minitrax.errors import ConfigError, DataError
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, LogSoftmax
from minitrax.optimizers import SGD
from minitrax.supervised.train import Objective, Plan, train


def tiny(mode):
  del mode
  return Serial(Dense(2), LogSoftmax())


@pytest.mark.parametrize('kwargs,message', [
    (dict(random_seed=-1), 'train: random_seed must be an int >= 0, got -1'),
    (dict(random_seed='0'), "train: random_seed must be an int >= 0, got '0'"),
    (dict(n_devices=0), 'train: n_devices must be an int >= 1, got 0'),
    (dict(optimizer='Adam'), "train: optimizer must be an Optimizer class or instance, got 'Adam'"),
    (dict(lr_schedule=0.01), 'train: lr_schedule must be a schedule or a factory of one, got 0.01'),
    (dict(inputs=[1, 2]), r'train: inputs must be an Inputs or a function returning one, got '
     r'\[1, 2\]'),
    (dict(config_text=3), 'train: config_text must be None, a string or a function returning one, '
     'got 3'),
])
def test_train_checks_its_arguments_before_writing_anything(kwargs, message, tmp_path):
  kwargs = {'inputs': copy_inputs(4, 8, 6), **kwargs}
  with pytest.raises(ConfigError, match=f'^{message}$'):
    train(str(tmp_path / 'out'), tiny, **kwargs)
  assert not (tmp_path / 'out').exists()


def test_a_stream_whose_batch_3_lacks_weights_stops_train_with_a_data_error(tmp_path):
  """Issue 13, defect 5: was a raw IndexError while tracing the step."""

  def batch(i, _):
    x, y, w = np.ones((4, 3), np.float32), np.zeros((4,), np.int32), np.ones((4,), np.float32)
    return (x, y) if i == 3 else (x, y, w)

  with pytest.raises(DataError) as e:
    train(str(tmp_path), tiny, Inputs(Stream(batch)), optimizer=SGD,
          objective=Objective(has_weights=True), plan=Plan(steps=6, eval_steps=0))
  assert str(e.value) == ('train stream, batch 3: expected 3 arrays (inputs, targets, weights) '
                          'like batch 0, got 2 (inputs, targets)')
  assert os.path.exists(tmp_path / 'model.pkl')  # the step-0 checkpoint is kept
