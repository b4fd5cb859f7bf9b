"""Trax 1.4's efficient-attention family beyond `SelfAttention` and `LSHSelfAttention`.

After Trax's `trax/layers/research/efficient_attention.py`:

* `EncDecAttention`: memory-efficient encoder-decoder attention (Trax 1.2 and
  1.4), `(x, encoding[, mask]) -> y`.
* `PureLSHSelfAttention`: LSH attention without weights, on queries/keys and
  values already split into heads: `(qk, v[, mask]) -> o` with `qk` (batch *
  n_heads, n, d_qk), `v` (batch * n_heads, n, d_v), `mask` (batch, n).
* `MixedLSHSelfAttention`: the same inputs; plain attention while the length
  is at most `std_length`, LSH attention beyond.
* `PureLSHSelfAttentionWrapper`: projections to heads, a pure LSH layer,
  heads merged, an output projection: `(batch, n, d) -> (batch, n, d)`.

LSH hashing, chunking, randomness and the predict-mode memory are those of
`minitrax.layers.lsh_attention` (see its module docstring).
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_flag, check_int, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention import DotProductCausalAttention, dot_product_attention
from minitrax.layers.base import Fn, Layer, split_rng
from minitrax.layers.combinators import Branch, Parallel, Select, Serial
from minitrax.layers.core import Dense
from minitrax.layers.efficient_base import EfficientAttention
from minitrax.layers.heads import MergeHeads, SplitIntoHeads
from minitrax.layers.lsh_attention import _LSHAttention
from minitrax.layers.research.rotary import Rotate
from minitrax.layers.research.sparsity import FactoredDense, LocallyConvDense


class EncDecAttention(EfficientAttention):
  """Encoder-decoder attention: (x, encoding[, mask]) -> (batch, n, d_model).

  n_in = 3 with `masked=True` (Trax's default; `mask` (batch, n_enc) True at
  real encoder tokens), else 2; n_out = 1. Queries come from `x` (batch, n,
  d_model), keys and values from `encoding` (batch, n_enc, d_enc). Weights
  `(w_q, w_k, w_v, w_o)`: (n_heads, d_model, d_qk), (n_heads, d_enc, d_qk),
  (n_heads, d_enc, d_v), (n_heads, d_v, d_model). The same in every mode.

  Args:
    n_heads, d_qk, d_v, attention_dropout, output_dropout: As for `SelfAttention`.
    n_parallel_heads, use_python_loop, use_reference_code: As for `SelfAttention`.
    masked: take the encoder's padding mask as a third input.
    mode: 'train', 'eval' or 'predict' (dropout only in 'train').
  """

  def __init__(self, n_heads=2, d_qk=64, d_v=64, masked=True, mode='train', attention_dropout=0.0,
               output_dropout=0.0, n_parallel_heads=None, use_python_loop=False,
               use_reference_code=False):
    check_flag('EncDecAttention', 'masked', masked)
    super().__init__('EncDecAttention', n_heads=n_heads, d_qk=d_qk, d_v=d_v, share_qk=False,
                     causal=False, masked=False, chunk_len=None, n_chunks_before=0,
                     n_chunks_after=0, bias=False, mode='eval' if mode == 'predict' else mode,
                     predict_mem_len=None, predict_drop_len=None,
                     attention_dropout=attention_dropout, output_dropout=output_dropout,
                     n_parallel_heads=n_parallel_heads, use_python_loop=use_python_loop,
                     use_reference_code=use_reference_code)
    self._mode, self._masked, self._n_in = mode, bool(masked), 3 if masked else 2

  def predict_capacity(self):
    return None

  def init_weights_and_state(self, input_signature, rng):
    x, enc = input_signature[0], input_signature[1]
    if x.ndim != 3 or enc.ndim != 3:
      raise ArgumentError(f'{self.name}: inputs must be (batch, length, d), got shapes {x.shape} '
                          f'and {enc.shape}')
    return self._weights(rng, x.shape[-1], enc.shape[-1]), ()

  def forward_with_state(self, x, weights, state, rng):
    x, enc, mask = (x[0], x[1], x[2] if self._masked else None)
    d_model, d_enc = weights[0].shape[1], weights[1].shape[1]
    if x.ndim != 3 or enc.ndim != 3 or x.shape[-1] != d_model or enc.shape[-1] != d_enc:
      raise ArgumentError(f'{self.name}: inputs must be (batch, n, {d_model}) and (batch, n_enc, '
                          f'{d_enc}), got shapes {x.shape} and {enc.shape}')
    valid = None if mask is None else self._valid(mask, enc.shape[:2])
    q, k, v, w_o = self._qkv(x, weights, kv=enc)
    attention_rng, output_rng = self._dropout_rngs(rng)
    mask4 = None if valid is None else valid[:, None, None, :]
    o = dot_product_attention(q, k, v, mask4, self._attention_dropout, attention_rng)
    return self._output(o, w_o, x.dtype, output_rng), state


class PureLSHSelfAttention(_LSHAttention):
  """LSH self-attention on heads, without weights: (qk, v[, mask]) -> o.

  n_in = 3 with `masked=True` (`mask` (batch, n) True at real tokens), else
  2; n_out = 1. `qk` (batch * n_heads, n, d_qk) and `v` (batch * n_heads, n,
  d_v), heads folded into the batch axis as `SplitIntoHeads` does; `o` has
  the shape of `v`. No weights; state as `LSHSelfAttention`'s. Signature and
  defaults of Trax 1.4.

  Args:
    n_heads: Number of heads folded into the batch axis of `qk` and `v`.
    d_qk, d_v: Checked, otherwise ignored: the widths are read from the inputs.
    share_qk, causal, masked, chunk_len, mode: As for `LSHSelfAttention14`.
    n_chunks_before, n_chunks_after, n_hashes, n_buckets: As there.
    predict_mem_len, predict_drop_len, attention_dropout: As there.
    max_length_for_buckets, n_parallel_heads: As there.
    use_python_loop, use_reference_code: As there.
    output_dropout, bias: Accepted and ignored, as in Trax (it applies no
      output dropout here, and there are no weights to bias).
  """

  def __init__(self, n_heads=2, d_qk=64, d_v=64, share_qk='unused', causal=False, masked=False,
               chunk_len=128, n_chunks_before=1, n_chunks_after=0, n_hashes=1, n_buckets=None,
               mode='train', predict_mem_len=2048, predict_drop_len=256, attention_dropout=0.0,
               output_dropout=0.0, max_length_for_buckets=None, bias=False, n_parallel_heads=1,
               use_python_loop=False, use_reference_code=False):
    super().__init__('PureLSHSelfAttention', n_heads=n_heads, d_qk=d_qk, d_v=d_v, share_qk=share_qk,
                     causal=causal, masked=masked, chunk_len=chunk_len,
                     n_chunks_before=n_chunks_before, n_chunks_after=n_chunks_after,
                     n_hashes=n_hashes, n_buckets=n_buckets, mode=mode,
                     predict_mem_len=predict_mem_len, predict_drop_len=predict_drop_len,
                     attention_dropout=attention_dropout, output_dropout=output_dropout,
                     max_length_for_buckets=max_length_for_buckets, bias=bias,
                     n_parallel_heads=n_parallel_heads, use_python_loop=use_python_loop,
                     use_reference_code=use_reference_code)
    self._n_in, self._output_dropout = 3 if masked else 2, 0.0

  def _heads(self, qk, v):
    """(batch * n_heads, n, d) -> (batch, n_heads, n, d), checking the shapes."""
    h = self._n_heads
    if qk.ndim != 3 or v.ndim != 3 or qk.shape[:2] != v.shape[:2] or qk.shape[0] % h:
      raise ArgumentError(f'{self.name}: qk and v must be (batch * n_heads, length, d) with a '
                          f'leading axis that is a multiple of n_heads={h}, got shapes '
                          f'{qk.shape} and {v.shape}')
    return tuple(
        a.reshape((a.shape[0] // h, h) + a.shape[1:]) if hasattr(a, 'reshape') else a.replace(
            shape=(a.shape[0] // h, h) + a.shape[1:]) for a in (qk, v))

  def init_weights_and_state(self, input_signature, rng):
    q, v = self._heads(*input_signature[:2])
    if self._mode == 'predict':
      shape = q.shape[:2] + (self._mem_len,)
      return (), (jnp.zeros(shape + q.shape[-1:],
                            jnp.float32), jnp.zeros(shape + v.shape[-1:],
                                                    jnp.float32), jnp.zeros((), jnp.int32))
    return (), self._train_state(rng, None)

  def forward_with_state(self, x, weights, state, rng):
    q, v = self._heads(x[0], x[1])
    valid = self._valid(x[2], q.shape[::2]) if self._masked else None
    attention_rng, _ = self._dropout_rngs(rng)
    if self._mode == 'predict':
      o, state = self._predict(q, None, v, state, attention_rng)
    else:
      o = self._attend(q, None, v, valid, rng, attention_rng, state)
    return o.reshape((-1,) + o.shape[2:]).astype(x[1].dtype), state


def _heads_mask(n_heads):
  """(batch, n) -> (batch * n_heads, 1, 1, n): one padding mask per head."""

  def f(mask):
    m = jnp.repeat(mask.astype(bool), n_heads, axis=0)
    return m.reshape((m.shape[0], 1, 1, m.shape[-1]))

  return f


class MixedLSHSelfAttention(Layer):
  """Plain attention up to `std_length`, LSH attention beyond: (qk, v[, mask]) -> o.

  Inputs and outputs as `PureLSHSelfAttention`'s. Causal: n_in = 2 and
  `masked` must be False; otherwise n_in = 3 and `masked` must be True (the
  plain branch needs the mask). A call whose length is at most `std_length`
  runs plain dot-product attention with queries = keys = `qk` (causal: a
  `DotProductCausalAttention`); a longer one (or every call when
  `std_length` is None) runs `PureLSHSelfAttention(**kwargs)`. No weights;
  state: `(lsh_state, plain_state)`.

  Args:
    n_heads, d_qk, d_v, causal, masked, mode: As for `PureLSHSelfAttention`.
    output_dropout, attention_dropout: As for `PureLSHSelfAttention`.
    std_length: the longest length given plain attention, or None.
    force_no_dropout: set both dropout rates to 0.
    **pure_lsh_implementation_kwargs: more `PureLSHSelfAttention` arguments.
  """

  def __init__(self, n_heads=1, d_qk=64, d_v=64, causal=False, masked=False, std_length=None,
               mode='train', output_dropout=0.0, attention_dropout=0.0, force_no_dropout=False,
               **pure_lsh_implementation_kwargs):
    who = 'MixedLSHSelfAttention'
    if check_flag(who, 'force_no_dropout', force_no_dropout):
      attention_dropout = output_dropout = 0.0
    check_rate(who, 'attention_dropout', attention_dropout)
    if std_length is not None:
      check_int(who, 'std_length', std_length)
    if bool(causal) == bool(masked):
      raise ArgumentError(f'{who}: causal attention takes no mask and bidirectional attention '
                          f'needs one; got causal={causal!r} and masked={masked!r}')
    self._lsh = PureLSHSelfAttention(n_heads=n_heads, d_qk=d_qk, d_v=d_v, causal=causal,
                                     masked=masked, mode=mode, output_dropout=output_dropout,
                                     attention_dropout=attention_dropout,
                                     **pure_lsh_implementation_kwargs)
    super().__init__(n_in=self._lsh.n_in, n_out=1, name=who)
    self._n_heads, self._causal, self._std_length = n_heads, bool(causal), std_length
    self._dropout = float(attention_dropout) if mode == 'train' else 0.0
    self._plain = DotProductCausalAttention(dropout=attention_dropout,
                                            mode=mode) if causal else None

  def init_weights_and_state(self, input_signature, rng):
    r_lsh, r_plain = jax.random.split(rng)
    _, lsh_state = self._lsh.make_weights_and_state(input_signature, r_lsh)
    plain_state = ()
    if self._causal:
      qk, v = input_signature
      _, plain_state = self._plain.make_weights_and_state((qk, qk, v), r_plain)
    return (), (lsh_state, plain_state)

  def forward_with_state(self, x, weights, state, rng):
    rng_lsh, rng_plain = split_rng(rng, 2)
    lsh_state, plain_state = state
    if self._std_length is None or x[0].shape[1] > self._std_length:
      y, lsh_state = self._lsh.pure_fn(x, (), lsh_state, rng_lsh)
    elif self._causal:
      y, plain_state = self._plain.pure_fn((x[0], x[0], x[1]), (), plain_state, rng_plain)
    else:
      if self._dropout > 0.0 and rng_plain is None:
        raise ArgumentError(f"{self.name}: mode='train' with dropout needs an rng, got rng=None")
      y = dot_product_attention(x[0], x[0], x[1],
                                _heads_mask(self._n_heads)(x[2])[:, 0], self._dropout, rng_plain)
    return y, (lsh_state, plain_state)


def _qk_average():
  return Fn('QKAvg', lambda q, k: (q + k) / 2.0)


def _project_and_split_heads(d_model, n_heads, use_bias, num_weights, sparsity, weights_format,
                             rotary_position_emb, mode, length_kernel_size=3):
  """Trax's `_ProjectAndSplitHeads`: x -> (qk, v) split into heads."""
  split = lambda: SplitIntoHeads(n_heads)  # noqa: E731
  dense = lambda: Dense(d_model, use_bias=use_bias)  # noqa: E731
  if weights_format == 'model' and num_weights == 3:
    rotate = [Parallel(Rotate(), Rotate(), None)] if rotary_position_emb else []
    return Serial(Branch(dense(), dense(), dense()), rotate, _qk_average(),
                  Parallel(split(), split()))
  if weights_format == 'model' and num_weights == 2:
    return Branch([dense(), Rotate() if rotary_position_emb else [], split()], [dense(), split()])
  d_module = d_model // sparsity

  def conv(kernel_size):
    return LocallyConvDense(sparsity, d_module, mode=mode, kernel_size=kernel_size,
                            length_kernel_size=length_kernel_size)

  if num_weights == 3:
    return Serial(
        Select([0, 0]), FactoredDense(sparsity, d_model, d_model), Select([0, 0, 0]),
        Parallel([conv(3), split()], [conv(3), split()],
                 [Select([0], n_in=2), conv(1), split()]), _qk_average())
  return Serial(Select([0, 0]), FactoredDense(sparsity, d_model, d_model), Select([0, 0]), conv(3),
                split(),
                Parallel([], [Select([0], n_in=2), conv(1), split()]))


class PureLSHSelfAttentionWrapper(Serial):
  """Projections, a pure LSH layer, heads merged, output projection: (batch, n, d) -> same.

  n_in = 1 (2 with `masked=True`: `(x, mask)`), n_out = 1; `d = d_qk *
  n_heads`. A `Serial` of: the projections to per-head `(qk, v)`
  (`weights_format='model'`: `Dense(d)` layers, with `num_weights=3` separate
  q and k averaged into qk, optionally rotated with `Rotate`;
  `weights_format='sparse'`: `FactoredDense` and `LocallyConvDense` with
  `sparsity` modules), `pure_lsh_implementation(...)`, `MergeHeads`, and
  (unless sparse) `Dense(d, use_bias=bias)`.

  Args:
    n_heads, d_qk, d_v, causal, masked: Passed to `pure_lsh_implementation`.
    output_dropout, attention_dropout, mode: Passed to it too.
    pure_lsh_implementation: a layer class taking those arguments, e.g.
      `PureLSHSelfAttention` (the default here; Trax has none).
    bias: biases in the dense projections.
    num_weights: 2 (one qk projection) or 3 (q and k averaged).
    sparsity: modules of the sparse projections.
    weights_format: 'model' or 'sparse'.
    rotary_position_emb: rotary embeddings of q and k ('model' format).
    **pure_lsh_implementation_kwargs: more arguments of the pure layer.
  """

  def __init__(self, n_heads=1, d_qk=64, d_v=64, causal=False, masked=False, output_dropout=0.0,
               attention_dropout=0.0, pure_lsh_implementation=None, bias=True, mode='train',
               num_weights=3, sparsity=16, weights_format='model', rotary_position_emb=False,
               **pure_lsh_implementation_kwargs):
    who = 'PureLSHSelfAttentionWrapper'
    if weights_format not in ('model', 'sparse'):
      raise ArgumentError(f"{who}: weights_format must be 'model' or 'sparse', got "
                          f"{weights_format!r} (Trax has no 'heads' implementation either)")
    if num_weights not in (2, 3):
      raise ArgumentError(f'{who}: num_weights must be 2 or 3, got {num_weights!r}')
    if weights_format == 'sparse' and rotary_position_emb:
      raise ArgumentError(f"{who}: rotary_position_emb needs weights_format='model'")
    d_model = check_int(who, 'd_qk', d_qk) * check_int(who, 'n_heads', n_heads)
    if weights_format == 'sparse' and d_model % check_int(who, 'sparsity', sparsity):
      raise ArgumentError(f'{who}: d_qk * n_heads = {d_model} must be a multiple of sparsity='
                          f'{sparsity}')
    pure = pure_lsh_implementation or PureLSHSelfAttention
    qkv = _project_and_split_heads(d_model, n_heads, check_flag(who, 'bias', bias), num_weights,
                                   sparsity, weights_format, rotary_position_emb, mode)
    attention = pure(n_heads=n_heads, d_qk=d_qk, d_v=d_v, causal=causal, masked=masked, mode=mode,
                     output_dropout=output_dropout, attention_dropout=attention_dropout,
                     **pure_lsh_implementation_kwargs)
    layers = [qkv, attention, MergeHeads(n_heads)]
    if weights_format != 'sparse':
      layers.append(Dense(d_model, use_bias=bias))
    super().__init__(*layers, name=who)


__all__ = [
    'EncDecAttention', 'PureLSHSelfAttention', 'MixedLSHSelfAttention',
    'PureLSHSelfAttentionWrapper'
]
