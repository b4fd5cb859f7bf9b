"""Reformer models: modes, predict = eval, chunked blocks, memory vs depth, the Trainer."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.data.synthetic import copy_inputs
from minitrax.layers.activation_fns import FastGelu
from minitrax.layers.combinators import Concatenate, Dup, Serial
from minitrax.layers.lsh_attention import LSHSelfAttention, SelfAttention
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.layers.reversible import ReversibleSerial
from minitrax.lr import MultifactorSchedule
from minitrax.models.reformer import (ChunkedCrossEntropyLoss, ChunkedFeedForward, DecoderBlock,
                                      FeedForward, ProjectionForLoss, Reformer, ReformerLM)
from minitrax.optimizers.adafactor import Adafactor
from minitrax.shapes import ShapeDtype
from minitrax.supervised import decoding
from minitrax.supervised.trainer import Trainer

V, L, B = 16, 8, 2
IDS, ONE = ShapeDtype((B, L), np.int32), ShapeDtype((B, 1), np.int32)
RNG = np.random.default_rng(0)
TOKENS = RNG.integers(1, V, size=(B, L)).astype(np.int32)
SIZES = dict(d_model=8, d_ff=16, d_attention_key=4, d_attention_value=4, n_layers=2, n_heads=2,
             max_len=L)
# Exact attention, then LSH attention whose chunk covers the sequence (so predict mode, which
# attends exactly over its cache, equals eval mode); axial positions; chunked FF and loss.
MIXED = dict(attention_type=[SelfAttention,
                             functools.partial(LSHSelfAttention, chunk_len=L)],
             axial_pos_shape=(2, 4), d_axial_pos_embs=(4, 4), ff_chunk_size=4, loss_chunk_size=4)


def lm(mode, **kwargs):
  return ReformerLM(V, mode=mode, **dict(SIZES, **MIXED, **kwargs))


def shifted(x):
  """What the model sees in eval mode: the start id 0, then all tokens but the last."""
  return np.pad(x, ((0, 0), (1, 0)))[:, :-1]


# ------------------------------------------------------------------ modes


@pytest.fixture(scope='module')
def evaluated():
  model = lm('eval')
  model.init(IDS)
  return model, model(TOKENS)


def test_trees_are_the_same_in_every_mode_and_outputs_have_their_shapes(evaluated):
  model, log_probs = evaluated
  assert log_probs.shape == (B, L, V)
  np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)
  assert model.output_signature(IDS) == ShapeDtype((B, L, V), np.float32)
  train = lm('train')
  train_weights, train_state = train.init(IDS)
  hidden, w, b = train(TOKENS)  # loss_chunk_size: the loss projects
  assert (hidden.shape, w.shape, b.shape) == ((B, L, 2 * SIZES['d_model']), (16, V), (V,))
  predict = lm('predict')
  predict_weights, _ = predict.init(ONE)
  shapes = lambda tree: jax.tree.map(lambda a: a.shape, tree)
  assert shapes(train_weights) == shapes(model.weights) == shapes(predict_weights)
  assert shapes(train_state) == shapes(model.state)


def test_predict_one_token_at_a_time_equals_eval(evaluated):
  model, log_probs = evaluated
  predict = lm('predict')
  predict.init(ONE)
  predict.weights = model.weights
  x = shifted(TOKENS)
  got = np.concatenate([predict(x[:, i:i + 1]) for i in range(L)], axis=1)
  np.testing.assert_allclose(got, log_probs, atol=1e-5)


def test_chunked_feed_forward_equals_plain():
  sig = ShapeDtype((B, L, 8))
  x = RNG.normal(size=sig.shape).astype(np.float32)
  plain = Serial(FeedForward(8, 16, 0.0, FastGelu, 'eval'))
  weights, _ = plain.init(sig)
  for chunk_size in (4, 5):  # 5 does not divide 16 positions: one chunk
    chunked = Serial(ChunkedFeedForward(8, 16, 0.0, FastGelu, chunk_size, 'eval'))
    chunked.init(sig)
    y = chunked(x, weights=((), (), (weights,), ()))
    np.testing.assert_allclose(y, plain(x), atol=1e-6)


def test_chunked_loss_equals_cross_entropy_of_log_softmax():
  d, vocab = 6, 40
  x = RNG.normal(size=(B, L, d)).astype(np.float32)
  targets = RNG.integers(0, vocab, size=(B, L)).astype(np.int32)
  weights = RNG.integers(0, 2, size=(B, L)).astype(np.float32)
  sig = (ShapeDtype(x.shape), IDS, ShapeDtype(weights.shape))
  chunked = Serial(ProjectionForLoss(vocab, mode='train'),
                   ChunkedCrossEntropyLoss(chunk_size=3, has_weights=True))
  full = Serial(ProjectionForLoss(vocab, mode='eval'), CrossEntropyLoss(has_weights=True))
  (w, b), _ = full.init(sig)[0]
  chunked.init(sig)
  logits = x.astype(np.float64) @ np.asarray(w) + np.asarray(b)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
  want = -(picked * weights).sum() / weights.sum()

  def value_and_grads(layer, layer_weights):

    def loss(head, x):
      return layer.pure_fn((x, targets, weights), (head,) + layer_weights, layer.state, None)[0]

    return jax.value_and_grad(loss, argnums=(0, 1))(full.weights[0], jnp.asarray(x))

  (got, grads), (full_value, full_grads) = value_and_grads(chunked,
                                                           ((),)), value_and_grads(full, ((),))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(full_value, want, rtol=1e-5)
  for a, c in zip(jax.tree.leaves(grads), jax.tree.leaves(full_grads)):
    np.testing.assert_allclose(a, c, atol=1e-6)


# ------------------------------------------------------------------ memory


def train_step_bytes(n_layers, reversible):
  """Peak memory (arguments + outputs + temporaries - donated) of a compiled SGD step.

  Reformer blocks (one LSH head, chunks of 64) on 2048 positions of width 16:
  activations dominate the weights by far.
  """
  n, d = 2048, 16
  attention = functools.partial(LSHSelfAttention, chunk_len=64)
  blocks = [
      DecoderBlock(d, 32, 8, 8, 1, attention, 0.0, FastGelu, 0, n, 'train') for _ in range(n_layers)
  ]
  model = Serial(Dup(), ReversibleSerial(blocks) if reversible else Serial(blocks), Concatenate())
  weights, state = model.init(ShapeDtype((1, n, d)))

  def step(weights, x, rng):
    grads = jax.grad(lambda w: jnp.sum(model.pure_fn(x, w, state, rng)[0]**2))(weights)
    return jax.tree.map(lambda w, g: w - 0.01 * g, weights, grads)

  x = jax.ShapeDtypeStruct((1, n, d), jnp.float32)
  memory = jax.jit(step, donate_argnums=(0,)).lower(weights, x,
                                                    jax.random.key(0)).compile().memory_analysis()
  return (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes -
          memory.alias_size_in_bytes)


def test_peak_memory_of_a_training_step_does_not_grow_with_depth():
  """12 reversible layers need < 30% more than 2; the same layers without reversibility do not."""
  reversible = train_step_bytes(12, True) / train_step_bytes(2, True)
  plain = train_step_bytes(12, False) / train_step_bytes(2, False)
  assert reversible < 1.3, reversible
  assert plain > 1.3, plain  # the measurement discriminates


# ------------------------------------------------------------------ the codelab


def codelab_lm(mode):
  return ReformerLM(d_model=32, d_ff=128, n_layers=2, vocab_size=32, mode=mode)


def test_codelab_trainer_learns_copy_and_decodes(tmp_path):
  """The codelab with ReformerLM: Trainer, 1000 steps, its inference loop, compiled decoding."""
  trainer = Trainer(model=codelab_lm, loss_fn=CrossEntropyLoss, optimizer=Adafactor,
                    lr_schedule=MultifactorSchedule, inputs=copy_inputs(16, 32, 10),
                    output_dir=str(tmp_path), has_weights=True)
  trainer.train_epoch(1000, 2)
  # The best possible accuracy is ~0.84: the first weighted position is a random token.
  assert trainer.history.get('eval', 'metrics/accuracy')[-1][1] >= 0.75
  predict_model = codelab_lm(mode='predict')
  predict_model.init(ShapeDtype((1, 1), dtype=np.int32))
  predict_model.init_from_file(os.path.join(str(tmp_path), 'model.pkl'), weights_only=True)
  prefix = [0, 1, 2, 3, 4, 0]
  cur_input, result = np.array([[0]]), []
  for i in range(10):
    logits = predict_model(cur_input)
    next_input = np.argmax(logits[0, 0, :], axis=-1)
    if i < len(prefix) - 1:
      next_input = prefix[i]
    cur_input = np.array([[next_input]])
    result.append(int(next_input))
  assert result == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
  # The compiled decoder of minitrax.supervised.decoding runs the same predict model.
  greedy = decoding.autoregressive_sample(predict_model, np.array([[0, 5, 6, 7, 8, 0]]),
                                          temperature=0.0, eos_id=31, max_length=4)
  np.testing.assert_array_equal(greedy, [[5, 6, 7, 8]])


@pytest.mark.slow
def test_lsh_reformer_learns_copy_through_the_trainer():

  def model(mode):
    attention = functools.partial(LSHSelfAttention, chunk_len=8, n_hashes=2, n_buckets=4)
    return ReformerLM(d_model=32, d_ff=128, n_layers=2, vocab_size=32, mode=mode,
                      attention_type=attention)

  trainer = Trainer(model=model, loss_fn=CrossEntropyLoss, optimizer=Adafactor,
                    lr_schedule=MultifactorSchedule, inputs=copy_inputs(16, 32,
                                                                        16), has_weights=True)
  trainer.train_epoch(1000, 2)
  # Second copy: 8 weighted positions of which the first is random, so at most ~0.89.
  assert trainer.history.get('eval', 'metrics/accuracy')[-1][1] >= 0.8


# ------------------------------------------------------------------ encoder-decoder


def test_reformer_encoder_decoder_predict_equals_eval():
  source = TOKENS.copy()
  source[:, -2:] = 0  # padding, hidden from the decoder
  sizes = dict(d_model=8, d_ff=16, n_encoder_layers=1, n_decoder_layers=2, n_heads=2, max_len=L)
  model = Reformer(V, **sizes, mode='eval')
  model.init((IDS, IDS))
  log_probs, target = model((source, TOKENS))
  assert log_probs.shape == (B, L, V)
  np.testing.assert_array_equal(target, TOKENS)
  predict = Reformer(V, **sizes, mode='predict')
  predict.init((IDS, ONE))
  predict.weights = model.weights
  x = shifted(TOKENS)
  got = np.concatenate([predict((source, x[:, i:i + 1]))[0] for i in range(L)], axis=1)
  np.testing.assert_allclose(got, log_probs, atol=1e-5)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize('make, message', [
    (lambda: ReformerLM(V, axial_pos_shape=(2, 4), d_axial_pos_embs=(4, 2), d_model=8),
     'd_axial_pos_embs must be given with axial_pos_shape and sum to d_model=8'),
    (lambda: ReformerLM(V, attention_type=[]), 'attention_type must be a layer class or a non'),
    (lambda: ReformerLM(V, n_layers=0), 'n_layers must be an int >= 1, got 0'),
    (lambda: ReformerLM(V, mode='test'), "mode must be one of"),
    (lambda: Reformer(V, d_model=10, n_heads=4), 'd_model=10 is not a multiple of n_heads=4'),
    (lambda: ChunkedCrossEntropyLoss(chunk_size=0), 'chunk_size must be an int >= 1, got 0'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()
