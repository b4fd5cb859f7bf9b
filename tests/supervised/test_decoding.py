"""Decoding: greedy, sampling and beam search against eval-mode references and exact search."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.layers.attention import DotProductCausalAttention, PositionalEncoding
from minitrax.layers.axial import AxialPositionalEncoding
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Embedding, LogSoftmax
from minitrax.layers.lsh_attention import LSHSelfAttention, SelfAttention
from minitrax.models.transformer import Transformer, TransformerLM
from minitrax.shapes import ShapeDtype
from minitrax.supervised import decoding

V, EOS, B = 4, 1, 2
SIZES = dict(d_model=16, d_ff=32, n_layers=1, n_heads=2, max_len=8)

# ------------------------------------------------------------------ models


def bigram(next_probs):
  """A predict-ready LM without state: log p(next | last) = log(table[last])."""
  table = np.full((6, 6), 1e-3)
  for last, probs in next_probs.items():
    for token, p in probs.items():
      table[last, token] = p
  table /= table.sum(1, keepdims=True)
  model = Serial(Embedding(6, 6), LogSoftmax())
  model.init(ShapeDtype((1, 1), np.int32))
  model.weights = (jnp.log(jnp.asarray(table, jnp.float32)), ())
  return model, table


# Greedy path from start 0: 2, 3, EOS; 4 and 5 alternate forever.
CHAIN, _ = bigram({0: {2: .9}, 2: {3: .9}, 3: {1: .9}, 4: {5: .9}, 5: {4: .9}, 1: {1: .9}})


@pytest.fixture(scope='module')
def lms():
  """(eval model, predict model) of one untrained TransformerLM."""
  evaluated = TransformerLM(V, mode='eval', **SIZES)
  weights, _ = evaluated.init(ShapeDtype((B, 5), np.int32))
  predictor = TransformerLM(V, mode='predict', **SIZES)
  predictor.init(ShapeDtype((B, 1), np.int32))
  predictor.weights = weights
  return evaluated, predictor


def greedy_reference(score, batch, length):
  """Greedy ids from full-sequence calls: `score(tokens)[:, t]` predicts token t; EOS sticks."""
  tokens = np.zeros((batch, length), np.int32)
  for t in range(length):
    tokens[:, t] = np.argmax(np.asarray(score(tokens))[:, t], axis=-1)
    if t:
      tokens[:, t] = np.where(tokens[:, t - 1] == EOS, EOS, tokens[:, t])
  return tokens


def n_steps(tokens):
  """Length that decoding returns: up to the step where every row has emitted EOS."""
  ended = [list(row).index(EOS) + 1 if EOS in row else len(row) for row in tokens]
  return max(ended)


# ------------------------------------------------------------------ greedy and EOS


def test_eos_ends_each_sequence_and_fills_the_rest():

  def greedy(prompts):
    return decoding.autoregressive_sample(CHAIN, prompts, batch_size=2, temperature=0.0,
                                          max_length=5)

  np.testing.assert_array_equal(greedy(np.array([[0, 2], [0, 3]])), [[3, EOS], [EOS, EOS]])
  np.testing.assert_array_equal(greedy(np.array([[3, 4], [0, 0]])),
                                [[5, 4, 5, 4, 5], [2, 3, EOS, EOS, EOS]])
  beams, _ = decoding.beam_search(CHAIN, np.array([[0, 2], [0, 3]]), batch_size=2, n_beams=1,
                                  max_length=5)
  np.testing.assert_array_equal(beams[:, 0], [[3, EOS], [EOS, EOS]])


def test_greedy_lm_decoding_equals_eval_argmax(lms):
  evaluated, predictor = lms
  expected = greedy_reference(evaluated, B, 5)
  expected = expected[:, :n_steps(expected)]
  greedy = decoding.autoregressive_sample(predictor, batch_size=B, temperature=0.0, max_length=5)
  np.testing.assert_array_equal(greedy, expected)
  beams, scores = decoding.beam_search(predictor, batch_size=B, n_beams=1, max_length=5)
  np.testing.assert_array_equal(beams[:, 0], expected)
  assert scores.shape == (B, 1) and np.all(scores < 0)


def test_greedy_encoder_decoder_equals_eval_argmax():
  sizes = dict(d_model=16, d_ff=32, n_heads=2, max_len=8)
  evaluated = Transformer(V, n_encoder_layers=1, n_decoder_layers=1, mode='eval', **sizes)
  weights, _ = evaluated.init((ShapeDtype((B, 3), np.int32), ShapeDtype((B, 4), np.int32)))
  predictor = Transformer(V, n_encoder_layers=1, n_decoder_layers=1, mode='predict', **sizes)
  predictor.init((ShapeDtype((1, 3), np.int32), ShapeDtype((1, 1), np.int32)))
  predictor.weights = weights
  source = np.array([[2, 3, 0], [3, 2, 2]], np.int32)
  expected = greedy_reference(lambda t: evaluated((source, t))[0], B, 4)
  expected = expected[:, :n_steps(expected)]
  greedy = decoding.autoregressive_sample(predictor, source, batch_size=B, temperature=0.0,
                                          max_length=4)
  np.testing.assert_array_equal(greedy, expected)
  beams, _ = decoding.beam_search(predictor, source, batch_size=B, n_beams=1, max_length=4)
  np.testing.assert_array_equal(beams[:, 0], expected)


# ------------------------------------------------------------------ beam search


def test_beam_search_prefers_the_likelier_sequence_over_greedy():
  model, table = bigram({0: {2: .5, 3: .4}, 2: {4: .32, 5: .28, 1: .2, 3: .2}, 3: {1: .9}})
  greedy = decoding.autoregressive_sample(model, temperature=0.0, max_length=2)
  np.testing.assert_array_equal(greedy, [[2, 4]])
  for penalty in (0.0, 1.0):
    beams, scores = decoding.beam_search(model, n_beams=2, max_length=2, length_penalty=penalty)
    np.testing.assert_array_equal(beams, [[[3, EOS], [2, 4]]])
    raw = np.log([table[0, 3] * table[3, EOS], table[0, 2] * table[2, 4]])
    np.testing.assert_allclose(scores[0], raw / (7 / 6)**penalty, rtol=1e-5)


def test_beam_search_with_enough_beams_is_exact(lms):
  """16 beams keep every live prefix of 2 ids over 4 ids: the search becomes exhaustive."""
  evaluated, predictor = lms
  prompt = np.array([[2, 3], [0, 2]], np.int32)
  beams, scores = decoding.beam_search(predictor, prompt, batch_size=B, n_beams=16, max_length=3,
                                       length_penalty=0.0)
  candidates = np.array(list(itertools.product(range(V), repeat=3)), np.int32)
  for row in range(B):
    full = np.concatenate([np.repeat(prompt[row:row + 1], len(candidates), 0), candidates], 1)
    log_probs = np.asarray(evaluated(full), np.float64)[:, 2:]
    best = {}
    for ids, lp in zip(candidates, log_probs):
      n = list(ids).index(EOS) + 1 if EOS in ids else 3  # ids after EOS are not scored
      key = tuple(ids[:n]) + (EOS,) * (3 - n)
      best[key] = sum(lp[t, ids[t]] for t in range(n))
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:16]
    np.testing.assert_allclose(scores[row], [s for _, s in ranked], atol=1e-4)
    np.testing.assert_array_equal(beams[row], [k for k, _ in ranked])


# ------------------------------------------------------------------ sampling


def test_sampling_follows_the_model_and_the_temperature():
  probs = {2: .5, 3: .3, 4: .2}
  model, table = bigram({0: probs})
  draw = lambda t, rng: decoding.autoregressive_sample(  # noqa: E731
      model, batch_size=4000, temperature=t, max_length=1, rng=rng)[:, 0]
  first = draw(1.0, 7)
  np.testing.assert_allclose(np.bincount(first, minlength=6) / 4000, table[0], atol=0.03)
  np.testing.assert_array_equal(draw(1.0, 7), first)  # reproducible from a seed
  assert np.mean(draw(1.0, 8) != first) > 0.3  # another seed, other samples
  assert np.all(draw(0.0, 7) == 2)  # temperature 0: argmax
  hot = np.bincount(draw(50.0, 7), minlength=6) / 4000  # high temperature: ~uniform
  np.testing.assert_allclose(hot, np.full(6, 1 / 6), atol=0.03)
  compiled = decoding._sample_loop._cache_size()  # pylint: disable=protected-access
  draw(0.5, jax.random.key(3))  # a new temperature > 0 reuses the sampling program
  draw(0.0, 9)  # and greedy its own (compiled once, above)
  assert decoding._sample_loop._cache_size() == compiled  # pylint: disable=protected-access


def test_greedy_decoding_draws_no_random_numbers():
  """Greedy (temperature 0) is a separate program: a plain argmax, no noise, rng unused."""
  # pylint: disable=protected-access
  prompt = np.zeros((1, 1), np.int32)
  state = decoding._fresh_state(CHAIN, ShapeDtype((1, 1), np.int32))

  def program(greedy):
    return decoding._sample_loop.lower(CHAIN, CHAIN.weights, state, prompt, None, jnp.float32(0.0),
                                       jax.random.key(0), eos_id=EOS, max_length=4,
                                       greedy=greedy).as_text().lower()

  random_ops = ('threefry', 'rng_bit_generator')  # the ops a draw lowers to
  assert not any(op in program(True) for op in random_ops)
  assert any(op in program(False) for op in random_ops)  # the check can see a draw
  for seed in (0, 5):
    np.testing.assert_array_equal(
        decoding.autoregressive_sample(CHAIN, temperature=0.0, max_length=4, rng=seed),
        [[2, 3, EOS]])
    stream = decoding.autoregressive_sample_stream(CHAIN, np.array([[4]]), temperature=0, rng=seed)
    np.testing.assert_array_equal([next(stream)[0] for _ in range(3)], [5, 4, 5])


def test_stream_equals_compiled_sampling_and_stops_before_overflow(lms):
  _, predictor = lms
  state = predictor.state
  stream = decoding.autoregressive_sample_stream(predictor, batch_size=B, rng=3)
  first = next(stream)
  assert isinstance(first, jax.Array) and first.shape == (B,) and first.dtype == jnp.int32
  streamed = np.stack([first] + [next(stream) for _ in range(7)], axis=1)  # max_len = 8
  with pytest.raises(
      ValueError, match=r"decoding: sample 9 needs 9 positions but the model's "
      r"predict cache holds max_len=8"):
    next(stream)
  sampled = decoding.autoregressive_sample(predictor, batch_size=B, rng=3, eos_id=V, max_length=8)
  np.testing.assert_array_equal(sampled, streamed)
  with pytest.raises(ValueError, match=r'decoding: max_length=9 needs 9 positions but'):
    decoding.autoregressive_sample(predictor, batch_size=B, max_length=9)
  # Decoding starts from a fresh state and leaves the model's own state alone.
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), predictor.state, state))


# ------------------------------------------------------------------ argument errors


def test_decoding_rejects_bad_models_and_arguments(lms):
  evaluated, predictor = lms
  with pytest.raises(
      ValueError, match="the model must be built with mode='predict', but its "
      "DotProductCausalAttention has mode='eval'"):
    decoding.autoregressive_sample(evaluated)
  with pytest.raises(ValueError, match=r'inputs must be \(batch_size=2, length\), got shape '
                     r'\(1, 3\)'):
    decoding.beam_search(predictor, np.zeros((1, 3), np.int32), batch_size=2)
  with pytest.raises(ValueError, match='temperature must be a number >= 0, got -1'):
    decoding.autoregressive_sample_stream(predictor, temperature=-1)
  with pytest.raises(ValueError, match='n_beams must be an int >= 1, got 0'):
    decoding.beam_search(predictor, n_beams=0)
  seq2seq = Transformer(V, n_encoder_layers=1, n_decoder_layers=1, mode='predict',
                        **{k: v for k, v in SIZES.items() if k != 'n_layers'})
  with pytest.raises(ValueError, match='decoding: model Transformer is not initialised'):
    decoding.autoregressive_sample(seq2seq)
  seq2seq.init((ShapeDtype((1, 3), np.int32), ShapeDtype((1, 1), np.int32)))
  with pytest.raises(ValueError, match=r'the encoder-decoder Transformer needs inputs'):
    decoding.autoregressive_sample(seq2seq)


# ------------------------------------------------------------------ predict capacity


@pytest.mark.parametrize('make, capacity', [
    (lambda mode: DotProductCausalAttention(max_len=5, mode=mode), 5),
    (lambda mode: PositionalEncoding(max_len=7, mode=mode), 7),
    (lambda mode: AxialPositionalEncoding(shape=(2, 3), d_embs=(4, 4), mode=mode), 6),
    (lambda mode: SelfAttention(causal=True, predict_mem_len=9, mode=mode), 9),
    (lambda mode: LSHSelfAttention(causal=True, predict_mem_len=10, predict_drop_len=None, mode=mode
                                  ), 10),
])
def test_layers_with_a_predict_cache_report_its_length_in_predict_mode_only(make, capacity):
  assert make('predict').predict_capacity() == capacity
  assert make('train').predict_capacity() is None and make('eval').predict_capacity() is None


def test_a_model_can_decode_as_far_as_its_smallest_cache():
  model = TransformerLM(V, **dict(SIZES, max_len=12), mode='predict')
  assert model.predict_capacity() == 12
  assert Serial(model, PositionalEncoding(max_len=9, mode='predict')).predict_capacity() == 9
  assert TransformerLM(V, **SIZES, mode='eval').predict_capacity() is None
  assert CHAIN.predict_capacity() is None  # no cache: no limit
