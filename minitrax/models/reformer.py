"""Reformer models (Kitaev, Kaiser and Levskaya, 2020): long sequences in little memory.

Signatures and structure follow Trax 1.4 (`trax/models/reformer/reformer.py`).
The residual stream is a pair `(x1, x2)` (each `d_model` wide) run through a
`ReversibleSerial` of RevNet blocks, `y1 = x1 + Attention(LayerNorm(x2))`,
`y2 = x2 + FeedForward(y1)`, so activation memory does not grow with depth;
attention may be exact (`SelfAttention`, optionally chunked) or LSH
(`LSHSelfAttention`); the feed-forward block may run `ff_chunk_size`
positions at a time; and with `loss_chunk_size` the vocabulary projection is
left to a `ChunkedCrossEntropyLoss`, which never holds the whole (batch,
length, vocab) array.

Every model takes `mode` in 'train', 'eval', 'predict'; the weights tree does
not depend on `mode` (train weights load into a predict model). In predict
mode a language model takes a few tokens per call and keeps caches of
`max_len` positions (see `minitrax.layers.lsh_attention` for what LSH layers
compute there).
"""

import numbers

import jax
import jax.numpy as jnp

from minitrax.checks import check_int, check_mode, check_rate
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.activation_fns import FastGelu, Relu
from minitrax.layers.attention import AttentionQKV, PaddingMask, PositionalEncoding, ShiftRight
from minitrax.layers.axial import AxialPositionalEncoding
from minitrax.layers.base import Fn, Layer
from minitrax.layers.chunk_loops import ChunkedLayerNorm, MapChunks, chunk_sum_with_grads
from minitrax.layers.combinators import Branch, Concatenate, Dup, Select, Serial
from minitrax.layers.control import Cache
from minitrax.layers.core import Dense, Dropout, Embedding, LogSoftmax, check_ids, poison
from minitrax.layers.lsh_attention import SelfAttention
from minitrax.layers.normalization import LayerNorm
from minitrax.layers.reversible import ReversibleHalfResidual, ReversibleSerial, ReversibleSwap
from minitrax.models.registry import register


def _check_args(who, mode, dropout, **sizes):
  """Checks `mode`, the dropout rate and `name=(value, minimum)` ints (None: not given)."""
  check_mode(who, 'mode', mode)
  check_rate(who, 'dropout', dropout)
  for name, (value, least) in sizes.items():
    if value is not None:
      check_int(who, name, value, least)


# ------------------------------------------------------------------ blocks


def FeedForward(d_model, d_ff, dropout, activation, mode):  # pylint: disable=invalid-name
  """LayerNorm, Dense(d_ff), Dropout, activation, Dense(d_model), Dropout: 1 -> 1.

  Dropout masks are shared along the length axis (as in Trax's Reformer).
  """
  return [
      LayerNorm(),
      Dense(d_ff),
      Dropout(rate=dropout, shared_axes=[-2], mode=mode),
      activation(),
      Dense(d_model),
      Dropout(rate=dropout, shared_axes=[-2], mode=mode)
  ]


def ChunkedFeedForward(d_model, d_ff, dropout, activation, chunk_size, mode):  # pylint: disable=invalid-name
  """`FeedForward` run on `chunk_size` positions at a time (0: all at once).

  (batch, n, d) -> (batch, n, d). The batch x length positions are cut into
  chunks of `chunk_size` (one chunk if it does not divide them) and
  `MapChunks` runs the block on one chunk after another, so the (positions,
  d_ff) hidden activations exist for one chunk at a time, in the backward
  pass too. Weights: `FeedForward`'s, inside MapChunks (as inside a Scan).
  """
  ff = FeedForward(d_model, d_ff, dropout, activation, mode)
  if chunk_size < 1:
    return ff

  def to_chunks(x):
    positions = x.shape[0] * x.shape[1]
    size = chunk_size if positions % chunk_size == 0 else positions
    return x.reshape((positions // size, 1, size, x.shape[-1]))

  return [
      Dup(),
      Fn('ReshapeToChunks', to_chunks),
      MapChunks(Serial(ff)),
      Fn('ReshapeXToY', lambda x, y: x.reshape(y.shape))
  ]


def DecoderBlock(
    d_model,
    d_ff,
    d_attention_key,
    d_attention_value,
    n_heads,  # pylint: disable=invalid-name
    attention_type,
    dropout,
    ff_activation,
    ff_chunk_size,
    max_len,
    mode):
  """A reversible causal block on (x1, x2): attention half, swap, feed-forward half, swap.

  `attention_type` is called with `n_heads, d_qk, d_v, causal=True,
  output_dropout, mode, predict_mem_len, predict_drop_len` (e.g. `SelfAttention`,
  `LSHSelfAttention` or a `functools.partial` of them).
  """
  attention = attention_type(n_heads=n_heads, d_qk=d_attention_key, d_v=d_attention_value,
                             causal=True, output_dropout=dropout, mode=mode,
                             predict_mem_len=max_len, predict_drop_len=max_len)
  feed_forward = ChunkedFeedForward(d_model, d_ff, dropout, ff_activation, ff_chunk_size, mode)
  return [
      ReversibleHalfResidual(_layer_norm(ff_chunk_size), attention_layer=attention),
      ReversibleSwap(),
      ReversibleHalfResidual(feed_forward),
      ReversibleSwap()
  ]


def _layer_norm(chunk_size):
  """LayerNorm, computed `chunk_size` positions at a time if > 0 (the same weights and numbers)."""
  return ChunkedLayerNorm(chunk_size) if chunk_size > 0 else LayerNorm()


def _positional_encoding(d_model, dropout, max_len, axial_pos_shape, d_axial_pos_embs, mode):
  if not axial_pos_shape:
    return PositionalEncoding(max_len=max_len, dropout=dropout, mode=mode)
  if d_axial_pos_embs is None or sum(d_axial_pos_embs) != d_model:
    raise ArgumentError(f'ReformerLM: d_axial_pos_embs must be given with axial_pos_shape and sum '
                        f'to d_model={d_model}, got {d_axial_pos_embs!r}')
  return AxialPositionalEncoding(shape=axial_pos_shape, d_embs=d_axial_pos_embs, dropout=dropout,
                                 mode=mode,
                                 dropout_broadcast_dims=tuple(range(1,
                                                                    len(axial_pos_shape) + 1)))


# ------------------------------------------------------------------ the chunked loss


class ProjectionForLoss(Layer):
  """Dense(vocab_size) then LogSoftmax, whose train-mode output is left to the loss.

  `mode='train'`: (..., d) -> ((..., d), (d, vocab_size), (vocab_size,)),
  n_out = 3: the input and this layer's own weights, so that a
  `ChunkedCrossEntropyLoss` can project a chunk at a time. Other modes:
  `log_softmax(x w + b)`, (..., d) -> (..., vocab_size), n_out = 1. Weights
  `(w, b)` as `Dense`, the same tree in every mode.
  """

  def __init__(self, vocab_size, mode='train'):
    _check_args('ProjectionForLoss', mode, 0.0, vocab_size=(vocab_size, 1))
    super().__init__(n_out=3 if mode == 'train' else 1, name=f'ProjectionForLoss_{vocab_size}')
    self._dense = Dense(vocab_size)
    self._mode = mode

  def init_weights_and_state(self, input_signature, rng):
    return self._dense.init_weights_and_state(input_signature, rng)

  def forward(self, x, weights):
    if self._mode == 'train':
      if x.shape[-1] != weights[0].shape[0]:
        raise ArgumentError(f'{self.name}: input shape {x.shape} does not end in '
                            f'd={weights[0].shape[0]}')
      return x, weights[0], weights[1]
    return jax.nn.log_softmax(self._dense.forward(x, weights), axis=-1)


class ChunkedCrossEntropyLoss(Layer):
  """Cross-entropy of a vocabulary projection computed `chunk_size` positions at a time.

  `(x (..., d), w (d, V), b (V,), targets (...) int[, weights (...)]) -> ()`;
  n_in = 4, or 5 with `has_weights`. Equals `CrossEntropyLoss` of
  `LogSoftmax(x w + b)`, but the (positions, V) log-probabilities exist for
  one chunk at a time: one loop computes the loss and its gradients
  (`chunk_sum_with_grads`), the backward pass only scales them.
  Follows a `ReformerLM(..., loss_chunk_size=...)` in train mode; with the
  Trainer pass `loss_fn=functools.partial(ChunkedCrossEntropyLoss,
  chunk_size=...)`.

  Args:
    chunk_size: positions per chunk (the positions are padded to a multiple).
    id_to_mask: target id whose positions count nothing (padding), or None.
    has_weights: whether per-position weights come as the fifth input.
  """

  def __init__(self, chunk_size=1024, id_to_mask=None, has_weights=False):
    _check_args('ChunkedCrossEntropyLoss', 'train', 0.0, chunk_size=(chunk_size, 1))
    if id_to_mask is not None and (isinstance(id_to_mask, bool) or
                                   not isinstance(id_to_mask, numbers.Integral)):
      raise ArgumentTypeError(f'ChunkedCrossEntropyLoss: id_to_mask must be an int or None, got '
                              f'{id_to_mask!r}')
    super().__init__(n_in=5 if has_weights else 4, name='ChunkedCrossEntropyLoss')
    self._chunk_size = chunk_size
    self._id_to_mask, self._has_weights = id_to_mask, has_weights

  def forward(self, inputs, weights):
    del weights
    x, w, b, targets = inputs[:4]
    if x.shape[:-1] != targets.shape:
      raise ArgumentError(f'{self.name}: targets must have shape {x.shape[:-1]} (the inputs '
                          f'without their last axis), got {targets.shape}')
    weights = (jnp.ones(targets.shape, jnp.float32) if not self._has_weights else jnp.broadcast_to(
        inputs[4], targets.shape).astype(jnp.float32))
    if self._id_to_mask is not None:
      weights = weights * (targets != self._id_to_mask)
    targets = jnp.where(weights != 0, targets, 0)
    bad = check_ids(targets, w.shape[-1], f'{self.name} targets')
    x, targets, weights = x.reshape((-1, x.shape[-1])), targets.reshape(-1), weights.reshape(-1)
    size = min(self._chunk_size, x.shape[0])
    pad = -x.shape[0] % size
    chunks = [
        jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape((-1, size) + a.shape[1:])
        for a in (x, targets, weights)
    ]

    def chunk_loss(args, w, b):
      x_c, t_c, w_c = args
      logits = jnp.dot(x_c, w)
      logits = logits + jnp.broadcast_to(b, logits.shape)
      log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
      picked = jnp.take_along_axis(log_probs, t_c[:, None], axis=-1)
      return -jnp.sum(picked[:, 0] * w_c)

    total = chunk_sum_with_grads(lambda params, args: chunk_loss(args, *params), (w, b),
                                 tuple(chunks))
    return poison(total / jnp.sum(weights), bad)


# ------------------------------------------------------------------ models


@register
def ReformerLM(
    vocab_size,
    d_model=512,
    d_ff=2048,
    d_attention_key=64,  # pylint: disable=invalid-name
    d_attention_value=64,
    n_layers=6,
    n_heads=8,
    dropout=0.1,
    max_len=2048,
    attention_type=SelfAttention,
    ff_activation=FastGelu,
    ff_chunk_size=0,
    axial_pos_shape=(),
    d_axial_pos_embs=None,
    loss_chunk_size=0,
    mode='train'):
  """A reversible Transformer language model: (batch, n) int -> (batch, n, vocab_size) log-probs.

  ShiftRight, Embedding, Dropout, positional encoding (sinusoidal, or axial
  with `axial_pos_shape`), Dup to `(x, x)`, `n_layers` reversible
  `DecoderBlock`s, Concatenate (width 2 d_model), LayerNorm, Dropout,
  Dense(vocab_size), LogSoftmax. Output position t predicts token t from
  tokens before t. Predict mode: ShiftRight is the identity; feed the start
  id (0) first.

  Args:
    vocab_size: number of token ids.
    d_model: width of each half of the residual pair.
    d_ff: feed-forward hidden width.
    d_attention_key, d_attention_value: per-head query/key and value widths.
    n_layers: number of reversible blocks.
    n_heads: attention heads.
    dropout: dropout rate (training only).
    max_len: longest sequence for sinusoidal positions; predict-mode cache.
    attention_type: attention layer class (see `DecoderBlock`), or a list of
      them used in turn, layer i getting `attention_type[i % len]` (Trax's
      enwik8 configuration mixes SelfAttention and LSHSelfAttention).
    ff_activation: function returning the feed-forward activation layer.
    ff_chunk_size: positions per feed-forward chunk (0: no chunking).
    axial_pos_shape, d_axial_pos_embs: axial positional encoding (see
      `AxialPositionalEncoding`); () for sinusoidal.
    loss_chunk_size: if > 0, in train mode the model ends with
      `ProjectionForLoss` and outputs `(hidden, w, b)` for a
      `ChunkedCrossEntropyLoss(chunk_size=loss_chunk_size)`; eval and predict
      modes still output log-probs.
    mode: 'train', 'eval' or 'predict'.
  """
  _check_args('ReformerLM', mode, dropout, vocab_size=(vocab_size, 1), d_model=(d_model, 1),
              d_ff=(d_ff, 1), d_attention_key=(d_attention_key, 1),
              d_attention_value=(d_attention_value, 1), n_layers=(n_layers, 1),
              n_heads=(n_heads, 1), max_len=(max_len, 1), ff_chunk_size=(ff_chunk_size, 0),
              loss_chunk_size=(loss_chunk_size, 0))
  types = list(attention_type) if isinstance(attention_type, (list, tuple)) else [attention_type]
  if not types or not all(callable(t) for t in types):
    raise ArgumentError(f'ReformerLM: attention_type must be a layer class or a non-empty list of '
                        f'them, got {attention_type!r}')
  blocks = [
      DecoderBlock(d_model, d_ff, d_attention_key, d_attention_value, n_heads,
                   types[i % len(types)], dropout, ff_activation, ff_chunk_size, max_len, mode)
      for i in range(n_layers)
  ]
  head = ([ProjectionForLoss(vocab_size, mode=mode)]
          if loss_chunk_size else [Dense(vocab_size), LogSoftmax()])
  return Serial(
      ShiftRight(mode=mode), Embedding(vocab_size, d_model),
      Dropout(rate=dropout, shared_axes=[-2], mode=mode),
      _positional_encoding(d_model, dropout, max_len, axial_pos_shape, d_axial_pos_embs, mode),
      Dup(), ReversibleSerial(blocks), Concatenate(), _layer_norm(loss_chunk_size or ff_chunk_size),
      Dropout(rate=dropout, shared_axes=[-2], mode=mode), head, name='ReformerLM')


def _EncoderBlock(d_model, d_ff, n_heads, dropout, activation, mode):  # pylint: disable=invalid-name
  """Reversible block on (x1, x2, mask): padding-masked self-attention, then feed-forward."""
  attention = SelfAttention(n_heads=n_heads, d_qk=d_model // n_heads, d_v=d_model // n_heads,
                            masked=True, attention_dropout=dropout, output_dropout=dropout,
                            mode=mode)
  return [
      ReversibleHalfResidual(LayerNorm(), attention_layer=attention),
      ReversibleSwap(),
      ReversibleHalfResidual(FeedForward(d_model, d_ff, dropout, activation, mode)),
      ReversibleSwap()
  ]


def _EncoderDecoderBlock(
    d_model,
    d_ff,
    n_heads,
    dropout,
    activation,
    max_len,  # pylint: disable=invalid-name
    mode):
  """Reversible block on (x1, x2, vec_e, mask): causal self-attention, encoder attention, FF."""
  d_head = d_model // n_heads
  causal = SelfAttention(n_heads=n_heads, d_qk=d_head, d_v=d_head, causal=True,
                         attention_dropout=dropout, output_dropout=dropout, mode=mode,
                         predict_mem_len=max_len, predict_drop_len=max_len)
  to_encoder = [
      Select([0, 1, 1, 2]),  # q k v mask: (x, vec_e, vec_e, mask)
      AttentionQKV(d_model, n_heads=n_heads, dropout=dropout, mode=mode),
      Select([0], n_in=2),
      Dropout(rate=dropout, mode=mode)
  ]
  return [
      ReversibleHalfResidual(LayerNorm(), attention_layer=causal),
      ReversibleSwap(),
      ReversibleHalfResidual(LayerNorm(), to_encoder),
      ReversibleSwap(),
      ReversibleHalfResidual(FeedForward(d_model, d_ff, dropout, activation, mode)),
      ReversibleSwap()
  ]


def _average():
  return Fn('XYAvg', lambda x, y: (x + y) / 2.0)


def _embedder(vocab_size, d_model, dropout, max_len, mode):
  """Token ids (batch, n) -> embedded vectors with positions (batch, n, d_model)."""
  return [
      Embedding(vocab_size, d_model),
      Dropout(rate=dropout, shared_axes=[-2], mode=mode),
      PositionalEncoding(max_len=max_len, dropout=dropout, mode=mode)
  ]


def _encoder(vocab_size, d_model, d_ff, n_layers, n_heads, dropout, max_len, ff_activation, mode):
  """Reformer's encoder: (tok_e, mask) -> (vec_e, mask)."""
  return Serial(
      _embedder(vocab_size, d_model, dropout, max_len, mode),
      Dup(),  # vec_e1 vec_e2 mask
      ReversibleSerial([
          _EncoderBlock(d_model, d_ff, n_heads, dropout, ff_activation, mode)
          for _ in range(n_layers)
      ]),
      _average(),
      LayerNorm(),
      name='Encoder')  # vec_e mask


@register
def Reformer(
    input_vocab_size,
    output_vocab_size=None,
    d_model=512,
    d_ff=2048,  # pylint: disable=invalid-name
    n_encoder_layers=6,
    n_decoder_layers=6,
    n_heads=8,
    dropout=0.1,
    max_len=2048,
    ff_activation=Relu,
    mode='train'):
  """A reversible encoder-decoder: (source, target) -> (log-probs, target).

  n_in = n_out = 2 (as `Transformer`): `source` (batch, n_s) ids with 0 as
  padding, `target` (batch, n_t) ids; log-probs (batch, n_t,
  output_vocab_size), position t predicting target token t from the source
  and the target tokens before t. Encoder: Embedding, positions, reversible
  blocks of padding-masked `SelfAttention` and feed-forward, average of the
  two halves, LayerNorm. Decoder: reversible blocks of causal `SelfAttention`,
  attention to the encoder (`AttentionQKV`) and feed-forward. Predict mode:
  the encoder runs on the first call and is cached; feed the start id (0),
  then each target token.

  Args:
    input_vocab_size: number of source token ids.
    output_vocab_size: number of target token ids (None: input_vocab_size).
    d_model: width of embeddings and of each reversible half.
    d_ff: width of the feed-forward hidden layers.
    n_encoder_layers, n_decoder_layers: number of encoder and decoder blocks.
    n_heads: attention heads; must divide d_model.
    dropout: dropout rate (training only).
    max_len: longest sequence; the predict-mode cache length.
    ff_activation: function returning the feed-forward activation layer.
    mode: 'train', 'eval' or 'predict'.
  """
  _check_args('Reformer', mode, dropout, input_vocab_size=(input_vocab_size, 1),
              output_vocab_size=(output_vocab_size, 1), d_model=(d_model, 1), d_ff=(d_ff, 1),
              n_encoder_layers=(n_encoder_layers, 1), n_decoder_layers=(n_decoder_layers, 1),
              n_heads=(n_heads, 1), max_len=(max_len, 1))
  if d_model % n_heads:
    raise ArgumentError(f'Reformer: d_model={d_model} is not a multiple of n_heads={n_heads}')
  output_vocab_size = output_vocab_size or input_vocab_size
  encoder = _encoder(input_vocab_size, d_model, d_ff, n_encoder_layers, n_heads, dropout, max_len,
                     ff_activation, 'eval' if mode == 'predict' else mode)
  decoder_blocks = [
      _EncoderDecoderBlock(d_model, d_ff, n_heads, dropout, ff_activation, max_len, mode)
      for _ in range(n_decoder_layers)
  ]
  return Serial(
      Select([0, 1, 1]),  # tok_e tok_d tok_d
      Branch([], PaddingMask()),  # tok_e mask tok_d tok_d
      Cache(encoder) if mode == 'predict' else encoder,  # vec_e mask tok_d tok_d
      Select([2, 0, 1]),  # tok_d vec_e mask tok_d
      ShiftRight(mode=mode),
      _embedder(output_vocab_size, d_model, dropout, max_len, mode),
      Dup(),  # vec_d1 vec_d2 vec_e mask tok_d
      ReversibleSerial(decoder_blocks),
      _average(),
      LayerNorm(),  # vec_d vec_e mask tok_d
      Select([0], n_in=3),  # vec_d tok_d
      Dense(output_vocab_size),
      LogSoftmax(),  # log_probs tok_d
      name='Reformer')


__all__ = [
    'ReformerLM', 'Reformer', 'DecoderBlock', 'FeedForward', 'ChunkedFeedForward',
    'ProjectionForLoss', 'ChunkedCrossEntropyLoss'
]
