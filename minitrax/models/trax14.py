"""Trax 1.4's models: its signatures, defaults and weights (logits out, biases in attention).

Trax 1.4 changed its models in ways that change their weights, so a Trax 1.4
checkpoint (`model.pkl.gz` + `model.weights.npy.gz`) fits these models and not
the Trax 1.2 ones of `transformer.py`, `rnn.py` and `mlp.py`:

* the causal attention's four projections have biases (`CausalAttention14`);
* the position table is (max_len, d) (`PositionalEncoding14`), not
  (1, max_len, d);
* `TransformerLM`, `TransformerEncoder`, `Transformer`, `RNNLM` and `GRULM`
  end in logits (no `LogSoftmax`; Trax 1.4's losses take logits);
* `max_len` comes before `dropout`, and `dropout_shared_axes` is new;
* `MLP` is a building block: `MLP(layer_widths=(128, 64))`, no `LogSoftmax`.

The blocks are those of the Trax 1.2 models; only the parts above differ.
These functions are not registered under the Trax 1.2 names (`get_model`
keeps Trax 1.2's meaning); `minitrax.trax14` exposes them under Trax's names.

>>> model = TransformerLM(vocab_size=16, d_model=8, d_ff=16, n_layers=1, n_heads=2)
"""

# Models are CamelCase functions returning layers, as in Trax.
# pylint: disable=invalid-name

from minitrax.layers.activation_fns import Relu
from minitrax.layers.attention import (Attention, AttentionQKV, CausalAttention14, PaddingMask,
                                       ShiftRight)
from minitrax.layers.combinators import Branch, Select, Serial
from minitrax.layers.core import Dense, Dropout, Embedding, Mean
from minitrax.layers.normalization import LayerNorm
from minitrax.layers.positions import PositionalEncoding14
from minitrax.layers.rnn import LSTMCell
from minitrax.models import mlp, rnn
from minitrax.models.transformer import (DecoderBlock, Encoder, EncoderBlock, EncoderDecoder,
                                         EncoderDecoderBlock, check_args)

MODE = 'train'
D_MODEL = 512
D_FF = 2048
N_LAYERS = 6
N_HEADS = 8
MAX_SEQUENCE_LENGTH = 2048
DROPOUT_RATE = 0.1
DROPOUT_SHARED_AXES = None
FF_ACTIVATION_TYPE = Relu


def _decoder_blocks(n_layers, d_model, d_ff, n_heads, dropout, dropout_shared_axes, mode,
                    ff_activation):
  return [
      DecoderBlock(CausalAttention14(d_model, n_heads=n_heads, dropout=dropout, mode=mode), d_model,
                   d_ff, dropout, mode, ff_activation, dropout_shared_axes) for _ in range(n_layers)
  ]


def TransformerLM(vocab_size, d_model=D_MODEL, d_ff=D_FF, n_layers=N_LAYERS, n_heads=N_HEADS,
                  max_len=MAX_SEQUENCE_LENGTH, dropout=DROPOUT_RATE,
                  dropout_shared_axes=DROPOUT_SHARED_AXES, mode=MODE,
                  ff_activation=FF_ACTIVATION_TYPE):
  """Trax 1.4's Transformer language model: (batch, n) int -> (batch, n, vocab_size) logits.

  ShiftRight, Embedding, Dropout, PositionalEncoding (max_len, d_model),
  `n_layers` decoder blocks (causal attention with biases, feed-forward),
  LayerNorm, Dense(vocab_size). Predict mode as in the Trax 1.2 form
  (`minitrax.models.transformer.TransformerLM`).

  Args:
    vocab_size: number of token ids.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layer.
    n_layers: number of decoder blocks.
    n_heads: attention heads; must divide d_model.
    max_len: longest sequence; the predict-mode cache length.
    dropout: dropout rate (training only).
    dropout_shared_axes: axes along which one dropout mask entry is shared
      (None: an independent mask entry per element).
    mode: 'train', 'eval' or 'predict'.
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('TransformerLM', mode, dropout, d_model, n_heads, vocab_size=vocab_size, d_ff=d_ff,
             n_layers=n_layers, max_len=max_len)
  return Serial(
      ShiftRight(mode=mode), Embedding(vocab_size, d_model),
      Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=mode),
      PositionalEncoding14(max_len=max_len, mode=mode),
      _decoder_blocks(n_layers, d_model, d_ff, n_heads, dropout, dropout_shared_axes, mode,
                      ff_activation), LayerNorm(), Dense(vocab_size), name='TransformerLM')


def TransformerDecoder(vocab_size=None, d_model=D_MODEL, d_ff=D_FF, n_layers=N_LAYERS,
                       n_heads=N_HEADS, max_len=MAX_SEQUENCE_LENGTH, dropout=DROPOUT_RATE,
                       dropout_shared_axes=DROPOUT_SHARED_AXES, mode=MODE,
                       ff_activation=FF_ACTIVATION_TYPE):
  """Trax 1.4's decoder stack: (batch, n) int or (batch, n, d) -> (batch, n, d_model).

  Embedding (or Dense(d_model) when `vocab_size` is None), Dropout,
  PositionalEncoding (max_len, d_model), `n_layers` decoder blocks, LayerNorm.
  No shift: output t sees inputs 0..t.

  Args:
    vocab_size: number of token ids; None takes float vectors (batch, n, d) through Dense(d_model).
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layer.
    n_layers: number of decoder blocks.
    n_heads: attention heads; must divide d_model.
    max_len: longest sequence; the predict-mode cache length.
    dropout: dropout rate (training only).
    dropout_shared_axes: axes along which one dropout mask entry is shared
      (None: an independent mask entry per element).
    mode: 'train', 'eval' or 'predict'.
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('TransformerDecoder', mode, dropout, d_model, n_heads, vocab_size=vocab_size,
             d_ff=d_ff, n_layers=n_layers, max_len=max_len)
  embed = Embedding(vocab_size, d_model) if vocab_size is not None else Dense(d_model)
  return Serial(
      embed, Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=mode),
      PositionalEncoding14(max_len=max_len, mode=mode),
      _decoder_blocks(n_layers, d_model, d_ff, n_heads, dropout, dropout_shared_axes, mode,
                      ff_activation), LayerNorm(), name='TransformerDecoder')


def TransformerEncoder(vocab_size, n_classes=10, d_model=D_MODEL, d_ff=D_FF, n_layers=N_LAYERS,
                       n_heads=N_HEADS, max_len=MAX_SEQUENCE_LENGTH, dropout=DROPOUT_RATE,
                       dropout_shared_axes=DROPOUT_SHARED_AXES, mode=MODE,
                       ff_activation=FF_ACTIVATION_TYPE):
  """Trax 1.4's Transformer classifier: (batch, n) int -> (batch, n_classes) logits.

  Padding mask from the ids, Embedding, Dropout, PositionalEncoding,
  `n_layers` encoder blocks, LayerNorm, mean over positions, Dense(n_classes).
  Predict mode is eval mode.

  Args:
    n_classes: number of output classes.
    vocab_size: number of token ids; 0 is padding.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layer.
    n_layers: number of encoder blocks.
    n_heads: attention heads; must divide d_model.
    max_len: longest sequence.
    dropout: dropout rate (training only).
    dropout_shared_axes: axes along which one dropout mask entry is shared
      (None: an independent mask entry per element).
    mode: 'train', 'eval' or 'predict' ('predict' runs as 'eval').
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('TransformerEncoder', mode, dropout, d_model, n_heads, vocab_size=vocab_size,
             n_classes=n_classes, d_ff=d_ff, n_layers=n_layers, max_len=max_len)
  mode = 'eval' if mode == 'predict' else mode
  blocks = [
      EncoderBlock(Attention(d_model, n_heads=n_heads, dropout=dropout, mode=mode), d_model, d_ff,
                   dropout, mode, ff_activation, dropout_shared_axes) for _ in range(n_layers)
  ]
  return Serial(Branch([], PaddingMask()), Embedding(vocab_size, d_model),
                Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=mode),
                PositionalEncoding14(max_len=max_len, mode=mode), blocks, Select([0], n_in=2),
                LayerNorm(), Mean(axis=1), Dense(n_classes), name='TransformerEncoder')


def Transformer(input_vocab_size, output_vocab_size=None, d_model=D_MODEL, d_ff=D_FF,
                n_encoder_layers=N_LAYERS, n_decoder_layers=N_LAYERS, n_heads=N_HEADS,
                max_len=MAX_SEQUENCE_LENGTH, dropout=DROPOUT_RATE,
                dropout_shared_axes=DROPOUT_SHARED_AXES, mode=MODE,
                ff_activation=FF_ACTIVATION_TYPE):
  """Trax 1.4's encoder-decoder: (source, target) -> (logits, target).

  As the Trax 1.2 form (`minitrax.models.transformer.Transformer`) with Trax
  1.4's weights: one embedding shared when `output_vocab_size` is None, but a
  position table per side; biases in the decoder's causal attention; logits.

  Args:
    input_vocab_size: number of source token ids; 0 is padding.
    output_vocab_size: number of target token ids; None shares the source's
      vocabulary and embedding.
    d_model: width of embeddings and residual stream.
    d_ff: width of the feed-forward hidden layers.
    n_encoder_layers, n_decoder_layers: number of encoder and decoder blocks.
    n_heads: attention heads; must divide d_model.
    max_len: longest sequence on either side; the predict-mode cache length.
    dropout: dropout rate (training only).
    dropout_shared_axes: axes along which one dropout mask entry is shared
      (None: an independent mask entry per element).
    mode: 'train', 'eval' or 'predict'.
    ff_activation: function returning the feed-forward activation layer.
  """
  check_args('Transformer', mode, dropout, d_model, n_heads, input_vocab_size=input_vocab_size,
             output_vocab_size=output_vocab_size, d_ff=d_ff, n_encoder_layers=n_encoder_layers,
             n_decoder_layers=n_decoder_layers, max_len=max_len)
  encoder_mode = 'eval' if mode == 'predict' else mode
  drop = lambda m: Dropout(rate=dropout, shared_axes=dropout_shared_axes, mode=m)
  in_embedding = Embedding(input_vocab_size, d_model)
  if output_vocab_size is None:
    out_embedding, output_vocab_size = in_embedding, input_vocab_size
  else:
    out_embedding = Embedding(output_vocab_size, d_model)
  embedder = Serial(in_embedding, drop(encoder_mode),
                    PositionalEncoding14(max_len=max_len, mode=encoder_mode))
  encoder = Encoder(embedder, d_model, d_ff, n_encoder_layers, n_heads, dropout, encoder_mode,
                    ff_activation, dropout_shared_axes)
  blocks = [
      EncoderDecoderBlock(CausalAttention14(d_model, n_heads=n_heads, mode=mode),
                          AttentionQKV(d_model, n_heads=n_heads, dropout=dropout, mode=mode),
                          d_model, d_ff, dropout, mode, ff_activation, dropout_shared_axes)
      for _ in range(n_decoder_layers)
  ]
  out_embedder = [out_embedding, drop(mode), PositionalEncoding14(max_len=max_len, mode=mode)]
  return EncoderDecoder(encoder, out_embedder, blocks, Dense(output_vocab_size), mode)


def RNNLM(vocab_size, d_model=512, n_layers=2, rnn_cell=LSTMCell, rnn_cell_d_state_multiplier=2,
          dropout=0.1, mode='train'):
  """Trax 1.4's recurrent language model: (batch, time) int -> (batch, time, vocab_size) logits.

  As `minitrax.models.rnn.RNNLM` (same weights), without the final LogSoftmax.

  Args:
    vocab_size: number of token ids.
    d_model: width of the embedding and of each cell's output.
    n_layers: number of recurrent layers.
    rnn_cell: the cell class, built as `rnn_cell(n_units=d_model)`.
    rnn_cell_d_state_multiplier: the cell's state width over d_model (2 for
      `LSTMCell`, whose state holds c and h).
    dropout: dropout rate after the embedding and each layer (training only).
    mode: 'train', 'eval' or 'predict'.
  """
  return rnn.StackedRNNLM('RNNLM', vocab_size, d_model, n_layers, rnn_cell,
                          rnn_cell_d_state_multiplier, dropout, mode, [])


def GRULM(vocab_size=256, d_model=512, n_layers=1, mode='train'):
  """Trax 1.4's GRU language model: as `minitrax.models.rnn.GRULM`, ending in logits.

  Args:
    vocab_size: number of token ids.
    d_model: width of the embedding and of each GRU layer.
    n_layers: number of GRU layers.
    mode: 'train', 'eval' or 'predict'.
  """
  return rnn.StackedGRULM('GRULM', vocab_size, d_model, n_layers, mode, [])


def MLP(
    layer_widths=(128, 64), activation_fn=Relu, out_activation=False, flatten=True, mode='train'):
  """Trax 1.4's multilayer perceptron: one Dense per width, the activation between them.

  n_in = n_out = 1; `(batch, ...) -> (batch, layer_widths[-1])` (with
  `flatten`), no LogSoftmax; `out_activation` also applies the activation
  after the last Dense. See `minitrax.models.mlp.MLP`.

  Args:
    layer_widths: output width of each Dense layer, in order.
    activation_fn: function returning the activation layer between Denses.
    out_activation: also apply the activation after the last Dense.
    flatten: flatten each example to a vector first.
    mode: 'train', 'eval' or 'predict' (no layer depends on it).
  """
  return mlp.MLP(activation_fn=activation_fn, mode=mode, layer_widths=layer_widths,
                 out_activation=out_activation, flatten=flatten)


__all__ = [
    'TransformerLM', 'TransformerDecoder', 'TransformerEncoder', 'Transformer', 'RNNLM', 'GRULM',
    'MLP'
]
