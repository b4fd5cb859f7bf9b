"""Transformer models (Vaswani et al., 2017): LM, encoder, decoder, encoder-decoder.

Signatures and structure follow Trax 1.2 (`trax/models/transformer.py`):
pre-norm residual blocks (`x + f(LayerNorm(x))`), sinusoidal positions, a
final LayerNorm, and log-probabilities out (`LogSoftmax`; `CrossEntropyLoss`
takes them).

Every model takes `mode` in 'train', 'eval', 'predict'. Dropout acts only in
'train'. The weights tree of a model does not depend on `mode`, so weights
trained in 'train' mode load into a 'predict' model
(`predict_model.weights = trainer.model_weights`). In 'predict' mode a
language model takes a few tokens per call (one, or a prompt chunk), keeping
key/value caches and position counters of `max_len` positions in its state;
see `minitrax.layers.attention` and `minitrax.supervised.decoding`.
"""

from minitrax.checks import check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.activation_fns import Relu
from minitrax.layers.attention import (Attention, AttentionQKV, CausalAttention, PaddingMask,
                                       PositionalEncoding, ShiftRight)
from minitrax.layers.combinators import Branch, Cache, Residual, Select, Serial
from minitrax.layers.core import Dense, Dropout, Embedding, LogSoftmax, Mean
from minitrax.layers.normalization import LayerNorm
from minitrax.models.registry import register

# Models are CamelCase functions returning layers, as in Trax.
# pylint: disable=invalid-name


def _check_args(who, mode, dropout, d_model, n_heads, **sizes):
  """Checks `mode`, the dropout rate and the sizes (ints >= 1; None: not given)."""
  check_mode(who, 'mode', mode)
  check_rate(who, 'dropout', dropout)
  for name, value in dict(sizes, d_model=d_model, n_heads=n_heads).items():
    if value is not None:
      check_int(who, name, value, 1)
  if d_model % n_heads:
    raise ArgumentError(f'{who}: d_model={d_model} is not a multiple of n_heads={n_heads}')


# ------------------------------------------------------------------ blocks


def _FeedForward(d_model, d_ff, dropout, mode, activation):
  """LayerNorm, Dense(d_ff), activation, Dropout, Dense(d_model), Dropout: 1 -> 1."""
  return [
      LayerNorm(),
      Dense(d_ff),
      activation(),
      Dropout(rate=dropout, mode=mode),
      Dense(d_model),
      Dropout(rate=dropout, mode=mode)
  ]


def _EncoderBlock(d_model, d_ff, n_heads, dropout, mode, activation):
  """Self-attention with a padding mask, then feed-forward: (x, mask) -> (x, mask)."""
  return [
      Residual(LayerNorm(), Attention(d_model, n_heads=n_heads, dropout=dropout, mode=mode),
               Dropout(rate=dropout, mode=mode)),
      Residual(*_FeedForward(d_model, d_ff, dropout, mode, activation)),
  ]


def _DecoderBlock(d_model, d_ff, n_heads, dropout, max_len, mode, activation):
  """Causal self-attention, then feed-forward: x -> x."""
  return [
      Residual(
          LayerNorm(),
          CausalAttention(d_model, n_heads=n_heads, dropout=dropout, max_len=max_len, mode=mode),
          Dropout(rate=dropout, mode=mode)),
      Residual(*_FeedForward(d_model, d_ff, dropout, mode, activation)),
  ]


def _EncoderDecoderBlock(d_model, d_ff, n_heads, dropout, max_len, mode, activation):
  """Causal self-attention, attention to the encoder, feed-forward.

  (x_dec, mask, x_enc) -> (x_dec, mask, x_enc).
  """
  return [
      Residual(
          LayerNorm(),
          CausalAttention(d_model, n_heads=n_heads, dropout=dropout, max_len=max_len, mode=mode),
          Dropout(rate=dropout, mode=mode)),
      Residual(
          LayerNorm(),
          Select([0, 2, 2, 1, 2]),  # x_dec x_enc x_enc mask x_enc
          AttentionQKV(d_model, n_heads=n_heads, dropout=dropout, mode=mode),
          Dropout(rate=dropout, mode=mode)),  # y mask x_enc
      Residual(*_FeedForward(d_model, d_ff, dropout, mode, activation)),
  ]


# ------------------------------------------------------------------ models


@register
def TransformerLM(vocab_size, d_model=512, d_ff=2048, n_layers=6, n_heads=8, dropout=0.1,
                  max_len=2048, mode='train', ff_activation=Relu):
  """A Transformer language model: (batch, n) int -> (batch, n, vocab_size) log-probs.

  ShiftRight, Embedding, Dropout, PositionalEncoding, `n_layers` decoder
  blocks (causal attention and feed-forward, pre-norm residual), LayerNorm,
  Dense(vocab_size), LogSoftmax. Output position t predicts input token t from
  tokens before t. In 'predict' mode ShiftRight is the identity: feed the
  start id (0) first, then each token; output i predicts the token after the
  i-th fed one.

  Args:
    vocab_size: number of token ids.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layer.
    n_layers: number of decoder blocks.
    n_heads: attention heads (must divide d_model).
    dropout: dropout rate (training only).
    max_len: longest sequence; the predict-mode cache length.
    mode: 'train', 'eval' or 'predict'.
    ff_activation: function returning the feed-forward activation layer.
  """
  _check_args('TransformerLM', mode, dropout, d_model, n_heads, vocab_size=vocab_size, d_ff=d_ff,
              n_layers=n_layers, max_len=max_len)
  blocks = [
      _DecoderBlock(d_model, d_ff, n_heads, dropout, max_len, mode, ff_activation)
      for _ in range(n_layers)
  ]
  return Serial(ShiftRight(mode=mode), Embedding(vocab_size, d_model),
                Dropout(rate=dropout, mode=mode), PositionalEncoding(max_len=max_len, mode=mode),
                blocks, LayerNorm(), Dense(vocab_size), LogSoftmax(), name='TransformerLM')


@register
def TransformerDecoder(vocab_size=None, d_model=512, d_ff=2048, n_layers=6, n_heads=8, dropout=0.1,
                       max_len=2048, mode='train', ff_activation=Relu):
  """A stack of causal decoder blocks: (batch, n) int or (batch, n, d) -> (batch, n, d_model).

  Embedding (ids, when `vocab_size` is given) or Dense(d_model) (vectors,
  when it is None), Dropout, PositionalEncoding, `n_layers` decoder blocks,
  LayerNorm. Does not shift its input: output t sees inputs 0..t. Supports
  predict mode like `TransformerLM`. Arguments as for `TransformerLM`.
  """
  _check_args('TransformerDecoder', mode, dropout, d_model, n_heads, vocab_size=vocab_size,
              d_ff=d_ff, n_layers=n_layers, max_len=max_len)
  embed = Embedding(vocab_size, d_model) if vocab_size is not None else Dense(d_model)
  blocks = [
      _DecoderBlock(d_model, d_ff, n_heads, dropout, max_len, mode, ff_activation)
      for _ in range(n_layers)
  ]
  return Serial(embed, Dropout(rate=dropout, mode=mode),
                PositionalEncoding(max_len=max_len, mode=mode), blocks, LayerNorm(),
                name='TransformerDecoder')


@register
def TransformerEncoder(vocab_size, n_classes=10, d_model=512, d_ff=2048, n_layers=6, n_heads=8,
                       dropout=0.1, max_len=2048, mode='train', ff_activation=Relu):
  """A Transformer classifier: (batch, n) int -> (batch, n_classes) log-probs.

  Embedding, Dropout, PositionalEncoding, `n_layers` encoder blocks
  (self-attention that ignores padding id 0, feed-forward), LayerNorm, mean
  over positions (padding included, as in Trax), Dense(n_classes),
  LogSoftmax. Predict mode is eval mode (no cache needed).
  """
  _check_args('TransformerEncoder', mode, dropout, d_model, n_heads, vocab_size=vocab_size,
              n_classes=n_classes, d_ff=d_ff, n_layers=n_layers, max_len=max_len)
  encoder = _Encoder(Embedding(vocab_size, d_model), d_model, d_ff, n_layers, n_heads, dropout,
                     max_len, mode, ff_activation)
  return Serial(encoder, Select([0], n_in=2), Mean(axis=1), Dense(n_classes), LogSoftmax(),
                name='TransformerEncoder')


def _Encoder(embedding, d_model, d_ff, n_layers, n_heads, dropout, max_len, mode, activation):
  """Ids -> (vectors, padding mask): (batch, n) -> ((batch, n, d), (batch, 1, 1, n))."""
  mode = 'eval' if mode == 'predict' else mode  # the encoder sees whole inputs
  embedder = Serial(embedding, Dropout(rate=dropout, mode=mode),
                    PositionalEncoding(max_len=max_len, mode=mode))
  blocks = [
      _EncoderBlock(d_model, d_ff, n_heads, dropout, mode, activation) for _ in range(n_layers)
  ]
  return Serial(Branch(embedder, PaddingMask()), blocks, LayerNorm(), name='Encoder')


@register
def Transformer(input_vocab_size, output_vocab_size=None, d_model=512, d_ff=2048,
                n_encoder_layers=6, n_decoder_layers=6, n_heads=8, dropout=0.1, max_len=2048,
                mode='train', ff_activation=Relu):
  """An encoder-decoder Transformer: (source, target) -> (log-probs, target).

  n_in = n_out = 2. `source` (batch, n_s) and `target` (batch, n_t) are ids
  (0 is padding in the source); the output log-probs are (batch, n_t,
  output_vocab_size), position t predicting target token t from the source and
  target tokens before t. The target passes through so that a loss layer
  `(log_probs, target, weights)` can follow on the data stack (as in Trax).
  With `output_vocab_size=None` both sides share one vocabulary and one
  embedding table.

  Predict mode: call with `(source, target_chunk)`; the encoder runs on the
  first call and is cached (`Cache`), the decoder keeps key/value caches.
  Feed the start id (0) first, then each target token.
  """
  _check_args('Transformer', mode, dropout, d_model, n_heads, input_vocab_size=input_vocab_size,
              output_vocab_size=output_vocab_size, d_ff=d_ff, n_encoder_layers=n_encoder_layers,
              n_decoder_layers=n_decoder_layers, max_len=max_len)
  in_embedding = Embedding(input_vocab_size, d_model)
  if output_vocab_size is None:
    out_embedding, output_vocab_size = in_embedding, input_vocab_size
  else:
    out_embedding = Embedding(output_vocab_size, d_model)
  encoder = _Encoder(in_embedding, d_model, d_ff, n_encoder_layers, n_heads, dropout, max_len, mode,
                     ff_activation)
  blocks = [
      _EncoderDecoderBlock(d_model, d_ff, n_heads, dropout, max_len, mode, ff_activation)
      for _ in range(n_decoder_layers)
  ]
  return Serial(
      Select([0, 1, 1]),  # tok_e tok_d tok_d
      Cache(encoder) if mode == 'predict' else encoder,  # vec_e mask tok_d tok_d
      Select([2, 1, 0]),  # tok_d mask vec_e tok_d
      ShiftRight(mode=mode),
      out_embedding,
      Dropout(rate=dropout, mode=mode),
      PositionalEncoding(max_len=max_len, mode=mode),  # vec_d mask vec_e tok_d
      blocks,  # vec_d mask vec_e tok_d
      LayerNorm(),
      Select([0], n_in=3),  # vec_d tok_d
      Dense(output_vocab_size),
      LogSoftmax(),  # log_probs tok_d
      name='Transformer')


__all__ = ['TransformerLM', 'TransformerDecoder', 'TransformerEncoder', 'Transformer']
