"""`import minitrax.trax14 as trax`: Trax 1.4's meanings, and Trax 1.4 code that runs on it."""

import jax
import numpy as np

import minitrax
import minitrax.trax14 as trax
from minitrax.trax14 import layers as tl
from minitrax.trax14.supervised import training


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_changed_names_take_trax_14s_meaning_and_the_rest_are_minitrax_own():
  assert tl.CHANGED == sorted(tl.CHANGED) and 'CrossEntropyLoss' in tl.CHANGED
  for name in tl.__all__:
    if name not in tl.CHANGED + ['CHANGED']:
      assert getattr(tl, name) is getattr(minitrax.layers, name), name
  logits = np.array([[[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]], np.float32)
  targets, weights = np.array([[0, 2]]), np.array([[1.0, 0.0]], np.float32)
  # 1.4: WeightedCategoryCrossEntropy on logits, weights as the third input.
  expected = -_log_softmax(logits)[0, 0, 0]
  got = tl.WeightedCategoryCrossEntropy()((logits, targets, weights))
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # 1.4's CrossEntropyLoss takes log-probabilities and 3 inputs; 1.2's has 2 by default.
  assert tl.CrossEntropyLoss().n_in == 3 and minitrax.layers.CrossEntropyLoss().n_in == 2
  # The 1.4 position table is (max_len, d); 1.2's is (1, max_len, d).
  w14, _ = tl.PositionalEncoding(max_len=8).init(tl.ShapeDtype((2, 4, 6)))
  w12, _ = minitrax.layers.PositionalEncoding(max_len=8).init(tl.ShapeDtype((2, 4, 6)))
  assert (np.shape(w14), np.shape(w12)) == ((8, 6), (1, 8, 6))


def test_models_are_trax_14s_logits_models():
  model = trax.models.TransformerLM(vocab_size=11, d_model=8, d_ff=16, n_layers=1, n_heads=2,
                                    mode='eval')
  assert trax.models.transformer.TransformerLM is trax.models.TransformerLM
  assert trax.models.TransformerLM is not minitrax.models.TransformerLM
  x = np.array([[1, 2, 3, 4]], np.int32)
  model.init(tl.ShapeDtype(x.shape, np.int32))
  y = np.asarray(model(x))
  assert y.shape == (1, 4, 11)
  assert not np.allclose(np.exp(y).sum(-1), 1.0, atol=1e-3)  # logits, not log-probabilities
  assert trax.supervised.lr_schedules is minitrax.lr and trax.data is minitrax.data


def _labeled_examples(seed):
  """(tokens, label): label 1 when tokens from the upper half of 1..8 outnumber the lower half."""
  rng = np.random.default_rng(seed)
  while True:
    tokens = rng.integers(1, 9, size=6).astype(np.int32)
    yield tokens, np.int32((tokens > 4).sum() > 3)


def test_trax_14_intro_style_training_reaches_high_accuracy(tmp_path, capsys):
  # As Trax 1.4's intro: a data pipeline, a model ending in logits, TrainTask/EvalTask, Loop.
  pipeline = trax.data.Serial(trax.data.Shuffle(64), trax.data.Batch(32),
                              trax.data.AddLossWeights())
  train_batches = pipeline(_labeled_examples(0))
  eval_batches = pipeline(_labeled_examples(1))
  model = tl.Serial(tl.Embedding(vocab_size=9, d_feature=8), tl.Mean(axis=1), tl.Dense(2))
  train_task = training.TrainTask(labeled_data=train_batches,
                                  loss_layer=tl.WeightedCategoryCrossEntropy(),
                                  optimizer=trax.optimizers.Adam(0.05), n_steps_per_checkpoint=100)
  eval_task = training.EvalTask(
      labeled_data=eval_batches,
      metrics=[tl.WeightedCategoryCrossEntropy(),
               tl.WeightedCategoryAccuracy()], n_eval_batches=8)
  loop = training.Loop(model, train_task, eval_tasks=[eval_task], output_dir=str(tmp_path))
  loop.run(200)
  assert loop.step == 200
  accuracy = loop.history.get('eval', 'metrics/WeightedCategoryAccuracy')[-1][1]
  assert accuracy >= 0.85, accuracy
  assert (tmp_path / 'model.pkl.gz').exists()
  # The trained model classifies with the same weights outside the Loop.
  x = np.array([[8, 7, 6, 5, 8, 7], [1, 2, 3, 4, 1, 2]], np.int32)
  np.testing.assert_array_equal(np.argmax(np.asarray(model(x)), -1), [1, 0])
  out = capsys.readouterr().out
  assert 'Step    200: eval      WeightedCategoryAccuracy |  1.00000000' in out


def test_trax_14_batches_are_tuples_of_three():
  batch = next(
      trax.data.Serial(trax.data.Batch(4), trax.data.AddLossWeights())(_labeled_examples(2)))
  assert len(batch) == 3 and batch[0].shape == (4, 6) and batch[2].shape == (4,)
  np.testing.assert_array_equal(batch[2], np.ones(4, np.float32))
  assert jax.numpy.asarray(batch[1]).dtype == np.int32
