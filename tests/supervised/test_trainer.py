"""Tests for minitrax.supervised.trainer: epochs, logs, checkpoints, errors."""

import os
import re

import numpy as np
import pytest

import jax

from minitrax import checkpoint
from minitrax import lr
from minitrax.data import Inputs, Stream, copy_inputs
from minitrax.errors import CheckpointError, ConfigError, LayerError, TrainingError
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Dropout, Embedding, LogSoftmax
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.optimizers import SGD, Adam
from minitrax.supervised.summaries import read_metrics
from minitrax.supervised.trainer import Trainer

VOCAB = 8


def tiny(mode='train', d=8):
  return Serial(Embedding(VOCAB, d), Dropout(0.1, mode=mode), Dense(VOCAB), LogSoftmax())


def make(output_dir, model=tiny, optimizer=Adam, **kwargs):
  kwargs.setdefault('has_weights', True)
  return Trainer(model, CrossEntropyLoss, optimizer, lr.MultifactorSchedule,
                 kwargs.pop('inputs', None) or copy_inputs(4, VOCAB, 6), output_dir, **kwargs)


METRIC_LINE = re.compile(r'^Step {6}3: (train|eval ) ( *[a-z_]+) \| [ -]\d+\.\d{8}$')


def test_train_epoch_prints_trax_logs_and_saves(tmp_path, capsys):
  trainer = make(str(tmp_path))
  assert capsys.readouterr().out == f'No checkpoint in {tmp_path}; initialising\n'
  trainer.train_epoch(3, 1)
  lines = capsys.readouterr().out.split('\n')
  assert lines[0] == ''
  assert re.fullmatch(r'Step {6}3: Ran 3 train steps in \d+\.\d\d secs', lines[1])
  assert lines[2] == 'Step      3: Evaluation'
  assert lines[13:] == ['Step      3: Finished evaluation', '']
  metric_lines = lines[3:13]
  assert all(METRIC_LINE.match(line) for line in metric_lines), metric_lines
  names = [METRIC_LINE.match(line).group(2) for line in metric_lines]
  assert names[:5] == names[5:] == [
      '                  accuracy', '                      loss', '        neg_log_perplexity',
      '         sequence_accuracy', 'weights_per_batch_per_core'
  ]
  assert {line.index('|') for line in metric_lines} == {46}
  # Copy task, 4 rows of length 6: weight 1 on the last 4 positions of each row.
  assert metric_lines[4].endswith('|  16.00000000')
  loss = trainer.history.get('eval', 'metrics/loss')
  assert loss[0][0] == 3
  assert trainer.history.get('eval', 'metrics/neg_log_perplexity') == [(3, -loss[0][1])]
  assert trainer.history.get('train', 'training/learning_rate')[0][0] == 3
  saved = checkpoint.load(str(tmp_path / 'model.pkl'))
  assert saved['step'] == 3 and saved['format'] == 'minitrax.trainer'
  assert saved['input_position'] == 3
  assert [
      r['step'] for r in read_metrics(str(tmp_path / 'metrics.jsonl'), 'train', 'training/loss')
  ] == [1, 2, 3]


def test_resumed_trainer_continues_exactly(tmp_path, capsys):
  straight = make(str(tmp_path / 'a'))
  straight.train_epoch(2, 1)
  straight.train_epoch(2, 1)
  first = make(str(tmp_path / 'b'))
  first.train_epoch(2, 1)
  first.close()  # releases the folder for the next Trainer
  capsys.readouterr()
  resumed = make(str(tmp_path / 'b'))
  assert capsys.readouterr().out == f'Model loaded from {tmp_path / "b" / "model.pkl"} at step 2\n'
  assert resumed.step == 2
  resumed.train_epoch(2, 1)
  for a, b in zip(jax.tree.leaves(straight.state), jax.tree.leaves(resumed.state)):
    np.testing.assert_array_equal(a, b)
  losses = [read_metrics(str(tmp_path / d / 'metrics.jsonl'), 'train') for d in 'ab']
  assert [(r['step'], r['value']) for r in losses[0]] == [(r['step'], r['value']) for r in losses[1]
                                                         ]
  assert resumed.history == straight.history


def test_restoring_into_another_model_or_optimizer_lists_paths(tmp_path):
  make(str(tmp_path))
  with pytest.raises(CheckpointError) as error:
    make(str(tmp_path), model=lambda mode: tiny(mode, d=6))
  message = str(error.value)
  assert 'the checkpoint does not fit this model and optimizer' in message
  assert "weights[0]: saved (8, 8) float32, expected (8, 6) float32" in message
  assert "weights[2][0]: saved (8, 8) float32, expected (6, 8) float32" in message
  assert 'slots' in message
  with pytest.raises(CheckpointError, match=r'(?s)mismatched path.*slots\[0\]'):
    make(str(tmp_path), optimizer=SGD)


def test_has_weights_must_match_the_batches(tmp_path):
  with pytest.raises(ConfigError, match=r'carry loss weights .* but has_weights=False'):
    make(None, has_weights=False)
  two = Inputs(Stream(lambda i, n: (np.zeros((4, 6), np.int32),) * 2))
  with pytest.raises(ConfigError, match=r'has_weights=True but the training batches have no '
                     r'weights'):
    make(None, inputs=two)
  with pytest.raises(ConfigError, match=r'the loss CrossEntropyLoss takes 2 inputs but gets 3'):
    Trainer(tiny, CrossEntropyLoss(), Adam, None, copy_inputs(4, VOCAB, 6), has_weights=True)
  assert not os.listdir(tmp_path)


def _nan_at(bad_index):
  """Float batches; batch `bad_index` holds a NaN."""

  def batch(i, _):
    x = np.full((4, 3), 0.5, np.float32)
    if i == bad_index:
      x[1, 2] = np.nan
    return x, np.array([0, 1, 2, 1], np.int32)

  return Inputs(Stream(batch))


def test_nan_loss_stops_training_and_nothing_is_saved(tmp_path, capsys):
  trainer = Trainer(lambda mode: Serial(Dense(3), LogSoftmax()), CrossEntropyLoss, SGD, None,
                    _nan_at(4), str(tmp_path))
  trainer.train_epoch(2, 0)
  capsys.readouterr()
  with pytest.raises(TrainingError, match=r'^Step 5: the loss is nan\. Training stopped'):
    trainer.train_epoch(4, 1)
  assert capsys.readouterr().out == '\n'  # no evaluation, no save
  assert checkpoint.load(str(tmp_path / 'model.pkl'))['step'] == 2
  with pytest.raises(TrainingError, match='diverged at step 5'):
    trainer.save_state(keep=False)
  with pytest.raises(TrainingError, match='diverged at step 5'):
    trainer.train_epoch(1, 0)


def test_a_batch_without_weight_stops_training():

  def batch(i, _):
    x = np.zeros((4, 6), np.int32)
    return x, x, np.full((4, 6), 0.0 if i == 2 else 1.0, np.float32)

  trainer = make(None, inputs=Inputs(Stream(batch)))
  with pytest.raises(TrainingError, match=r'^Step 3: the loss is nan'):
    trainer.train_epoch(4, 0)


def test_an_out_of_range_target_names_the_step_and_the_id_check():

  def batches(_):  # a plain generator (re-read from its start to diagnose)
    rng = np.random.RandomState(0)
    for i in range(100):
      x = rng.randint(1, VOCAB, size=(4, 6)).astype(np.int32)
      y = x.copy()
      if i == 3:
        y[2, 4] = VOCAB + 1
      yield x, y, np.ones((4, 6), np.float32)

  trainer = make(None, inputs=Inputs(batches))
  with pytest.raises(
      TrainingError, match=r'(?s)^Step 4: the loss is nan because the model fails '
      r'on this step\'s batch.*CrossEntropyLoss targets: ids must lie in '
      r'\[0, 8\), got values from 1 to 9') as info:
    trainer.train_epoch(6, 0)
  assert isinstance(info.value.__cause__, LayerError)


def test_checkpoints_at_highest_and_lowest(tmp_path):
  trainer = make(str(tmp_path), checkpoints_at=[2, 5], checkpoint_highest='accuracy',
                 checkpoint_lowest='loss')
  trainer.train_epoch(3, 1)
  files = sorted(f for f in os.listdir(tmp_path) if f.endswith('.pkl'))
  assert files == ['highest_accuracy.pkl', 'lowest_loss.pkl', 'model.pkl', 'model_2.pkl']
  assert checkpoint.load(str(tmp_path / 'model_2.pkl'))['step'] == 2
  assert checkpoint.load(str(tmp_path / 'lowest_loss.pkl'))['step'] == 3


def test_model_weights_are_a_copy_and_settable(tmp_path):
  trainer = make(None)
  weights = trainer.model_weights
  trainer.train_epoch(2, 0)
  np.testing.assert_array_equal(np.asarray(weights[0]), np.asarray(weights[0]))  # not donated
  predict = tiny('predict')
  predict.init(np.zeros((1, 1), np.int32))
  predict.weights = trainer.model_weights
  assert predict(np.zeros((1, 1), np.int32)).shape == (1, 1, VOCAB)
  trainer.model_weights = weights
  np.testing.assert_array_equal(np.asarray(trainer.model_weights[2][0]), weights[2][0])
  with pytest.raises(CheckpointError, match=r'(?s)Trainer\.model_weights: .*\[0\]: saved \(8, 2\)'):
    trainer.model_weights = (np.zeros((8, 2), np.float32),) + tuple(weights[1:])


def test_model_pkl_loads_with_init_from_file(tmp_path):
  trainer = make(str(tmp_path))
  trainer.train_epoch(1, 0)
  model = tiny('eval')
  model.init_from_file(str(tmp_path / 'model.pkl'), input_signature=np.zeros((2, 6), np.int32))
  for a, b in zip(jax.tree.leaves(model.weights), jax.tree.leaves(trainer.model_weights)):
    np.testing.assert_array_equal(a, b)


def test_schedule_is_evaluated_at_the_step_being_taken():
  seen = []

  def schedule(step):
    seen.append(int(step))
    return 0.0 if step == 0 else 0.5

  trainer = Trainer(tiny, CrossEntropyLoss, SGD, schedule, copy_inputs(4, VOCAB, 6),
                    has_weights=True)
  before = trainer.model_weights
  trainer.train_epoch(1, 0)
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(trainer.model_weights)):
    np.testing.assert_array_equal(a, b)  # learning rate 0 at step 0, as in Trax
  trainer.train_epoch(1, 0)
  assert seen[:2] == [0, 1]
  assert trainer.learning_rate == 0.5


def test_schedule_factories_see_the_history_after_each_epoch():
  seen = []

  @lr.takes_history
  def factory(history):
    seen.append([step for step, _ in history.get('eval', 'metrics/accuracy')])
    return lambda step: {'learning_rate': 0.01}

  trainer = Trainer(tiny, CrossEntropyLoss, Adam, factory, copy_inputs(4, VOCAB, 6),
                    has_weights=True)
  trainer.train_epoch(1, 1)
  trainer.train_epoch(2, 1)
  assert seen == [[], [1], [1, 3]]
  assert trainer.learning_rate == np.float32(0.01)


def test_seed_none_is_zero_and_seeds_differ(capsys):
  weights = [make(None, random_seed=s).model_weights for s in (None, 0, 1)]
  np.testing.assert_array_equal(weights[0][0], weights[1][0])
  assert not np.array_equal(weights[0][0], weights[2][0])
  make(None).print_n_weights()
  expected = VOCAB * 8 + 8 * VOCAB + VOCAB
  assert capsys.readouterr().out == f'Step      0: Total number of trainable weights: {expected}\n'


def test_summaries_are_written(tmp_path):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  trainer = make(str(tmp_path))
  trainer.train_epoch(10, 1)
  trainer.close()
  train = EventAccumulator(str(tmp_path / 'train'))
  train.Reload()
  assert {
      'metrics/accuracy', 'training/learning_rate', 'training/loss', 'training/steps per second'
  } <= set(train.Tags()['scalars'])
  assert [e.step for e in train.Scalars('training/learning_rate')] == [1, 10]
  evals = EventAccumulator(str(tmp_path / 'eval'))
  evals.Reload()
  assert [e.step for e in evals.Scalars('metrics/loss')] == [10]


def test_long_epochs_log_progress(monkeypatch, capsys):
  from minitrax.supervised import trainer as trainer_lib
  monkeypatch.setattr(trainer_lib, 'PROGRESS_SECS', 0.0)
  trainer = make(None, checkpoints_at=[1, 2])  # calls end at steps 1, 2 and 3
  trainer.train_epoch(3, 0)
  lines = capsys.readouterr().out.splitlines()
  assert [line[:37] for line in lines[1:4]] == [
      'Step      1: Ran 1 of 3 train steps (', 'Step      2: Ran 2 of 3 train steps (',
      'Step      3: Ran 3 of 3 train steps ('
  ]
  assert all(
      re.fullmatch(r'Step {6}\d: Ran \d of 3 train steps \(\d+\.\d\d steps/s, '
                   r'loss \d\.\d{8}\)', line) for line in lines[1:4]), lines[1:4]
  assert re.fullmatch(r'Step {6}3: Ran 3 train steps in \d+\.\d\d secs', lines[4])
