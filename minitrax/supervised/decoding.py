"""Decoding from predict-mode models: sampling, greedy decoding and beam search.

`model` is a layer built with `mode='predict'` and holding trained weights
(e.g. `TransformerLM(..., mode='predict')` after `init` and
`init_from_file`). Two kinds of model are supported, told apart by
`model.n_in` (as in Trax):

* a language model (n_in = 1) is fed the start id and then its own outputs;
  `inputs` (batch, n), if given, is a prompt fed (after the start id) in one
  call before the first sample;
* an encoder-decoder (n_in = 2, e.g. `Transformer`) is called with
  `(inputs, tokens)`, `inputs` being the source (batch, n_s).

Every function starts from a fresh predict state (as after `model.init` with
this batch size), never from the state the model holds, and leaves the model
unchanged. `autoregressive_sample` and `beam_search` run compiled end to end:
one `jax.jit` holds the prompt call and a `lax.while_loop` over positions
(compiled once per model, shapes and static arguments). Tokens after a
sequence's EOS are `eos_id`. Sampling draws Gumbel noise from `rng` (a JAX
key or an int seed; default seed 0), so it is reproducible. Whether decoding
is greedy (`temperature == 0`) is decided on the host and is a static argument
of the compiled functions: the greedy program is a plain argmax over the
logits (no noise drawn, no log-softmax), so switching between greedy and
sampling compiles a second program, while other temperatures > 0 reuse the
sampling one.
"""

import functools
import numbers
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from minitrax.checks import check_flag, check_int, check_non_negative
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.attention import DotProductCausalAttention
from minitrax.layers.trees import unique_layers
from minitrax.shapes import ShapeDtype

_NEG = -1e9  # score of impossible beams (finite, so no inf - inf)
_FRESH_STATES = weakref.WeakKeyDictionary()  # model -> {input signature: fresh state}

# ------------------------------------------------------------------ checks and setup


def _capacity(model):
  """The most positions `model` can decode (None: no limit); see `Layer.predict_capacity`.

  A causal attention layer in another mode than 'predict' means the model was
  not built for decoding: an `ArgumentError` naming it.
  """
  for layer in unique_layers(model):
    if isinstance(layer, DotProductCausalAttention):
      layer.check_predict_mode('decoding')
  return model.predict_capacity()


def _prepare(model, inputs, batch_size, start_id, rows_per_example=1, eval_mode=False):
  """Checks arguments; returns (prompt, inputs, fresh state, capacity).

  Examples are repeated `rows_per_example` times (beams) along the batch. In
  `eval_mode` the state is the model's own and there is no capacity (None).
  """
  check_int('decoding', 'batch_size', batch_size, 1)
  start = _start_ids(start_id, batch_size)
  if not model.initialized:
    raise ArgumentError(f'decoding: model {model.name} is not initialised; call model.init('
                        f'ShapeDtype((batch, 1), np.int32)) and load its weights first')
  if model.n_in not in (1, 2):
    raise ArgumentError(f'decoding: the model must take 1 input (a language model) or 2 '
                        f'(source, target), but {model.name} has n_in={model.n_in}')
  capacity = None if eval_mode else _capacity(model)
  if inputs is not None:
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.shape[0] != batch_size:
      raise ArgumentError(f'decoding: inputs must be (batch_size={batch_size}, length), got '
                          f'shape {inputs.shape}')
    if not np.issubdtype(inputs.dtype, np.integer):
      raise ArgumentTypeError(f'decoding: inputs must be integer ids, got dtype {inputs.dtype}')
    inputs = np.repeat(inputs.astype(np.int32), rows_per_example, axis=0)
  elif model.n_in == 2:
    raise ArgumentError(f'decoding: the encoder-decoder {model.name} needs inputs (the source '
                        f'ids, shape (batch_size, length))')
  rows = batch_size * rows_per_example
  prompt = np.repeat(start, rows_per_example, axis=0)
  if model.n_in == 1 and inputs is not None:
    prompt, inputs = np.concatenate([prompt, inputs], axis=1), None
  if eval_mode:
    return prompt, inputs, model.state, None
  signature = ShapeDtype((rows, 1), np.int32)
  if inputs is not None:
    signature = (ShapeDtype(inputs.shape, np.int32), signature)
  return prompt, inputs, _fresh_state(model, signature), capacity


def _start_ids(start_id, batch_size):
  """`start_id` (an int, or Trax 1.4's array of shape (batch_size, 1)) as int32 (batch_size, 1)."""
  if np.ndim(start_id) == 0:
    return np.full((batch_size, 1), check_int('decoding', 'start_id', start_id, 0), np.int32)
  start = np.asarray(start_id)
  if start.shape != (batch_size,
                     1) or not np.issubdtype(start.dtype, np.integer) or start.min() < 0:
    raise ArgumentError(f'decoding: start_id must be an int >= 0 or ids >= 0 of shape '
                        f'(batch_size={batch_size}, 1), got {start.dtype} of shape {start.shape}')
  return start.astype(np.int32)


def _check_trax_flags(accelerate, eval_min_length):
  """Trax 1.4's `accelerate` (minitrax always compiles) and `eval_min_length`, checked."""
  check_flag('decoding', 'accelerate', accelerate)
  check_int('decoding', 'eval_min_length', eval_min_length, 0)


def _fresh_state(model, signature):
  """The state that `model.init(signature)` makes (cached); the model is left unchanged."""
  per_model = _FRESH_STATES.setdefault(model, {})
  if signature not in per_model:
    weights, state, rng = model.weights, model.state, model.rng
    try:
      model.init(signature, rng=rng)
      per_model[signature] = model.state
    finally:
      model.weights, model.state, model.rng = weights, state, rng
  return per_model[signature]


def _check_room(capacity, n_positions, what):
  if capacity is not None and n_positions > capacity:
    raise ArgumentError(f'decoding: {what} needs {n_positions} positions but the model\'s '
                        f'predict cache holds max_len={capacity}; build the model with a larger '
                        f'max_len or decode fewer tokens')


def _as_key(rng):
  if rng is None:
    return jax.random.key(0)
  if isinstance(rng, numbers.Integral):
    return jax.random.key(int(rng))
  return rng


def _is_greedy(temperature):
  """True when `temperature` is exactly 0 on the host; a traced value is never greedy."""
  try:
    return float(temperature) == 0.0
  except (TypeError, ValueError):  # jax's ConcretizationTypeError is a TypeError
    return False


# ------------------------------------------------------------------ compiled pieces


def _log_probs(model, weights, state, tokens, inputs, greedy=False):
  """Runs the model on `tokens` (rows, n); returns (log-probs at the last position, state).

  With `greedy` the scores are the raw logits (same argmax, no log-softmax).
  """
  x = tokens if inputs is None else (inputs, tokens)
  y, state = model.pure_fn(x, weights, state, None)
  y = y[0] if isinstance(y, tuple) else y
  scores = y[:, -1, :].astype(jnp.float32)
  return (scores if greedy else jax.nn.log_softmax(scores, axis=-1)), state


def _sample(scores, temperature, rng, i, greedy):
  """One id per row: argmax of scores + temperature * Gumbel noise from fold_in(rng, i).

  With `greedy` (static) it is the plain argmax and `rng` is not used.
  """
  if not greedy:
    noise = jax.random.gumbel(jax.random.fold_in(rng, i), scores.shape, jnp.float32)
    scores = scores + temperature * noise
  return jnp.argmax(scores, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=('model', 'greedy'), donate_argnames=('state',))
def _stream_step(model, weights, state, tokens, inputs, temperature, rng, i, *, greedy):
  """Sample i from `tokens` (rows, n); returns (the ids as (rows, 1), as (rows,), state).

  The state is donated: its caches are updated in place, not copied each step.
  """
  scores, state = _log_probs(model, weights, state, tokens, inputs, greedy)
  ids = _sample(scores, temperature, rng, i, greedy)
  return ids[:, None], ids, state


@functools.partial(jax.jit, static_argnames=('model', 'eos_id', 'max_length', 'greedy'))
def _sample_loop(model, weights, state, prompt, inputs, temperature, rng, *, eos_id, max_length,
                 greedy):
  """Prompt call, then a while loop of one-token calls; returns (ids (rows, max_length), n)."""
  scores, state = _log_probs(model, weights, state, prompt, inputs, greedy)
  first = _sample(scores, temperature, rng, 0, greedy)
  out = jnp.full((prompt.shape[0], max_length), eos_id, jnp.int32).at[:, 0].set(first)

  def running(carry):
    i, _, _, _, done = carry
    return (i < max_length) & ~jnp.all(done)

  def step(carry):
    i, last, state, out, done = carry
    scores, state = _log_probs(model, weights, state, last[:, None], inputs, greedy)
    token = _sample(scores, temperature, rng, i, greedy)
    token = jnp.where(done, eos_id, token)
    return i + 1, token, state, out.at[:, i].set(token), done | (token == eos_id)

  carry = (jnp.int32(1), first, state, out, first == eos_id)
  n, _, _, out, _ = jax.lax.while_loop(running, step, carry)
  return out, n


@functools.partial(jax.jit, static_argnames=('model', 'greedy'))
def _eval_mode_step(model, weights, state, tokens, inputs, position, temperature, rng, i, *,
                    greedy):
  """Sample i of an eval-mode model: from its scores at `position` of the padded `tokens`."""
  y, _ = model.pure_fn(tokens if inputs is None else (inputs, tokens), weights, state, None)
  y = y[0] if isinstance(y, tuple) else y
  scores = jax.lax.dynamic_index_in_dim(y, position, axis=1, keepdims=False).astype(jnp.float32)
  return _sample(scores if greedy else jax.nn.log_softmax(scores, axis=-1), temperature, rng, i,
                 greedy)


def _eval_mode_stream(model, prompt, inputs, temperature, rng, greedy, min_length):
  """Trax 1.4's `eval_mode`: each sample from the whole sequence so far.

  The sequence leaves out the start id (an eval-mode model shifts its input
  right itself) and is zero-padded to a power of 2 of at least `min_length`
  and its length + 1, so there is one compile per padded length.
  """
  tokens, weights, state, i = prompt[:, 1:], model.weights, model.state, 0
  while True:
    n = tokens.shape[1]
    padded = np.pad(tokens, [(0, 0), (0, (1 << (max(min_length, n + 1) - 1).bit_length()) - n)])
    ids = _eval_mode_step(model, weights, state, padded, inputs, np.int32(n), temperature, rng,
                          np.int32(i), greedy=greedy)
    yield ids
    tokens = np.concatenate([tokens, np.asarray(ids)[:, None]], axis=1)
    i += 1


def _collect(stream, eos_id, max_length):
  """Ids from `stream` until every row has emitted `eos_id` or there are `max_length`."""
  out, done = [], None
  for ids in stream:
    ids = np.asarray(ids) if done is None else np.where(done, eos_id, np.asarray(ids))
    done = (ids == eos_id) if done is None else done | (ids == eos_id)
    out.append(ids)
    if len(out) >= max_length or done.all():
      return np.stack(out, axis=1)
  return np.stack(out, axis=1)


def _reorder_rows(state, index):
  """Gathers batch rows of every state array whose leading axis is a multiple of the rows.

  Assumes batch-major state (rows first, possibly folded with heads as in
  `CausalAttention`'s caches); scalars (counters) are left alone.
  """
  rows = index.shape[0]

  def gather(leaf):
    if leaf.ndim == 0 or leaf.shape[0] % rows:
      return leaf
    grouped = leaf.reshape((rows, leaf.shape[0] // rows) + leaf.shape[1:])
    return jnp.take(grouped, index, axis=0).reshape(leaf.shape)

  return jax.tree.map(gather, state)


def _beam_select(i, log_probs, beams, *, n_beams, eos_id):
  """Extends the beams by one token each; keeps the n_beams best (raw log-prob sums)."""
  scores, seqs, lengths, finished = beams
  batch, vocab = scores.shape[0], log_probs.shape[-1]
  log_probs = log_probs.reshape((batch, n_beams, vocab))
  only_eos = jnp.where(jnp.arange(vocab) == eos_id, 0.0, _NEG)
  log_probs = jnp.where(finished[..., None], only_eos, log_probs)
  candidates = (scores[..., None] + log_probs).reshape((batch, n_beams * vocab))
  scores, index = jax.lax.top_k(candidates, n_beams)
  parent, token = index // vocab, (index % vocab).astype(jnp.int32)
  seqs = jnp.take_along_axis(seqs, parent[..., None], axis=1).at[:, :, i].set(token)
  was_finished = jnp.take_along_axis(finished, parent, axis=1)
  lengths = jnp.take_along_axis(lengths, parent, axis=1) + (~was_finished).astype(jnp.int32)
  finished = was_finished | (token == eos_id)
  rows = (jnp.arange(batch)[:, None] * n_beams + parent).reshape(-1)
  return (scores, seqs, lengths, finished), token.reshape(-1), rows


@functools.partial(jax.jit, static_argnames=('model', 'n_beams', 'eos_id', 'max_length'))
def _beam_loop(model, weights, state, prompt, inputs, length_penalty, *, n_beams, eos_id,
               max_length):
  """Beam search over a predict state; returns (seqs, scores, lengths, n_steps)."""
  batch = prompt.shape[0] // n_beams
  select = functools.partial(_beam_select, n_beams=n_beams, eos_id=eos_id)
  log_probs, state = _log_probs(model, weights, state, prompt, inputs)
  scores = jnp.broadcast_to(jnp.where(jnp.arange(n_beams) == 0, 0.0, _NEG), (batch, n_beams))
  beams = (scores, jnp.full((batch, n_beams, max_length), eos_id,
                            jnp.int32), jnp.zeros((batch, n_beams),
                                                  jnp.int32), jnp.zeros((batch, n_beams), bool))
  beams, tokens, rows = select(0, log_probs, beams)
  state = _reorder_rows(state, rows)

  def running(carry):
    return (carry[0] < max_length) & ~jnp.all(carry[3][3])

  def step(carry):
    i, tokens, state, beams = carry
    log_probs, state = _log_probs(model, weights, state, tokens[:, None], inputs)
    beams, tokens, rows = select(i, log_probs, beams)
    return i + 1, tokens, _reorder_rows(state, rows), beams

  n, _, _, (scores, seqs, lengths, _) = jax.lax.while_loop(running, step,
                                                           (jnp.int32(1), tokens, state, beams))
  penalty = ((5.0 + lengths.astype(jnp.float32)) / 6.0)**length_penalty
  final = scores / penalty
  order = jnp.argsort(-final, axis=1)
  seqs = jnp.take_along_axis(seqs, order[..., None], axis=1)
  return seqs, jnp.take_along_axis(final, order, axis=1), n


# ------------------------------------------------------------------ public functions


def autoregressive_sample_stream(model, inputs=None, batch_size=1, temperature=1.0, start_id=0,
                                 accelerate=True, eval_mode=False, eval_min_length=1, rng=None):
  """Yields samples from `model` one position at a time, forever.

  Each step is one call of a compiled one-step function (two compiles: the
  prompt and the one-token step; greedy and sampling are separate programs);
  the sampled ids are fed back on the device. The ids are yielded as JAX
  arrays, as Trax does, without waiting for them: `next` returns as soon as
  the step is dispatched, so a loop that keeps the ids (or converts them
  later) runs the steps back to back. The step donates the predict state,
  so its caches are updated in place rather than copied.
  Stops with a `ValueError` before the model's predict cache (`max_len`)
  would overflow.

  Args:
    model: predict-mode model with trained weights (see the module docstring);
      with `eval_mode`, any model, e.g. an eval-mode `TransformerLM`.
    inputs: None, or int ids (batch_size, n): the prompt of a language model
      or the source of an encoder-decoder.
    batch_size: number of sequences decoded side by side.
    temperature: 0 gives the argmax; 1 samples from the model; higher is
      more uniform.
    start_id: id fed first, or ids of shape (batch_size, 1) (Trax 1.4).
    accelerate: Trax 1.4's flag for compiling the model; minitrax always
      compiles, so True and False decode alike.
    eval_mode: Trax 1.4's slow path: each step runs the model on the whole
      sequence so far (without the start id, zero-padded to a power of 2).
    eval_min_length: with `eval_mode`, the least padded length.
    rng: JAX key or int seed for the sampling noise; default seed 0.

  Returns:
    A generator of int32 JAX arrays of shape (batch_size,).
  """
  check_non_negative('decoding', 'temperature', temperature)
  _check_trax_flags(accelerate, eval_min_length)
  prompt, inputs, state, capacity = _prepare(model, inputs, batch_size, start_id,
                                             eval_mode=eval_mode)
  key, greedy = _as_key(rng), _is_greedy(temperature)
  if eval_mode:
    return _eval_mode_stream(model, prompt, inputs, jnp.float32(temperature), key, greedy,
                             eval_min_length)
  return _stream(model, prompt, inputs, state, capacity, jnp.float32(temperature), key, greedy)


def _stream(model, tokens, inputs, state, capacity, temperature, rng, greedy):
  weights, used, i = model.weights, 0, 0
  state = jax.tree.map(jnp.copy, state)  # the stream's own, donated step by step
  while True:
    used += tokens.shape[1]
    _check_room(capacity, used, f'sample {i + 1}')
    tokens, ids, state = _stream_step(model, weights, state, tokens, inputs, temperature, rng,
                                      np.int32(i), greedy=greedy)
    yield ids
    i += 1


def autoregressive_sample(model, inputs=None, batch_size=1, temperature=1.0, start_id=0, eos_id=1,
                          max_length=100, accelerate=True, eval_mode=False, eval_min_length=1,
                          rng=None):
  """Samples whole sequences: ids (batch_size, length), length <= max_length.

  Runs compiled end to end (with `eval_mode`, one compiled call per id). A
  sequence ends at its first `eos_id` (which is kept; later positions are
  `eos_id` too); decoding stops when all have ended or after `max_length`
  ids. `temperature=0` is greedy decoding. For the same `rng` the result
  equals the first ids of `autoregressive_sample_stream`.

  Args:
    model, inputs, batch_size, temperature, start_id, accelerate, eval_mode,
      eval_min_length, rng: as for `autoregressive_sample_stream` (a
      predict-mode model; an optional prompt (batch_size, n); 0 is greedy).
    eos_id: the id that ends a sequence (kept in the output).
    max_length: at most this many ids per sequence, `eos_id` included.

  Returns:
    int32 NumPy array (batch_size, length), length <= max_length.
  """
  check_non_negative('decoding', 'temperature', temperature)
  check_int('decoding', 'max_length', max_length, 1)
  check_int('decoding', 'eos_id', eos_id, 0)
  if eval_mode:
    return _collect(
        autoregressive_sample_stream(model, inputs, batch_size, temperature, start_id, accelerate,
                                     True, eval_min_length, rng), eos_id, max_length)
  _check_trax_flags(accelerate, eval_min_length)
  prompt, inputs, state, capacity = _prepare(model, inputs, batch_size, start_id)
  _check_room(capacity, prompt.shape[1] + max_length - 1, f'max_length={max_length}')
  out, n = _sample_loop(model, model.weights, state, prompt, inputs, jnp.float32(temperature),
                        _as_key(rng), eos_id=eos_id, max_length=max_length,
                        greedy=_is_greedy(temperature))
  return np.asarray(out)[:, :int(n)]


def beam_search(model, inputs=None, batch_size=1, n_beams=2, start_id=0, eos_id=1, max_length=100,
                length_penalty=1.0, accelerate=True):
  """Beam search: the `n_beams` most likely sequences per example, best first.

  Runs compiled end to end over a predict state of batch_size * n_beams rows
  (the state's batch-major arrays are reordered with the beams). Beams keep
  their raw log-probability sums during the search; a finished beam (it
  emitted `eos_id`) only extends with `eos_id` at no cost. At the end each
  beam is scored `log_prob / ((5 + length) / 6) ** length_penalty` (Wu et al.,
  2016; length counts ids up to and including the first EOS) and the beams are
  sorted by that score. With `n_beams=1` this is greedy decoding. Trax 1.4's
  `accelerate` is accepted and changes nothing (minitrax always compiles).

  Returns:
    `(ids, scores)`: int32 (batch_size, n_beams, length) with `length <=
    max_length` (positions after EOS hold `eos_id`), and float32 (batch_size,
    n_beams) scores, best first.
  """
  check_int('decoding', 'n_beams', n_beams, 1)
  check_flag('decoding', 'accelerate', accelerate)  # minitrax always compiles
  check_int('decoding', 'max_length', max_length, 1)
  check_int('decoding', 'eos_id', eos_id, 0)
  if not isinstance(length_penalty, numbers.Real):
    raise ArgumentError(f'decoding: length_penalty must be a number, got {length_penalty!r}')
  prompt, inputs, state, capacity = _prepare(model, inputs, batch_size, start_id, n_beams)
  _check_room(capacity, prompt.shape[1] + max_length - 1, f'max_length={max_length}')
  seqs, scores, n = _beam_loop(model, model.weights, state, prompt, inputs,
                               jnp.float32(length_penalty), n_beams=n_beams, eos_id=eos_id,
                               max_length=max_length)
  return np.asarray(seqs)[:, :, :int(n)], np.asarray(scores)


__all__ = ['autoregressive_sample_stream', 'autoregressive_sample', 'beam_search']
