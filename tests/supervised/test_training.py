"""Tests for minitrax.supervised.training: Trax 1.4's TrainTask, EvalTask and Loop.

Numbers and log lines marked "real Trax 1.4.1" were printed by Trax 1.4.1
(`trax.supervised.training`) running the same model from the same initial
weights on the same batches (`trax_reference_loop` below, with `trax.layers`,
`trax.optimizers`, `trax.lr`).
"""

import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import jax

from minitrax import checkpoint, lr
from minitrax.errors import ArgumentError, CheckpointError, ConfigError
from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Branch, Select, Serial
from minitrax.data import copy_inputs
from minitrax.layers.core import Dense, Dropout, Embedding, LogSoftmax
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.layers.metrics14 import L2Loss, WeightedCategoryAccuracy, WeightedCategoryCrossEntropy
from minitrax.models import trax14
from minitrax.models.transformer import TransformerLM
from minitrax.optimizers import SGD, Adam, Momentum
from minitrax.shapes import ShapeDtype, signature
from minitrax.supervised import decoding
from minitrax.supervised.trainer import Trainer
from minitrax.supervised.training import EvalTask, Loop, TrainTask

HERE = os.path.dirname(os.path.abspath(__file__))
TRAX_FIXTURES = os.path.join(HERE, '..', 'fixtures', 'trax')
VOCAB = 8

# ------------------------------------------------------------------ data and models


def very_simple_data(output_dim=1):
  """Trax's training_test data: small integers mapped to the constant pi."""
  x = np.arange(8).reshape((8, 1))
  t = np.pi * np.ones((8, output_dim))
  while True:
    yield x, t, np.ones_like(t)


def copy_batches(seed, batch_size=16, length=6):
  """Endless copy-task batches (targets = inputs), deterministic from `seed`."""
  rng = np.random.RandomState(seed)
  while True:
    x = rng.randint(1, VOCAB, size=(batch_size, length)).astype(np.int32)
    yield x, x, np.ones_like(x, np.float32)


def copy_model(mode='train'):
  return Serial(Embedding(VOCAB, 16), Dropout(0.1, mode=mode), Dense(VOCAB))


def fixed_batches(seed, n):
  rng = np.random.RandomState(seed)
  return [(rng.randn(8, 5).astype(np.float32), rng.randint(0, 3, size=(8,)).astype(np.int32),
           rng.randint(0, 3, size=(8,)).astype(np.float32)) for _ in range(n)]


def trax_reference_loop():
  """The run of real Trax 1.4.1 that the literals of this file come from, in minitrax."""
  rng = np.random.RandomState(7)
  weights = ((rng.randn(5, 4).astype(np.float32) * 0.5, rng.randn(4).astype(np.float32) * 0.1), (),
             (rng.randn(4, 3).astype(np.float32) * 0.5, rng.randn(3).astype(np.float32) * 0.1))
  model = Serial(Dense(4), Relu(), Dense(3))
  train = fixed_batches(1, 4)
  model.init(signature(train[0][0]))
  model.weights = weights
  task = TrainTask(itertools.cycle(train), WeightedCategoryCrossEntropy(), Adam(0.02),
                   lr_schedule=lr.warmup(2, 0.02))
  eval_task = EvalTask(
      itertools.cycle(fixed_batches(2, 2)),
      [WeightedCategoryCrossEntropy(), WeightedCategoryAccuracy()], metric_names=['xent', 'acc'],
      n_eval_batches=2)
  return Loop(model, task, eval_tasks=[eval_task], eval_at=lambda step: True, random_seed=0)


def history_of(loop):
  return {(mode, name): [v for _, v in loop.history.get(mode, name)] for mode in loop.history.modes
          for name in loop.history.metrics_for_mode(mode)}


# ------------------------------------------------------------------ training and logs


def test_loop_learns_the_copy_task():
  task = TrainTask(copy_batches(0), WeightedCategoryCrossEntropy(), Adam(0.05))
  eval_task = EvalTask(copy_batches(1), [WeightedCategoryAccuracy()], n_eval_batches=2)
  loop = Loop(copy_model(), task, eval_model=copy_model('eval'), eval_tasks=eval_task,
              eval_at=lambda step: step % 100 == 0)
  loop.run(200)
  assert loop.step == 200
  accuracy = loop.history.get('eval', 'metrics/WeightedCategoryAccuracy')
  assert [s for s, _ in accuracy] == [100, 200]
  assert accuracy[-1][1] >= 0.99
  x = next(copy_batches(5))[0]
  assert (np.asarray(loop.eval_model(x)).argmax(-1) == x).mean() >= 0.99  # the layer is trained


# Real Trax 1.4.1's output for trax_reference_loop().run(3).
TRAX_LOG = """Will not write evaluation metrics, because output_dir is None.
Did not save checkpoint as output_dir is None

Step      1: Total number of trainable weights: 39
Step      1: Ran 1 train steps in 0.41 secs
Step      1: train WeightedCategoryCrossEntropy |  1.13908172
Step      1: eval                          xent |  1.17789710
Step      1: eval                           acc |  0.49404763

Step      2: Ran 1 train steps in 0.00 secs
Step      2: train WeightedCategoryCrossEntropy |  1.42398095
Step      2: eval                          xent |  1.16048282
Step      2: eval                           acc |  0.41071430

Step      3: Ran 1 train steps in 0.00 secs
Step      3: train WeightedCategoryCrossEntropy |  2.03029370
Step      3: eval                          xent |  1.16163272
Step      3: eval                           acc |  0.41071430
"""


def _split_log(text):
  """Lines with the seconds masked, and the numbers after '|' apart."""
  lines, numbers = [], []
  for line in text.split('\n'):
    line = re.sub(r'in \d+\.\d\d secs$', 'in X secs', line)
    if ' | ' in line:
      line, number = line.rsplit(' | ', 1)
      numbers.append(float(number))
      assert re.fullmatch(r'[ -]\d+\.\d{8}', number), number
    lines.append(line)
  return lines, numbers


def test_logs_are_trax_logs_line_for_line(capsys):
  trax_reference_loop().run(3)
  lines, numbers = _split_log(capsys.readouterr().out)
  trax_lines, trax_numbers = _split_log(TRAX_LOG)
  assert lines == trax_lines
  np.testing.assert_allclose(numbers, trax_numbers, atol=1e-6)


def test_numbers_match_real_trax_after_three_adam_steps():
  """Same initial weights and batches: Adam (steps from 1) with warmup, as real Trax 1.4.1."""
  loop = trax_reference_loop()
  loop.run(3)
  history = history_of(loop)
  trax = {  # real Trax 1.4.1: loop.history after run(3)
      ('eval', 'metrics/acc'): [0.4940476268529892, 0.4107142984867096, 0.4107142984867096],
      ('eval', 'metrics/xent'): [1.1778970956802368, 1.1604828238487244, 1.1616327166557312],
      ('train', 'metrics/WeightedCategoryCrossEntropy'):
          [1.1390817165374756, 1.423980951309204, 2.0302937030792236],
      ('train', 'training/gradients_l2'):
          [0.8253147602081299, 1.0799247026443481, 2.5244905948638916],
      ('train', 'training/learning_rate'): [0.006666666666666666, 0.013333333333333332, 0.02],
      ('train', 'training/loss'): [1.1390817165374756, 1.423980951309204, 2.0302937030792236],
      ('train', 'training/weights_l2'): [2.8604483604431152, 2.855679988861084, 2.8366992473602295],
  }
  assert set(history) == set(trax) | {('train', 'training/steps per second')}
  for key, values in trax.items():
    np.testing.assert_allclose(history[key], values, atol=1e-5, err_msg=str(key))
  kernel = [[0.8252277374267578, -0.2151479572057724, 0.04572756960988045, 0.17866408824920654],
            [-0.3655180037021637, -0.02629314363002777, -0.03176821768283844, -0.8504205942153931],
            [0.4861402213573456, 0.26995939016342163, -0.29548588395118713, -0.08743877708911896],
            [0.27613338828086853, -0.1345408707857132, -0.15105216205120087, -0.7020162343978882],
            [0.26581835746765137, 0.08330050110816956, 0.13209228217601776, -0.7791894674301147]]
  np.testing.assert_allclose(loop.model.weights[0][0], kernel, atol=1e-5)  # real Trax 1.4.1


def test_no_eval_tasks_trains_quietly_and_run_evals_leaves_the_step(capsys):
  loop = Loop(Serial(Dense(1)), [TrainTask(very_simple_data(), L2Loss(), SGD(.01))])
  loop.run(n_steps=5)
  assert capsys.readouterr().out == ('Will not write evaluation metrics, because output_dir is '
                                     'None.\n' + 'Did not save checkpoint as output_dir is None\n')
  assert loop.step == 5 and loop.history.modes == []
  task = TrainTask(very_simple_data(), L2Loss(), SGD(.01))
  loop = Loop(Serial(Dense(1)), task, eval_tasks=EvalTask(very_simple_data(), [L2Loss()]),
              eval_at=lambda step: False)
  loop.run(10)
  loop.run_evals()
  assert loop.step == 10 and [s for s, _ in loop.history.get('eval', 'metrics/L2Loss')] == [10]


def test_an_initialised_model_keeps_its_weights():
  model = Serial(Dense(1))
  model.init(next(very_simple_data())[0])
  kernel = np.asarray(model.weights[0][0])
  loop = Loop(model, [TrainTask(very_simple_data(), L2Loss(), SGD(.01))])
  assert loop.step == 0
  np.testing.assert_array_equal(loop.model.weights[0][0], kernel)


# ------------------------------------------------------------------ checkpoints


def _simple_loop(output_dir, optimizer=None, **kwargs):
  task = TrainTask(very_simple_data(), L2Loss(), optimizer or Momentum(.01),
                   n_steps_per_checkpoint=5, n_steps_per_permanent_checkpoint=10)
  eval_task = EvalTask(very_simple_data(), [L2Loss()], metric_names=['l2_loss'])
  return Loop(Serial(Dense(1)), [task], eval_tasks=[eval_task], output_dir=output_dir, **kwargs)


def test_checkpoint_and_eval_schedules(tmp_path, capsys):
  loop = _simple_loop(str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ['.lock']
  loop.run(12)
  assert sorted(os.listdir(tmp_path)) == [
      '.lock', 'eval', 'metrics.jsonl', 'model.pkl.gz', 'model_1.pkl.gz', 'model_10.pkl.gz', 'train'
  ]
  assert [s for s, _ in loop.history.get('eval', 'metrics/l2_loss')] == [1, 5, 10]
  assert [len(os.listdir(tmp_path / d)) for d in ('train', 'eval')] == [1, 1]  # event files
  loop.run(1)
  assert [len(os.listdir(tmp_path / d)) for d in ('train', 'eval')] == [2, 2]  # one per run
  out = capsys.readouterr().out
  assert re.findall(r'Step +(\d+): Ran (\d+) train steps', out) == [('1', '1'), ('5', '4'),
                                                                    ('10', '5')]
  with open(tmp_path / 'model.pkl.gz', 'rb') as f:
    assert f.read(8) == checkpoint.MAGIC  # a minitrax checkpoint, never a pickle
  saved = checkpoint.load(str(tmp_path / 'model.pkl.gz'))
  assert saved['step'] == 10 and loop.step == 13 and saved['eval_position'] == 3
  # Saved before the evaluation of its step, as in Trax: the history stops at step 5.
  assert [s for s, _ in saved['history']['eval']['metrics/l2_loss']] == [1, 5]
  fresh = Serial(Dense(1))
  fresh.init_from_file(str(tmp_path / 'model.pkl.gz'))  # initialised from the recorded signature
  np.testing.assert_array_equal(fresh.weights[0][0], saved['weights'][0][0])


@pytest.mark.parametrize('kind,expected', [('low', {'model': 5, 'lowest_l2_loss': 5}),
                                           ('high', {'model': 5, 'highest_l2_loss': 1})])
def test_best_metric_checkpoints(tmp_path, kind, expected):
  """Trax's test: the metric falls steadily, so 'lowest' is saved each time, 'highest' once."""
  loop = _simple_loop(str(tmp_path), SGD(.01), eval_at=lambda step: step % 2 == 0,
                      checkpoint_at=lambda step: step % 2 == 0,
                      permanent_checkpoint_at=lambda step: False,
                      **{f'checkpoint_{kind}_metric': 'l2_loss'})
  calls = []
  loop.save_checkpoint = calls.append
  loop.run(n_steps=10)
  assert {name: calls.count(name) for name in set(calls)} == expected


def _resumable(output_dir):
  task = TrainTask(copy_batches(0, 4), WeightedCategoryCrossEntropy(), Adam(0.01),
                   n_steps_per_checkpoint=4)
  eval_task = EvalTask(copy_batches(1, 4), [WeightedCategoryCrossEntropy()], n_eval_batches=2)
  return Loop(copy_model(), task, eval_model=copy_model('eval'), eval_tasks=eval_task,
              output_dir=str(output_dir))


def test_a_restarted_loop_continues_exactly(tmp_path):
  straight = _resumable(tmp_path / 'a')
  straight.run(12)
  first = _resumable(tmp_path / 'b')
  first.run(6)  # checkpoints at steps 1 and 4; steps 5 and 6 are lost
  first.close()  # releases the folder for the next Loop
  resumed = _resumable(tmp_path / 'b')
  assert resumed.step == 4
  resumed.run(8)
  for mode, name in [('train', 'metrics/WeightedCategoryCrossEntropy'),
                     ('eval', 'metrics/WeightedCategoryCrossEntropy')]:
    assert resumed.history.get(mode, name)[-2:] == straight.history.get(mode, name)[-2:]
    assert [s for s, _ in resumed.history.get(mode, name)] == [1, 8, 12]  # 4: after its save
  for a, b in zip(jax.tree.leaves(straight.model.weights), jax.tree.leaves(resumed.model.weights)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(straight.tasks[0].optimizer.slots),
                  jax.tree.leaves(resumed.tasks[0].optimizer.slots)):
    np.testing.assert_array_equal(a, b)


def test_save_and_load_checkpoint_round_trip(tmp_path):
  loop = _simple_loop(str(tmp_path / 'a'))
  loop.run(3)
  loop.save_checkpoint('kept')
  other = _simple_loop(None)
  assert other.step == 0
  other.load_checkpoint(str(tmp_path / 'a'), 'kept')
  assert other.step == 3 and history_of(other) == history_of(loop)
  np.testing.assert_array_equal(other.model.weights[0][0], loop.model.weights[0][0])
  np.testing.assert_array_equal(other.tasks[0].optimizer.slots[0][0],
                                loop.tasks[0].optimizer.slots[0][0])
  other.load_checkpoint(str(tmp_path / 'a'), 'missing')  # no file: nothing changes
  assert other.step == 3
  wider = Loop(Serial(Dense(2)), TrainTask(very_simple_data(2), L2Loss(), Momentum(.01)))
  with pytest.raises(
      CheckpointError, match=r'kept.pkl.gz: the checkpoint does not fit this '
      r'model and optimizer \(it is another run.s: .*\); 4 mismatched path\(s\)'):
    wider.load_checkpoint(str(tmp_path / 'a'), 'kept')


def test_loads_a_real_trax_checkpoint():
  """Trax 1.4.1's Loop wrote tests/fixtures/trax/v14_mlp after one Adam step (make_fixtures.py)."""
  folder = os.path.join(TRAX_FIXTURES, 'v14_mlp')
  x, expected = np.load(os.path.join(folder,
                                     'input.npy')), np.load(os.path.join(folder, 'output.npy'))
  batch = (x, np.array([1, 3], np.int32), np.ones(2, np.float32))
  task = TrainTask(itertools.repeat(batch), WeightedCategoryCrossEntropy(), Adam(0.01))
  loop = Loop(trax14.MLP(layer_widths=(8, 4)), task)
  loop.load_checkpoint(folder)
  assert loop.step == 1
  np.testing.assert_allclose(loop.model(x), expected, atol=1e-5)
  slots = task.optimizer.slots
  assert [tuple(s.shape for s in pair) for pair in slots] == [((6, 8), (6, 8)), ((8,), (8,)),
                                                              ((8, 4), (8, 4)), ((4,), (4,))]
  assert all(np.abs(np.asarray(s)).max() > 0 for pair in slots for s in pair)  # Adam's moments
  loop.run(1)
  assert loop.step == 2


# ------------------------------------------------------------------ several tasks and devices


def test_two_tasks_alternate_and_resume(tmp_path):
  """Trax's test_can_predict_with_trained_model, then a restart: each task keeps its slots."""

  def make():
    model = Serial(Dense(3), Branch(Dense(1), Dense(2)))
    tasks = [
        TrainTask(very_simple_data(d), Serial(Select([d - 1], n_in=2), L2Loss()), Momentum(.01))
        for d in (1, 2)
    ]
    evals = [
        EvalTask(very_simple_data(d), [Serial(Select([d - 1], n_in=2), L2Loss())]) for d in (1, 2)
    ]
    return Loop(model, tasks, eval_tasks=evals, output_dir=str(tmp_path),
                checkpoint_at=lambda step: True, which_task=lambda step: step % 2)

  loop = make()
  initial = [np.asarray(w) for w in jax.tree.leaves(loop.model.weights)]
  loop.run(4)
  out = loop.eval_model(next(very_simple_data())[0])
  assert [o.shape for o in out] == [(8, 1), (8, 2)]
  assert all(
      np.abs(a - np.asarray(b)).max() > 0
      for a, b in zip(initial, jax.tree.leaves(loop.model.weights)))
  assert sorted(os.listdir(tmp_path))[:3] == ['.lock', '0', '1']  # eval summaries per task
  loop.close()
  again = make()
  assert again.step == 4
  for task_a, task_b in zip(loop.tasks, again.tasks):
    for a, b in zip(jax.tree.leaves(task_a.optimizer.slots),
                    jax.tree.leaves(task_b.optimizer.slots)):
      np.testing.assert_array_equal(a, b)


def test_four_devices_match_one_device():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, os.path.join(HERE, 'loop_devices_run.py')], env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  line = [row for row in out.stdout.splitlines() if row.startswith('REPORT ')][-1]
  report = json.loads(line[len('REPORT '):])
  assert report['n_devices'] == [1, 4]
  assert report['weight_diff'] < 1e-5
  one, four = report['history']
  assert set(one) == set(four) and len(one) == 7
  for key in one:
    np.testing.assert_allclose(one[key], four[key], rtol=1e-5, atol=1e-6, err_msg=key)
  assert not report['tensorflow_imported']


# ------------------------------------------------------------------ arguments


def test_unsupported_arguments_are_refused_by_name():
  task = TrainTask(very_simple_data(), L2Loss(), SGD(.01))
  with pytest.raises(ArgumentError) as info:
    Loop(Serial(Dense(1)), task, use_memory_efficient_trainer=True, callbacks=[object])
  assert str(info.value).startswith(
      "Loop: use_memory_efficient_trainer=True, callbacks=[<class 'object'>] not supported: "
      'minitrax trains with one compiled data-parallel step')
  for kwargs, name in [({'adasum': True}, 'adasum=True'),
                       ({'loss_chunk_size': 4}, 'loss_chunk_size=4')]:
    with pytest.raises(ArgumentError, match=f'Loop: {name} not supported'):
      Loop(Serial(Dense(1)), task, **kwargs)


def test_task_arguments():
  data = very_simple_data()
  task = TrainTask(data, L2Loss(), SGD, lr_schedule=lr.constant(0.5))
  assert task.loss_name == 'L2Loss' and task.sample_batch[0].shape == (8, 1)
  assert task.learning_rate(3) == 0.5 and isinstance(task.optimizer, SGD)
  assert TrainTask(data, L2Loss(), SGD(0.25)).learning_rate(1) == 0.25
  with pytest.raises(
      ArgumentError, match=r'EvalTask: number of metrics \(1\) does not equal '
      r'number of metric names \(2\)'):
    EvalTask(data, [L2Loss()], metric_names=['a', 'b'])
  with pytest.raises(
      ConfigError, match=r'TrainTask: the loss WeightedCategoryCrossEntropy '
      r'takes 3 inputs but gets 2'):
    Loop(
        Serial(Dense(1)),
        TrainTask(iter([(np.ones((2, 1)), np.ones((2, 1)))]), WeightedCategoryCrossEntropy(),
                  SGD()))


def test_update_weights_and_state_and_new_rng():
  loop = Loop(Serial(Dense(1)), TrainTask(very_simple_data(), L2Loss(), SGD(.01)))
  weights = jax.tree.map(np.zeros_like, loop.model.weights)
  loop.update_weights_and_state(weights=weights)
  np.testing.assert_array_equal(loop.model.weights[0][0], [[0.0]])
  loop.run(1)  # one SGD step from zero: the bias moves by 2 * lr * pi
  np.testing.assert_allclose(loop.model.weights[0][1], [0.02 * np.pi], rtol=1e-6)
  keys = [loop.new_rng(), loop.new_rng()]
  assert not np.array_equal(jax.random.key_data(keys[0]), jax.random.key_data(keys[1]))
  assert loop.n_devices == 1 and loop.output_dir is None and loop.is_chief


# ------------------------------------------------------------------ Trax 1.2/1.4 API, around Loop


def test_optimizer_slots_after_init_and_not_traced():
  weights = (np.ones((2, 3), np.float32), (), np.zeros(3, np.float32))
  opt = Adam()
  assert opt.slots is None
  opt.tree_init(weights)
  assert [tuple(s.shape for s in pair) for pair in opt.slots] == [((2, 3), (2, 3)), ((3,), (3,))]
  jax.jit(lambda w: Momentum().tree_init(w)[0])(weights)  # a traced init stores nothing
  opt.slots = 'set'
  assert opt.slots == 'set'


def test_trainer_reset_retargets_and_loads(tmp_path, capsys):

  def model(mode):
    return Serial(Embedding(VOCAB, 8), Dense(VOCAB), LogSoftmax())

  trainer = Trainer(model, CrossEntropyLoss, Adam, lr.MultifactorSchedule, copy_inputs(4, VOCAB, 6),
                    str(tmp_path / 'a'), has_weights=True)
  initial = trainer.model_weights
  trainer.train_epoch(3, 1)
  trained = trainer.model_weights
  trainer.reset(str(tmp_path / 'b'))  # a new folder: a new run from the same seed
  assert trainer.step == 0 and os.path.exists(tmp_path / 'b' / 'model.pkl')
  for a, b in zip(jax.tree.leaves(initial), jax.tree.leaves(trainer.model_weights)):
    np.testing.assert_array_equal(a, b)
  trainer.train_epoch(2, 1)
  assert trainer.history.get('eval', 'metrics/loss')[0][0] == 2
  capsys.readouterr()
  trainer.reset(str(tmp_path / 'c'), init_checkpoint=str(tmp_path / 'a' / 'model.pkl'))
  assert capsys.readouterr().out == f'Model loaded from {tmp_path / "a" / "model.pkl"} at step 3\n'
  assert trainer.step == 3
  for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(trainer.model_weights)):
    np.testing.assert_array_equal(a, b)
  trainer.train_epoch(1, 1)
  assert os.path.exists(tmp_path / 'c' / 'model.pkl') and os.path.exists(tmp_path / 'c' / 'eval')
  with pytest.raises(CheckpointError, match='Trainer.reset: init_checkpoint .*nothing.pkl does not '
                     'exist'):
    trainer.reset(str(tmp_path / 'd'), init_checkpoint=str(tmp_path / 'nothing.pkl'))


def test_decoding_takes_trax_14_arguments():
  sizes = dict(d_model=16, d_ff=32, n_layers=1, n_heads=2, max_len=8)
  evaluated = TransformerLM(4, mode='eval', **sizes)
  weights, _ = evaluated.init(ShapeDtype((2, 5), np.int32))
  predictor = TransformerLM(4, mode='predict', **sizes)
  predictor.init(ShapeDtype((2, 1), np.int32))
  predictor.weights = weights
  for temperature, prompt in itertools.product((0.0, 1.0), (None, np.array([[2], [3]]))):
    kwargs = dict(batch_size=2, temperature=temperature, max_length=5, eos_id=4, rng=3)
    fast = decoding.autoregressive_sample(predictor, prompt, accelerate=False, **kwargs)
    slow = decoding.autoregressive_sample(evaluated, prompt, eval_mode=True, eval_min_length=4,
                                          **kwargs)
    np.testing.assert_array_equal(fast, slow)  # Trax's eval_mode: whole sequences, eval model
  start = decoding.autoregressive_sample(predictor, batch_size=2, start_id=np.array([[0], [0]]),
                                         temperature=0.0, max_length=3)
  np.testing.assert_array_equal(
      start, decoding.autoregressive_sample(predictor, batch_size=2, temperature=0.0, max_length=3))
  stream = decoding.autoregressive_sample_stream(evaluated, batch_size=2, temperature=0.0,
                                                 eval_mode=True)
  np.testing.assert_array_equal([next(stream) for _ in range(2)], start[:, :2].T)
  beams, _ = decoding.beam_search(predictor, batch_size=2, max_length=3, accelerate=True)
  assert beams.shape[:2] == (2, 2)
  with pytest.raises(
      ArgumentError, match=r'decoding: start_id must be an int >= 0 or ids >= 0 of '
      r'shape \(batch_size=2, 1\), got int64 of shape \(2,\)'):
    decoding.autoregressive_sample(predictor, batch_size=2, start_id=np.array([0, 0]))
  with pytest.raises(ArgumentError, match='decoding: accelerate must be True or False, got 1'):
    decoding.autoregressive_sample(predictor, accelerate=1)
