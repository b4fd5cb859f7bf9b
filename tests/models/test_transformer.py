"""Transformer models: shapes in every mode, predict equals eval, the copy task, the codelab."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import LayerError
from minitrax.layers.combinators import Serial
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.models.transformer import (Transformer, TransformerDecoder, TransformerEncoder,
                                         TransformerLM)
from minitrax.optimizers.adam import Adam
from minitrax.shapes import ShapeDtype
from minitrax.supervised import decoding

V, L, B = 12, 10, 2  # vocabulary, sequence length, batch
SIZES = dict(d_model=32, d_ff=64, n_heads=2)
IDS = ShapeDtype((B, L), np.int32)
ONE = ShapeDtype((B, 1), np.int32)
TOKENS = np.random.default_rng(0).integers(1, V, size=(B, L)).astype(np.int32)


def lm(mode, n_layers=2, max_len=L + 2, dropout=0.1):
  return TransformerLM(V, n_layers=n_layers, dropout=dropout, max_len=max_len, mode=mode, **SIZES)


def seq2seq(mode):
  return Transformer(V, n_encoder_layers=1, n_decoder_layers=2, max_len=L + 2, mode=mode, **SIZES)


def shift_right(x):
  return np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)


def abstract_weights(model, sig):
  return jax.eval_shape(lambda r: model.init_weights_and_state(sig, r)[0], jax.random.key(0))


# ------------------------------------------------------------------ shapes in every mode


MODELS = {  # name: (make(mode), input signature (train/eval), predict signature, output)
    'TransformerLM': (lm, IDS, ONE, lambda n: ShapeDtype((B, n, V))),
    'TransformerDecoder_ids': (
        lambda mode: TransformerDecoder(V, n_layers=1, max_len=L, mode=mode, **SIZES),
        IDS, ONE, lambda n: ShapeDtype((B, n, 32))),
    'TransformerDecoder_vectors': (
        lambda mode: TransformerDecoder(None, n_layers=1, max_len=L, mode=mode, **SIZES),
        ShapeDtype((B, L, 5)), ShapeDtype((B, 1, 5)), lambda n: ShapeDtype((B, n, 32))),
    'TransformerEncoder': (
        lambda mode: TransformerEncoder(V, n_classes=3, n_layers=1, max_len=L, mode=mode,
                                        **SIZES),
        IDS, IDS, lambda n: ShapeDtype((B, 3))),  # predict = eval
    'Transformer': (seq2seq, (IDS, IDS), (IDS, ONE),
                    lambda n: (ShapeDtype((B, n, V)), ShapeDtype((B, n), np.int32))),
}


@pytest.mark.parametrize('name', sorted(MODELS))
def test_output_shapes_and_weights_in_every_mode(name):
  make, sig, predict_sig, out = MODELS[name]
  model = make('eval')
  model.init(sig)
  inputs = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), sig,
                        is_leaf=lambda s: isinstance(s, ShapeDtype))
  y = model(inputs)
  assert jax.tree.map(lambda a: ShapeDtype(a.shape, a.dtype), y) == out(L)
  assert jax.tree.all(jax.tree.map(lambda a: bool(jnp.all(jnp.isfinite(a))), y))
  reference = jax.tree.map(jnp.shape, abstract_weights(make('eval'), sig))
  for mode, s, n in (('train', sig, L), ('eval', sig, L), ('predict', predict_sig, 1)):
    model = make(mode)
    assert model.output_signature(s) == out(n), mode
    assert jax.tree.map(jnp.shape, abstract_weights(model, s)) == reference, mode


def test_transformer_shares_one_embedding_when_vocabularies_are_equal():

  def tables(model, shape):
    leaves = jax.tree.leaves(model.init((IDS, IDS))[0])
    return sum(1 for a in leaves if a.shape == shape)

  shared = Transformer(V, n_encoder_layers=1, n_decoder_layers=1, **SIZES)
  assert tables(shared, (V, 32)) == 1 and tables(shared, (1, 2048, 32)) == 1  # as in Trax 1.2
  separate = Transformer(V, output_vocab_size=V, n_encoder_layers=1, n_decoder_layers=1, **SIZES)
  assert tables(separate, (V, 32)) == 2 and tables(separate, (1, 2048, 32)) == 2


# The weight shapes of real Trax 1.2.3's models (vocabulary 16, d_model 8, d_ff 16, 2 heads,
# max_len 16, one layer each side; TransformerEncoder with 3 classes), in Trax's order, printed by
# `[a.shape for a in leaves(model.init(sig)[0])]` under Trax 1.2.3.
TRAX_1_2_SHAPES = {
    'TransformerEncoder': [(16, 8), (1, 16, 8), (8,), (8,), (8, 8), (8,), (8, 8), (8,),
                           (8, 8), (8,), (8, 8), (8,), (8,), (8,), (8, 16), (16,), (16, 8), (8,),
                           (8,), (8,), (8, 3), (3,)],
    'TransformerDecoder': [(16, 8), (1, 16, 8), (8,), (8,), (8, 8), (8, 8), (8, 8), (8, 8), (8,),
                           (8,), (8, 16), (16,), (16, 8), (8,), (8,), (8,)],
    'Transformer': [(16, 8), (1, 16, 8), (8,), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8), (8,),
                    (8, 8), (8,), (8,), (8,), (8, 16), (16,), (16, 8), (8,), (8,), (8,), (8,), (8,),
                    (8, 8), (8, 8), (8, 8), (8, 8), (8,), (8,), (8, 8), (8,), (8, 8), (8,), (8, 8),
                    (8,), (8, 8), (8,), (8,), (8,), (8, 16), (16,), (16, 8), (8,), (8,), (8,),
                    (8, 16), (16,)],
    'Transformer_two_vocabularies': [(16, 8), (1, 16, 8), (8,), (8,), (8, 8), (8,), (8, 8), (8,),
                                     (8, 8), (8,), (8, 8), (8,), (8,), (8,), (8, 16),
                                     (16,), (16, 8), (8,), (8,), (8,), (12, 8), (1, 16, 8), (8,),
                                     (8,), (8, 8), (8, 8), (8, 8), (8, 8), (8,), (8,), (8, 8), (8,),
                                     (8, 8), (8,), (8, 8), (8,), (8, 8), (8,), (8,), (8,), (8, 16),
                                     (16,), (16, 8), (8,), (8,), (8,), (8, 12), (12,)],
}
TRAX_SIZES = dict(d_model=8, d_ff=16, n_heads=2, max_len=16)
TRAX_MODELS = {
    'TransformerEncoder': (lambda: TransformerEncoder(16, n_classes=3, n_layers=1, **TRAX_SIZES),
                           ShapeDtype((2, 8), np.int32)),
    'TransformerDecoder': (lambda: TransformerDecoder(16, n_layers=1, **TRAX_SIZES),
                           ShapeDtype((2, 8), np.int32)),
    'Transformer':
        (lambda: Transformer(16, n_encoder_layers=1, n_decoder_layers=1, **TRAX_SIZES), (ShapeDtype(
            (2, 8), np.int32),) * 2),
    'Transformer_two_vocabularies':
        (lambda: Transformer(16, output_vocab_size=12, n_encoder_layers=1, n_decoder_layers=1, **
                             TRAX_SIZES), (ShapeDtype((2, 8), np.int32),) * 2),
}


@pytest.mark.parametrize('name', sorted(TRAX_MODELS))
def test_weights_are_trax_1_2_s_one_to_one(name):
  """Trax 1.2's order and shapes: (1, max_len, d) tables, no biases in causal attention."""
  make, sig = TRAX_MODELS[name]
  assert [tuple(a.shape) for a in jax.tree.leaves(make().init(sig)[0])] == TRAX_1_2_SHAPES[name]


def test_train_mode_needs_an_rng_for_dropout():
  model = lm('train')
  weights, state = model.init(IDS)
  with pytest.raises(Exception, match=r"Dropout: mode='train' with rate=0.1 needs an rng"):
    jax.eval_shape(lambda: model.pure_fn(TOKENS, weights, state, None))


@pytest.mark.parametrize('make, message', [
    (lambda: TransformerLM(V, d_model=30, n_heads=4),
     'TransformerLM: d_model=30 is not a multiple of n_heads=4'),
    (lambda: TransformerLM(V, mode='infer'), "TransformerLM: mode must be one of .*'infer'"),
    (lambda: Transformer(V, dropout=1.5), r'Transformer: dropout must be a number in \[0, 1\)'),
    (lambda: TransformerEncoder(0), 'TransformerEncoder: vocab_size must be an int >= 1, got 0'),
])
def test_constructors_validate_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()


# ------------------------------------------------------------------ predict equals eval


def test_transformer_lm_predict_one_token_at_a_time_equals_eval():
  evaluated = lm('eval')
  weights, _ = evaluated.init(IDS)
  expected = np.asarray(evaluated(TOKENS))
  predictor = lm('predict')
  predictor.init(ONE)
  predictor.weights = weights
  fed = shift_right(TOKENS)
  got = [np.asarray(predictor(fed[:, i:i + 1])) for i in range(L)]
  np.testing.assert_allclose(np.concatenate(got, axis=1), expected, atol=1e-5)
  # A prompt chunk first, then single tokens, from a fresh state.
  predictor.init(ONE)
  predictor.weights = weights
  got = [np.asarray(predictor(fed[:, :4]))
        ] + [np.asarray(predictor(fed[:, i:i + 1])) for i in range(4, L)]
  np.testing.assert_allclose(np.concatenate(got, axis=1), expected, atol=1e-5)


def test_transformer_predict_runs_encoder_once_and_equals_eval():
  source = TOKENS.copy()
  source[0, 7:] = 0  # padding in the source
  target = TOKENS[:, ::-1].copy()
  evaluated = seq2seq('eval')
  weights, _ = evaluated.init((IDS, IDS))
  expected, passed = evaluated((source, target))
  np.testing.assert_array_equal(passed, target)
  predictor = seq2seq('predict')
  predictor.init((IDS, ONE))
  predictor.weights = weights
  fed = shift_right(target)
  got = [np.asarray(predictor((source, fed[:, i:i + 1]))[0]) for i in range(L)]
  np.testing.assert_allclose(np.concatenate(got, axis=1), expected, atol=1e-5)
  # The encoder ran once: its outputs sit in the Cache state, marked as cached.
  cache_state = predictor.state[1]
  assert bool(cache_state[1][1])
  np.testing.assert_allclose(cache_state[1][0][0], evaluated.sublayers[1](source)[0], atol=1e-5)


def test_transformer_decoder_on_vectors_predict_equals_eval():
  x = np.random.default_rng(1).normal(size=(B, 6, 5)).astype(np.float32)
  evaluated = TransformerDecoder(None, n_layers=1, max_len=6, mode='eval', **SIZES)
  weights, _ = evaluated.init(ShapeDtype(x.shape))
  predictor = TransformerDecoder(None, n_layers=1, max_len=6, mode='predict', **SIZES)
  predictor.init(ShapeDtype((B, 1, 5)))
  predictor.weights = weights
  got = np.concatenate([predictor(x[:, i:i + 1]) for i in range(6)], axis=1)
  np.testing.assert_allclose(got, evaluated(x), atol=1e-5)


# ------------------------------------------------------------------ the copy task


def copy_batch(rng, batch):
  """The codelab's copy task `0 w 0 w`, weights 1 from the last id of the first `w`."""
  w = rng.integers(1, V - 1, size=(batch, L // 2 - 1), dtype=np.int32)
  zero = np.zeros((batch, 1), np.int32)
  x = np.concatenate([zero, w, zero, w], axis=1)
  weights = np.concatenate([np.zeros((batch, L // 2 - 1)), np.ones((batch, L // 2 + 1))], axis=1)
  return x, weights.astype(np.float32)


@pytest.fixture(scope='module')
def copy_weights():
  """Weights of a TransformerLM trained on the copy task in one compiled scan (~5 s)."""
  model_with_loss = Serial(lm('train', dropout=0.0), CrossEntropyLoss(has_weights=True))
  weights, state = model_with_loss.init((IDS, IDS, ShapeDtype((B, L))))
  optimizer = Adam(learning_rate=0.01)
  slots, opt_params = optimizer.tree_init(weights)
  rng = np.random.default_rng(0)
  batches = [copy_batch(rng, 32) for _ in range(400)]
  xs, ws = np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])

  @jax.jit
  def train(weights, slots, xs, ws):

    def step(carry, batch):
      weights, slots, i = carry
      x, w = batch

      def loss(weights):
        return model_with_loss.pure_fn((x, x, w), weights, state, jax.random.key(0))[0]

      grads = jax.grad(loss)(weights)
      weights, slots, _ = optimizer.tree_update(i, grads, weights, slots, opt_params)
      return (weights, slots, i + 1), None

    return jax.lax.scan(step, (weights, slots, jnp.int32(0)), (xs, ws))[0][0]

  return train(weights, slots, xs, ws)[0]


def test_transformer_lm_learns_the_copy_task(copy_weights):
  model = lm('eval')
  model.init(IDS)
  model.weights = copy_weights
  x, _ = copy_batch(np.random.default_rng(1), 64)
  predicted = np.argmax(model(x), axis=-1)
  # The second `0 w` is determined by the first: it must be copied.
  accuracy = np.mean(predicted[:, L // 2:] == x[:, L // 2:])
  assert accuracy >= 0.95, accuracy


def test_greedy_and_beam_decoding_copy(copy_weights):
  model = lm('predict')
  model.init(ONE)
  model.weights = copy_weights
  x, _ = copy_batch(np.random.default_rng(2), 4)
  prompt, rest = x[:, :L // 2 + 1], x[:, L // 2 + 1:]  # the decoder feeds start id 0 first
  greedy = decoding.autoregressive_sample(model, prompt, batch_size=4, temperature=0.0,
                                          eos_id=V - 1, max_length=rest.shape[1])
  np.testing.assert_array_equal(greedy, rest)
  beams, _ = decoding.beam_search(model, prompt, batch_size=4, n_beams=2, eos_id=V - 1,
                                  max_length=rest.shape[1])
  np.testing.assert_array_equal(beams[:, 0], rest)


def test_codelab_inference_loop(copy_weights, tmp_path):
  """The codelab's hand-written loop: one token per call, argmax fed back, compiled once."""
  trained = lm('train', dropout=0.0)
  trained.init(IDS)
  trained.weights = copy_weights
  trained.save_to_file(str(tmp_path / 'model.pkl'))
  predict_model = lm('predict')  # the position table is a trained weight: max_len as trained
  predict_model.init(ShapeDtype((1, 1), dtype=np.int32))
  predict_model.init_from_file(str(tmp_path / 'model.pkl'), weights_only=True)
  prefix = [0, 1, 2, 3, 4, 0]
  cur_input = np.array([[0]])
  result = []
  for i in range(L):
    logits = predict_model(cur_input)
    next_input = np.argmax(logits[0, 0, :], axis=-1)
    if i < len(prefix) - 1:
      next_input = prefix[i]
    cur_input = np.array([[next_input]])
    result.append(int(next_input))
  assert result == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
  assert predict_model._jit_pure_fn._cache_size() == 1  # pylint: disable=protected-access
  # The cache holds max_len=12 positions: a 13th token is an error, not a wrap-around.
  predict_model(cur_input)
  predict_model(cur_input)
  with pytest.raises(LayerError, match='predict mode ran past max_len=12: 1 new position'):
    predict_model(cur_input)


def test_models_are_registered_by_name():
  from minitrax.models.registry import get_model  # pylint: disable=import-outside-toplevel
  for model in (TransformerLM, TransformerDecoder, TransformerEncoder, Transformer):
    assert get_model(model.__name__) is model
