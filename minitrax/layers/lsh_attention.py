"""Memory-efficient self-attention for long sequences: chunked exact attention and LSH attention.

Names, arguments and defaults follow Trax's `trax/layers/research/
efficient_attention.py` (Kitaev, Kaiser and Levskaya, 2020, "Reformer: The
Efficient Transformer"). Both layers map `(batch, n, d_model) -> (batch, n,
d_model)` (with `masked=True`: `(x, mask) -> y`, `mask` True at real tokens,
shape (batch, n) or (batch, 1, 1, n)). Per head, queries, keys and values are
`x @ w_q`, `x @ w_k`, `x @ w_v`; heads are projected back with `w_o` and
summed. Weights hold one slice per head: `w_q` (n_heads, d_model, d_qk),
`w_v` (n_heads, d_model, d_v), `w_o` (n_heads, d_v, d_model). The
computations on arrays (hashing, bucketed, chunked and cached attention) are
in `minitrax.layers.attention_kernels`.

Shared query/key (always in LSH attention, optional in `SelfAttention`): the
keys are the queries normalised to unit RMS, so a query would score highest
against itself; a token therefore does not attend to itself (1e5 is
subtracted from that score) unless nothing else is visible to it (1e9 is
subtracted from the scores of hidden keys, as in Trax).

`SelfAttention` is exact: with `chunk_len` the queries are processed
`chunk_len` at a time (a rematerialised loop), so the score matrix in memory
is (chunk_len, n) per head, never (n, n).

`LSHSelfAttention` hashes the shared query/keys with random rotations
(angular LSH: the bucket of v is the argmax of `[vR, -vR]`) into `n_buckets`
buckets, `n_hashes` times. For each round, positions are sorted by (bucket,
position) and cut into chunks of `chunk_len`; each chunk attends to itself
and to `n_chunks_before` previous chunks (wrapping around). The rounds are
combined weighted by the softmax of their log-sum-exp scores.

Randomness. The rotations depend only on the key the layer is called with: in
every mode the hash key comes from the `rng` given to `pure_fn` (the Trainer
gives one per step; `layer(x)` gives the layer's init key). When `rng` is
None, a fixed key is used, made from an int32 seed drawn at `init` and kept
in the layer's state (train/eval mode). Same key, same hashes; the
reversible backward pass passes the forward's key, so it re-hashes
identically. The rotations of all heads are one draw, so they do not depend
on `n_parallel_heads`; attention-dropout masks are drawn per (example,
head) inside the batched computation and, with JAX's 'rbg' keys (the
default of `Layer.init`), do depend on it.

Predict mode (causal only) keeps the keys and values of up to
`predict_mem_len` positions in its state, with a position counter, and
computes *exact* attention over the cache (the limit of LSH attention when all
keys share one chunk). So predict mode equals eval mode whenever eval's LSH
chunks cover the whole sequence (`chunk_len >= n`); with shorter chunks eval
mode attends to fewer keys and the two differ. Going past `predict_mem_len`
is an error (see `minitrax.layers.attention`), never a silent roll-over.
"""

import math

import jax
import jax.numpy as jnp

from minitrax.checks import check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention import check_positions
from minitrax.layers.attention_kernels import (auto_n_buckets, bucketed_attention, cached_attention,
                                               check_buckets, chunked_attention,
                                               hash_with_rotations, length_normalized,
                                               random_rotations, total_buckets)
from minitrax.layers.base import Layer
from minitrax.layers.core import poison
from minitrax.layers.masks import keep_mask

# ------------------------------------------------------------------ layers


class _EfficientAttention(Layer):
  """Weights, projections, output dropout and the predict-mode cache shared by both layers."""

  def __init__(self, name, n_heads, d_qk, d_v, share_qk, causal, masked, mode, predict_mem_len,
               attention_dropout, output_dropout):
    for what, value in (('n_heads', n_heads), ('d_qk', d_qk), ('d_v', d_v), ('predict_mem_len',
                                                                             predict_mem_len)):
      check_int(name, what, value)
    check_rate(name, 'attention_dropout', attention_dropout)
    check_rate(name, 'output_dropout', output_dropout)
    check_mode(name, 'mode', mode)
    if mode == 'predict' and not causal:
      raise ArgumentError(f"{name}: mode='predict' needs causal=True (fast decoding is for "
                          f"causal self-attention)")
    super().__init__(n_in=2 if masked else 1, n_out=1, name=name)
    self._n_heads, self._d_qk, self._d_v = n_heads, d_qk, d_v
    self._share_qk, self._causal, self._masked = bool(share_qk), bool(causal), bool(masked)
    self._mode, self._predict_mem_len = mode, predict_mem_len
    train = mode == 'train'
    self._attention_dropout = float(attention_dropout) if train else 0.0
    self._output_dropout = float(output_dropout) if train else 0.0

  @property
  def mode(self):
    return self._mode

  @property
  def max_len(self):
    """Positions the predict-mode cache holds."""
    return self._predict_mem_len

  def predict_capacity(self):
    """`predict_mem_len`, the positions the cache holds, in predict mode; else None."""
    return self._predict_mem_len if self._mode == 'predict' else None

  def _kernel(self, rng, d_model, d):
    # Glorot uniform over the fans of all heads together (as Trax).
    lim = math.sqrt(6.0 / (d_model + d * self._n_heads))
    return jax.random.uniform(rng, (self._n_heads, d_model, d), jnp.float32, -lim, lim)

  def init_weights_and_state(self, input_signature, rng):
    x = input_signature[0] if self._masked else input_signature
    if x.ndim != 3:
      raise ArgumentError(f'{self.name}: input must be (batch, length, d_model), got shape '
                          f'{x.shape}')
    d_model = x.shape[-1]
    r = jax.random.split(rng, 5)
    w_o = jnp.swapaxes(self._kernel(r[3], d_model, self._d_v), -1, -2)
    w_q, w_v = self._kernel(r[0], d_model, self._d_qk), self._kernel(r[2], d_model, self._d_v)
    weights = ((w_q, w_v, w_o) if self._share_qk else
               (w_q, self._kernel(r[1], d_model, self._d_qk), w_v, w_o))
    if self._mode == 'predict':
      shape = (x.shape[0], self._n_heads, self._predict_mem_len)
      return weights, (jnp.zeros(shape + (self._d_qk,),
                                 jnp.float32), jnp.zeros(shape + (self._d_v,),
                                                         jnp.float32), jnp.zeros((), jnp.int32))
    return weights, self._train_state(r[4])

  def _train_state(self, rng):
    del rng
    return ()

  def _inputs(self, x, weights):
    x, mask = (x[0], x[1]) if self._masked else (x, None)
    d_model = weights[0].shape[1]
    if x.ndim != 3 or x.shape[-1] != d_model:
      raise ArgumentError(f'{self.name}: input must be (batch, length, {d_model}), got shape '
                          f'{x.shape}')
    if mask is None:
      return x, None
    if mask.size != x.shape[0] * x.shape[1]:
      raise ArgumentError(f'{self.name}: mask must have shape (batch, length) = {x.shape[:2]} '
                          f'(or (batch, 1, 1, length)), got {mask.shape}')
    return x, mask.reshape(x.shape[:2]).astype(bool)

  def _dropout_rngs(self, rng):
    if self._attention_dropout == 0.0 and self._output_dropout == 0.0:
      return None, None
    if rng is None:
      raise ArgumentError(f"{self.name}: mode='train' with dropout needs an rng, got rng=None; "
                          f"pass a JAX key or use mode='eval'")
    return tuple(jax.random.split(jax.random.fold_in(rng, 1), 2))

  def forward_with_state(self, x, weights, state, rng):
    x, valid = self._inputs(x, weights)
    w_q, w_v, w_o = weights[0], weights[-2], weights[-1]
    q = jnp.einsum('bnd,hde->bhne', x, w_q)
    k = None if self._share_qk else jnp.einsum('bnd,hde->bhne', x, weights[1])
    v = jnp.einsum('bnd,hde->bhne', x, w_v)
    attention_rng, output_rng = self._dropout_rngs(rng)
    if self._mode == 'predict':
      o, state = self._predict(q, k, v, state)
    else:
      o = self._attend(q, k, v, valid, rng, attention_rng, state)
    y = jnp.einsum('bhne,hed->bnd', o.astype(x.dtype), w_o)
    if self._output_dropout > 0.0:  # one mask of the features, shared by all positions
      keep = keep_mask(output_rng, 1.0 - self._output_dropout, (y.shape[-1],))
      y = jnp.where(keep, y / (1.0 - self._output_dropout), 0.0).astype(y.dtype)
    return y, state

  def _predict(self, q, k, v, state):
    keys, values, pos = state
    m, limit = q.shape[2], self._predict_mem_len
    if m > limit:
      raise ArgumentError(f'{self.name}: {m} positions in one call exceed predict_mem_len={limit}')
    if keys.shape[0] != q.shape[0]:
      raise ArgumentError(f'{self.name}: the predict cache was made for batch {keys.shape[0]}, '
                          f'got batch {q.shape[0]}; re-initialise the model with this batch size')
    bad = check_positions(pos, m, limit, self.name)
    k = length_normalized(q) if self._share_qk else k
    keys = jax.lax.dynamic_update_slice(keys, k.astype(keys.dtype), (0, 0, pos, 0))
    values = jax.lax.dynamic_update_slice(values, v.astype(values.dtype), (0, 0, pos, 0))
    o = cached_attention(q, keys, values, pos, exclude_self=self._share_qk)
    return poison(o, bad), (keys, values, pos + m)

  def _attend(self, q, k, v, valid, rng, attention_rng, state):
    raise NotImplementedError


class SelfAttention(_EfficientAttention):
  """Exact multi-head self-attention, optionally chunked: (batch, n, d) -> (batch, n, d).

  n_in = 1 (2 with `masked=True`: `(x, mask)`), n_out = 1. Weights `(w_q,
  w_k, w_v, w_o)`, or `(w_q, w_v, w_o)` with `share_qk=True` (see the module
  docstring); no state outside predict mode.

  Args:
    n_heads: number of heads.
    d_qk: query/key width per head.
    d_v: value width per head.
    share_qk: keys are the RMS-normalised queries; no attention to self.
    causal: position i sees positions <= i.
    masked: take a padding mask as a second input.
    chunk_len: None, or queries per chunk (exact attention, memory
      (chunk_len, n) per head; Trax's chunk_len meant local attention).
    mode: 'train', 'eval' or 'predict' (needs `causal`).
    predict_mem_len: positions of the predict-mode cache.
    attention_dropout: dropout on attention probabilities (training only).
    output_dropout: dropout on the output, one feature mask for all
      positions (training only).
  """

  def __init__(self, n_heads=2, d_qk=64, d_v=64, share_qk=False, causal=False, masked=False,
               chunk_len=None, mode='train', predict_mem_len=2048, attention_dropout=0.0,
               output_dropout=0.0):
    if chunk_len is not None:
      check_int('SelfAttention', 'chunk_len', chunk_len)
    super().__init__('SelfAttention', n_heads, d_qk, d_v, share_qk, causal, masked, mode,
                     predict_mem_len, attention_dropout, output_dropout)
    self._chunk_len = chunk_len

  def _attend(self, q, k, v, valid, rng, attention_rng, state):
    if self._share_qk:
      k = length_normalized(q)
    return chunked_attention(q, k, v, causal=self._causal, exclude_self=self._share_qk,
                             valid=None if valid is None else valid[:, None, :],
                             chunk_len=self._chunk_len, dropout=self._attention_dropout,
                             rng=attention_rng)


class LSHSelfAttention(_EfficientAttention):
  """Multi-head LSH self-attention (Reformer): (batch, n, d) -> (batch, n, d).

  n_in = 1 (2 with `masked=True`), n_out = 1. Shared query/keys; weights
  `(w_qk, w_v, w_o)`. State: an int32 seed for the fixed hash key used when
  no rng is given (train/eval), or the cache (predict). Each head has its own
  rotations; examples of a batch share them. See the module docstring.

  Args:
    n_heads, d_qk, d_v, causal, masked, mode, predict_mem_len,
      attention_dropout, output_dropout: as for `SelfAttention`.
    chunk_len: positions per chunk after sorting; n must be a multiple of it
      (a shorter sequence is one chunk).
    n_chunks_before, n_chunks_after: neighbouring chunks each chunk sees.
    n_hashes: hashing rounds.
    n_buckets: buckets per round: an even int, a tuple of even ints
      (factorised), 1 (no hashing), or None for `auto_n_buckets(n, chunk_len)`.
    n_parallel_heads: None to compute all (example, head) pairs at once;
      else that many at a time in a rematerialised loop (less memory for
      long sequences; it must divide batch x n_heads). Trax's default was 1.
  """

  def __init__(self, n_heads=2, d_qk=64, d_v=64, causal=False, masked=False, chunk_len=128,
               n_chunks_before=1, n_chunks_after=0, n_hashes=1, n_buckets=None, mode='train',
               predict_mem_len=2048, attention_dropout=0.0, output_dropout=0.0,
               n_parallel_heads=None):
    check_int('LSHSelfAttention', 'chunk_len', chunk_len)
    if n_parallel_heads is not None:
      check_int('LSHSelfAttention', 'n_parallel_heads', n_parallel_heads)
    check_int('LSHSelfAttention', 'n_chunks_before', n_chunks_before, 0)
    check_int('LSHSelfAttention', 'n_chunks_after', n_chunks_after, 0)
    check_int('LSHSelfAttention', 'n_hashes', n_hashes)
    check_buckets('LSHSelfAttention', n_buckets)
    super().__init__('LSHSelfAttention', n_heads, d_qk, d_v, True, causal, masked, mode,
                     predict_mem_len, attention_dropout, output_dropout)
    self._chunk_len, self._n_hashes = chunk_len, n_hashes
    self._n_chunks_before, self._n_chunks_after = n_chunks_before, n_chunks_after
    self._n_buckets = tuple(n_buckets) if isinstance(n_buckets, list) else n_buckets
    self._n_parallel_heads = n_parallel_heads

  def _train_state(self, rng):
    return jax.random.randint(rng, (), 0, 2**31 - 1, jnp.int32)

  def _attend(self, q, k, v, valid, rng, attention_rng, state):
    del k
    b, h, n, _ = q.shape
    chunk = min(self._chunk_len, n)
    if n % chunk:
      raise ArgumentError(f'{self.name}: sequence length {n} is not a multiple of '
                          f'chunk_len={chunk}; pad the inputs or pick another chunk_len')
    slices = self._n_parallel_heads or b * h
    if (b * h) % slices:
      raise ArgumentError(f'{self.name}: n_parallel_heads={slices} must divide batch x n_heads '
                          f'= {b * h}')
    n_buckets = self._n_buckets or auto_n_buckets(n, chunk)
    hash_rng = jax.random.key(state) if rng is None else jax.random.fold_in(rng, 0)
    # One draw for all heads, outside any vmap/loop: the rotations do not depend
    # on how the heads are batched (JAX's 'rbg' keys draw differently under vmap).
    rotations = random_rotations(hash_rng, q.shape[-1], n_buckets, self._n_hashes, n_sets=h)
    rotations = rotations[jnp.tile(jnp.arange(h), b)]

    def one(qk, vh, rot, ok, r):  # one head of one example
      buckets = hash_with_rotations(qk, rot, n_buckets)
      if ok is not None:  # padding gets a bucket of its own
        buckets = jnp.where(ok[None, :], buckets, total_buckets(n_buckets))
      return bucketed_attention(qk, vh, buckets, chunk_len=chunk,
                                n_chunks_before=self._n_chunks_before,
                                n_chunks_after=self._n_chunks_after, causal=self._causal, valid=ok,
                                dropout=self._attention_dropout, rng=r)

    args = (q.reshape((b * h, n, -1)), v.reshape(
        (b * h, n, -1)), rotations, None if valid is None else jnp.repeat(valid, h, axis=0),
            None if attention_rng is None else jax.random.split(attention_rng, b * h))
    if slices == b * h:
      out = jax.vmap(one)(*args)
    else:  # groups of `slices` heads one after another, each recomputed in the backward pass
      groups = jax.tree.map(lambda a: a.reshape((b * h // slices, slices) + a.shape[1:]), args)
      out = jax.lax.map(jax.checkpoint(lambda a: jax.vmap(one)(*a)), groups)
    return out.reshape((b, h, n, -1))


__all__ = ['SelfAttention', 'LSHSelfAttention']
