"""Transformer models (Vaswani et al., 2017): LM, encoder, decoder, encoder-decoder.

Signatures, structure and weights follow Trax 1.2 (`trax/models/transformer.py`):
pre-norm residual blocks (`x + f(LayerNorm(x))`), a trained position table
initialised to sinusoids, a final LayerNorm, and log-probabilities out
(`LogSoftmax`; `CrossEntropyLoss` takes them). Each model's weights are Trax
1.2's, array for array in Trax's order, so a Trax 1.2 `model.pkl` loads into
it (`init_from_file`). Trax 1.4's forms (biases in the causal attention,
logits out, a (max_len, d) table) are in `minitrax.models.trax14`, built from
the blocks here.

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
from minitrax.layers.attention import (Attention, AttentionQKV, CausalAttention,
                                       DotProductCausalAttention, PaddingMask, ShiftRight)
from minitrax.layers.combinators import (Branch, Concatenate, Residual, Select, Serial, Split)
from minitrax.layers.control import Cache
from minitrax.layers.core import Dense, Dropout, Embedding, LogSoftmax, Mean
from minitrax.layers.normalization import LayerNorm
from minitrax.layers.positions import PositionalEncoding, PositionalEncodingView
from minitrax.models.registry import register

# Models are CamelCase functions returning layers, as in Trax.
# pylint: disable=invalid-name


def check_args(who, mode, dropout, d_model, n_heads, **sizes):
  """Checks `mode`, the dropout rate and the sizes (ints >= 1; None: not given)."""
  check_mode(who, 'mode', mode)
  check_rate(who, 'dropout', dropout)
  for name, value in dict(sizes, d_model=d_model, n_heads=n_heads).items():
    if value is not None:
      check_int(who, name, value, 1)
  if d_model % n_heads:
    raise ArgumentError(f'{who}: d_model={d_model} is not a multiple of n_heads={n_heads}')


# ------------------------------------------------------------------ blocks (both generations)


def FeedForwardBlock(d_model, d_ff, dropout, mode, activation, dropout_shared_axes=None):
  """Residual(LayerNorm, Dense(d_ff), activation, Dropout, Dense(d_model), Dropout): 1 -> 1.

  Trax 1.2 and 1.4 nest these layers differently; their weights (LayerNorm's
  `(scale, bias)`, then two Dense `(w, b)`) come in the same order.
  """
  drop = lambda: Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=mode)
  return Residual(LayerNorm(), Dense(d_ff), activation(), drop(), Dense(d_model), drop())


def EncoderBlock(attention, d_model, d_ff, dropout, mode, activation, dropout_shared_axes=None):
  """Self-attention with a padding mask, then feed-forward: (x, mask) -> (x, mask).

  `attention` is an `Attention` layer (`(x, mask) -> (y, mask)`).
  """
  return [
      Residual(LayerNorm(), attention,
               Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=mode)),
      FeedForwardBlock(d_model, d_ff, dropout, mode, activation, dropout_shared_axes),
  ]


def DecoderBlock(attention, d_model, d_ff, dropout, mode, activation, dropout_shared_axes=None):
  """Causal self-attention (the layer `attention`), then feed-forward: x -> x."""
  return [
      Residual(LayerNorm(), attention,
               Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=mode)),
      FeedForwardBlock(d_model, d_ff, dropout, mode, activation, dropout_shared_axes),
  ]


def EncoderDecoderBlock(causal_attention, attention_qkv, d_model, d_ff, dropout, mode, activation,
                        dropout_shared_axes=None):
  """Causal self-attention, attention to the encoder, feed-forward.

  (x_dec, mask, x_enc) -> (x_dec, mask, x_enc); `attention_qkv` is an
  `AttentionQKV` layer.
  """
  drop = lambda: Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=mode)
  return [
      Residual(LayerNorm(), causal_attention, drop()),
      Residual(
          LayerNorm(),
          Select([0, 2, 2, 1, 2]),  # x_dec x_enc x_enc mask x_enc
          attention_qkv,
          drop()),  # y mask x_enc
      FeedForwardBlock(d_model, d_ff, dropout, mode, activation, dropout_shared_axes),
  ]


def _causal_12(d_model, n_heads, d_attention_key, d_attention_value, attention_type, share_qk,
               max_len, mode):
  """Trax 1.2's decoder attention: no biases, no attention dropout."""
  return CausalAttention(d_model, n_heads=n_heads, d_attention_key=d_attention_key,
                         d_attention_value=d_attention_value, attention_type=attention_type,
                         share_qk=share_qk, mode=mode, max_len=max_len)


def _check_chunks(who, n_chunks):
  check_int(who, 'n_chunks', n_chunks, 0)
  if n_chunks == 0:
    return [], []
  return Concatenate(n_items=n_chunks), Split(n_items=n_chunks, axis=-2)


# ------------------------------------------------------------------ models


@register
def TransformerLM(vocab_size, d_model=512, d_ff=2048, n_layers=6, n_heads=8, d_attention_key=None,
                  d_attention_value=None, attention_type=DotProductCausalAttention, dropout=0.1,
                  share_qk=False, max_len=2048, n_chunks=0, mode='train', ff_activation=Relu):
  """A Transformer language model: (batch, n) int -> (batch, n, vocab_size) log-probs.

  ShiftRight, Embedding, Dropout, PositionalEncoding, `n_layers` decoder
  blocks (causal attention and feed-forward, pre-norm residual), LayerNorm,
  Dense(vocab_size), LogSoftmax: Trax 1.2's model, weight for weight (the
  causal attention without biases, the position table (1, max_len, d_model)).
  Output position t predicts input token t from tokens before t. In 'predict'
  mode ShiftRight is the identity: feed the start id (0) first, then each
  token; output i predicts the token after the i-th fed one. (Trax 1.4's form:
  `minitrax.models.trax14.TransformerLM`.)

  Args:
    vocab_size: number of token ids.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layer.
    n_layers: number of decoder blocks.
    n_heads: attention heads (must divide d_model unless both head sizes given).
    d_attention_key: features per head of queries and keys (d_model // n_heads).
    d_attention_value: features per head of values (d_model // n_heads).
    attention_type: the causal attention core, `attention_type(mode=mode)`.
    dropout: dropout rate (training only).
    share_qk: queries are the keys (one projection fewer).
    max_len: longest sequence; the predict-mode cache length.
    n_chunks: if > 0, the input is a tuple of `n_chunks` pieces along the
      length, concatenated, and the output is split the same way.
    mode: 'train', 'eval' or 'predict'.
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('TransformerLM', mode, dropout, d_model, n_heads if d_attention_key is None else 1,
             vocab_size=vocab_size, d_ff=d_ff, n_layers=n_layers, max_len=max_len)
  concatenate, split = _check_chunks('TransformerLM', n_chunks)
  blocks = [
      DecoderBlock(
          _causal_12(d_model, n_heads, d_attention_key, d_attention_value, attention_type, share_qk,
                     max_len, mode), d_model, d_ff, dropout, mode, ff_activation)
      for _ in range(n_layers)
  ]
  return Serial(concatenate, ShiftRight(mode=mode), Embedding(vocab_size, d_model),
                Dropout(rate=dropout, mode=mode), PositionalEncoding(max_len=max_len, mode=mode),
                blocks, LayerNorm(), Dense(vocab_size), LogSoftmax(), split, name='TransformerLM')


@register
def TransformerDecoder(vocab_size=None, d_model=512, d_ff=2048, n_layers=6, n_heads=8,
                       d_attention_key=None, d_attention_value=None,
                       attention_type=DotProductCausalAttention, dropout=0.1, share_qk=False,
                       max_len=2048, mode='train', ff_activation=Relu):
  """A stack of causal decoder blocks: (batch, n) int or (batch, n, d) -> (batch, n, d_model).

  Embedding (ids, when `vocab_size` is given) or Dense(d_model) (vectors,
  when it is None), Dropout, PositionalEncoding, `n_layers` decoder blocks,
  LayerNorm (Trax 1.2's weights). Does not shift its input: output t sees
  inputs 0..t. Supports predict mode like `TransformerLM`.

  Args:
    vocab_size: number of token ids; None takes float vectors (batch, n, d)
      through Dense(d_model) instead of an Embedding.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layer.
    n_layers: number of decoder blocks.
    n_heads: attention heads (must divide d_model unless both head sizes given).
    d_attention_key, d_attention_value: features per head of queries/keys and
      of values (None: d_model // n_heads).
    attention_type: the causal attention core, `attention_type(mode=mode)`.
    dropout: dropout rate (training only).
    share_qk: queries are the keys (one projection fewer).
    max_len: longest sequence; the predict-mode cache length.
    mode: 'train', 'eval' or 'predict'.
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('TransformerDecoder', mode, dropout, d_model,
             n_heads if d_attention_key is None else 1, vocab_size=vocab_size, d_ff=d_ff,
             n_layers=n_layers, max_len=max_len)
  embed = Embedding(vocab_size, d_model) if vocab_size is not None else Dense(d_model)
  blocks = [
      DecoderBlock(
          _causal_12(d_model, n_heads, d_attention_key, d_attention_value, attention_type, share_qk,
                     max_len, mode), d_model, d_ff, dropout, mode, ff_activation)
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
  LogSoftmax: Trax 1.2's weights in Trax's order. Predict mode is eval mode
  (no cache needed).

  Args:
    vocab_size: number of token ids.
    n_classes: number of output classes.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layer.
    n_layers: number of encoder blocks.
    n_heads: attention heads; must divide d_model.
    dropout: dropout rate (training only).
    max_len: longest input sequence.
    mode: 'train', 'eval' or 'predict' (run as 'eval').
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('TransformerEncoder', mode, dropout, d_model, n_heads, vocab_size=vocab_size,
             n_classes=n_classes, d_ff=d_ff, n_layers=n_layers, max_len=max_len)
  mode = 'eval' if mode == 'predict' else mode
  embedder = Serial(Embedding(vocab_size, d_model), Dropout(rate=dropout, mode=mode),
                    PositionalEncoding(max_len=max_len, mode=mode))
  blocks = [
      EncoderBlock(Attention(d_model, n_heads=n_heads, dropout=dropout, mode=mode), d_model, d_ff,
                   dropout, mode, ff_activation) for _ in range(n_layers)
  ]
  return Serial(Branch(embedder, PaddingMask()), blocks, Select([0], n_in=2), LayerNorm(),
                Mean(axis=1), Dense(n_classes), LogSoftmax(), name='TransformerEncoder')


def Encoder(embedder, d_model, d_ff, n_layers, n_heads, dropout, mode, activation,
            dropout_shared_axes=None):
  """Ids -> (vectors, padding mask): (batch, n) -> ((batch, n, d), (batch, 1, 1, n)).

  `embedder` maps ids to vectors (embedding, dropout, positions). Blocks use
  `Attention` (with biases, as in both Trax generations).
  """
  blocks = [
      EncoderBlock(Attention(d_model, n_heads=n_heads, dropout=dropout, mode=mode), d_model, d_ff,
                   dropout, mode, activation, dropout_shared_axes) for _ in range(n_layers)
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
  With `output_vocab_size=None` both sides share one embedding and one
  position table, as in Trax 1.2 (the decoder reads the encoder's table,
  `PositionalEncodingView`); the decoder's causal attention has no biases.

  Predict mode: call with `(source, target_chunk)`; the encoder runs on the
  first call and is cached (`Cache`), the decoder keeps key/value caches.
  Feed the start id (0) first, then each target token.

  Args:
    input_vocab_size: number of source token ids.
    output_vocab_size: number of target token ids; None shares the source's
      vocabulary, embedding and position table.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layers.
    n_encoder_layers, n_decoder_layers: number of encoder and decoder blocks.
    n_heads: attention heads; must divide d_model.
    dropout: dropout rate (training only).
    max_len: longest sequence on either side; the predict-mode cache length.
    mode: 'train', 'eval' or 'predict'.
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('Transformer', mode, dropout, d_model, n_heads, input_vocab_size=input_vocab_size,
             output_vocab_size=output_vocab_size, d_ff=d_ff, n_encoder_layers=n_encoder_layers,
             n_decoder_layers=n_decoder_layers, max_len=max_len)
  encoder_mode = 'eval' if mode == 'predict' else mode  # the encoder sees whole inputs
  in_embedding = Embedding(input_vocab_size, d_model)
  in_positions = PositionalEncoding(max_len=max_len, mode=encoder_mode)
  if output_vocab_size is None:
    output_vocab_size = input_vocab_size
    out_embedder = [
        in_embedding,
        Dropout(rate=dropout, mode=mode),
        PositionalEncodingView(in_positions, mode=mode)
    ]
  else:
    out_embedder = [
        Embedding(output_vocab_size, d_model),
        Dropout(rate=dropout, mode=mode),
        PositionalEncoding(max_len=max_len, mode=mode)
    ]
  embedder = Serial(in_embedding, Dropout(rate=dropout, mode=encoder_mode), in_positions)
  encoder = Encoder(embedder, d_model, d_ff, n_encoder_layers, n_heads, dropout, encoder_mode,
                    ff_activation)
  blocks = [
      EncoderDecoderBlock(CausalAttention(d_model, n_heads=n_heads, mode=mode, max_len=max_len),
                          AttentionQKV(d_model, n_heads=n_heads, dropout=dropout, mode=mode),
                          d_model, d_ff, dropout, mode, ff_activation)
      for _ in range(n_decoder_layers)
  ]
  return EncoderDecoder(encoder, out_embedder, blocks,
                        [Dense(output_vocab_size), LogSoftmax()], mode)


def EncoderDecoder(encoder, out_embedder, blocks, head, mode):
  """The encoder-decoder wiring around its parts: (source, target) -> (head output, target)."""
  return Serial(
      Select([0, 1, 1]),  # tok_e tok_d tok_d
      Cache(encoder) if mode == 'predict' else encoder,  # vec_e mask tok_d tok_d
      Select([2, 1, 0]),  # tok_d mask vec_e tok_d
      ShiftRight(mode=mode),
      out_embedder,  # vec_d mask vec_e tok_d
      blocks,  # vec_d mask vec_e tok_d
      LayerNorm(),
      Select([0], n_in=3),  # vec_d tok_d
      head,  # out tok_d
      name='Transformer')


__all__ = [
    'TransformerLM', 'TransformerDecoder', 'TransformerEncoder', 'Transformer', 'FeedForwardBlock',
    'check_args', 'EncoderBlock', 'DecoderBlock', 'EncoderDecoderBlock', 'Encoder', 'EncoderDecoder'
]
