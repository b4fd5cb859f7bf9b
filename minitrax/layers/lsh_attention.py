"""Memory-efficient self-attention for long sequences: chunked exact attention and LSH attention.

Names, arguments and defaults follow Trax's `trax/layers/research/
efficient_attention.py` (Kitaev, Kaiser and Levskaya, 2020, "Reformer: The
Efficient Transformer"). Both layers map `(batch, n, d_model) -> (batch, n,
d_model)` (with `masked=True`: `(x, mask) -> y`, `mask` True at real tokens,
shape (batch, n) or (batch, 1, 1, n)). Per head, queries, keys and values are
`x @ w_q`, `x @ w_k`, `x @ w_v`; heads are projected back with `w_o` and
summed. Weights hold one slice per head: `w_q` (n_heads, d_model, d_qk),
`w_v` (n_heads, d_model, d_v), `w_o` (n_heads, d_v, d_model).

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
import numbers

import jax
import jax.numpy as jnp

from minitrax.checks import check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention import check_positions
from minitrax.layers.base import Layer
from minitrax.layers.core import poison
from minitrax.layers.masks import keep_mask

_MASK_PENALTY = 1e9  # subtracted from the scores of hidden keys
_SELF_PENALTY = 1e5  # subtracted from a query's score with its own key (shared QK)


# ------------------------------------------------------------------ argument checks


def _check_buckets(who, n_buckets):
  if n_buckets is None or n_buckets == 1:
    return
  factors = n_buckets if isinstance(n_buckets, (tuple, list)) else [n_buckets]
  for f in factors:
    if not isinstance(f, numbers.Integral) or isinstance(f, bool) or f < 2 or f % 2:
      raise ArgumentError(f'{who}: n_buckets must be None, 1, an even int >= 2 or a tuple of '
                       f'them (factorised hashing), got {n_buckets!r}')


# ------------------------------------------------------------------ hashing


def auto_n_buckets(n, chunk_len):
  """Trax's default: `2 * max(1, n // chunk_len)` buckets, factorised in two when > 128."""
  n_buckets = 2 * max(1, n // chunk_len)
  if n_buckets <= 128:
    return n_buckets
  first = 2 ** math.ceil(math.log2(math.sqrt(n_buckets)))
  return (first, 2 * (n_buckets // (2 * first)))


def _factors(n_buckets):
  return list(n_buckets) if isinstance(n_buckets, (tuple, list)) else [n_buckets]


def random_rotations(rng, d, n_buckets, n_hashes=1, n_sets=None):
  """The random matrices of `hash_vectors`: (d, n_hashes, r/2), r = sum of the bucket factors.

  With `n_sets`, that many independent sets in one draw: (n_sets, d,
  n_hashes, r/2). The draw depends only on `rng` and the shape.
  """
  shape = (d, n_hashes, sum(_factors(n_buckets)) // 2)
  return jax.random.normal(rng, shape if n_sets is None else (n_sets,) + shape, jnp.float32)


def hash_with_rotations(vecs, rotations, n_buckets):
  """Buckets of vecs (..., n, d) for rotations (d, n_hashes, r/2): (..., n_hashes, n) int32."""
  if n_buckets == 1:
    return jnp.zeros(vecs.shape[:-2] + (rotations.shape[1], vecs.shape[-2]), jnp.int32)
  rotated = jnp.einsum('...nd,dhr->...hnr', vecs.astype(jnp.float32), rotations)
  buckets, start, scale = 0, 0, 1
  for f in _factors(n_buckets):
    part = rotated[..., start:start + f // 2]
    digit = jnp.argmax(jnp.concatenate([part, -part], axis=-1), axis=-1).astype(jnp.int32)
    buckets, start, scale = buckets + scale * digit, start + f // 2, scale * f
  return buckets


def hash_vectors(vecs, n_buckets, rng, n_hashes=1):
  """Angular LSH buckets of vectors: (..., n, d) -> (..., n_hashes, n) int32.

  Each round draws a random matrix R (d, r/2) from `rng` and puts v in bucket
  `argmax([v R, -v R])`, so v and a positive multiple of v share a bucket.
  With `n_buckets` a tuple (r_1, r_2, ...), one rotation per factor gives
  digits combined as `b_1 + r_1 b_2 + r_1 r_2 b_3 + ...` (prod(r_i)
  buckets). `n_buckets=1` puts everything in bucket 0.
  """
  rotations = random_rotations(rng, vecs.shape[-1], n_buckets, n_hashes)
  return hash_with_rotations(vecs, rotations, n_buckets)


def _total_buckets(n_buckets):
  return math.prod(_factors(n_buckets))


# ------------------------------------------------------------------ attention functions


def _length_normalized(x, epsilon=1e-6):
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + epsilon)


def _scores(q, k, q_pos, k_pos, k_valid, causal, exclude_self):
  """Masked scores `q k^T / sqrt(d)` in float32: (..., m, d), (..., l, d) -> (..., m, l)."""
  dots = jnp.matmul(q.astype(jnp.float32), jnp.swapaxes(k, -1, -2).astype(jnp.float32))
  dots = dots / jnp.sqrt(jnp.float32(q.shape[-1]))
  q_pos, k_pos = q_pos[..., :, None], k_pos[..., None, :]
  # Penalties are subtracted (as in Trax) rather than written as constants: a
  # constant broadcast to the scores' shape would be hoisted out of the query
  # loop of `chunked_attention` as a loop-invariant buffer.
  if exclude_self:
    dots = jnp.where(q_pos == k_pos, dots - _SELF_PENALTY, dots)
  hidden = k_pos > q_pos if causal else None
  if k_valid is not None:
    hidden = ~k_valid[..., None, :] if hidden is None else hidden | ~k_valid[..., None, :]
  return dots if hidden is None else jnp.where(hidden, dots - _MASK_PENALTY, dots)


def _softmax_attend(dots, v, dropout, rng):
  """`(softmax(dots) v, logsumexp(dots))`, with dropout on the probabilities."""
  top = jax.lax.stop_gradient(jnp.max(dots, axis=-1, keepdims=True))
  unnormalised = jnp.exp(dots - top)
  total = jnp.sum(unnormalised, axis=-1, keepdims=True)
  probs = unnormalised / total  # sums to 1 even where the scores are ~ -1e5
  lse = top + jnp.log(total)
  if dropout > 0.0:
    keep = keep_mask(rng, 1.0 - dropout, probs.shape)
    probs = probs * keep.astype(probs.dtype) * (1.0 / (1.0 - dropout))
  return jnp.matmul(probs.astype(v.dtype), v), lse[..., 0]


@jax.custom_vjp
def _permute_rows(x, perm, inverse):
  """`tile(x, k)[perm]` for x (n, ...) and a permutation `perm` of k n rows; `inverse` undoes it.

  Its gradient is a gather with `inverse` (summed over the k copies), not the
  scatter-add autodiff would make: XLA gives every scatter a zeroed buffer
  and may allocate all of them at the start of the program (Trax does the same
  for speed on TPU).
  """
  return x[perm % x.shape[0]]


def _permute_rows_fwd(x, perm, inverse):
  return _permute_rows(x, perm, inverse), (perm, inverse, x.shape[0])


def _permute_rows_bwd(residuals, ct):
  perm, inverse, n = residuals
  del perm
  ct = ct[inverse]
  return ct.reshape((ct.shape[0] // n, n) + ct.shape[1:]).sum(axis=0), None, None


_permute_rows.defvjp(_permute_rows_fwd, _permute_rows_bwd)


def _look_adjacent(x, before, after):
  """(c, L, ...) -> (c, (1 + before + after) L, ...): each chunk with its neighbours (wrapping)."""
  parts = [jnp.roll(x, i, axis=0) for i in range(before, 0, -1)] + [x]
  parts += [jnp.roll(x, -i, axis=0) for i in range(1, after + 1)]
  return jnp.concatenate(parts, axis=1) if len(parts) > 1 else x


def bucketed_attention(qk, v, buckets, *, chunk_len, n_chunks_before=1, n_chunks_after=0,
                       causal=False, valid=None, dropout=0.0, rng=None):
  """LSH attention of one head of one example, given the buckets.

  Args:
    qk: (n, d) shared queries/keys.
    v: (n, d_v) values.
    buckets: (n_hashes, n) int bucket of every position in every round.
    chunk_len: positions per chunk; must divide n.
    n_chunks_before, n_chunks_after: neighbouring chunks each chunk sees.
    causal: hide later positions.
    valid: None or (n,) bool, False at padding (hidden as keys).
    dropout, rng: dropout on the attention probabilities.

  Returns:
    (n, d_v): per round, attention within sorted chunks; rounds combined by
    the softmax of their log-sum-exp.
  """
  n_hashes, n = buckets.shape
  ticker = jnp.arange(n_hashes * n, dtype=jnp.int32)
  offsets = (jnp.arange(n_hashes, dtype=jnp.int32) * (jnp.max(buckets) + 1))[:, None]
  keys = jax.lax.stop_gradient((buckets + offsets).reshape(-1))
  _, sticker = jax.lax.sort((keys, ticker), num_keys=1, is_stable=True)
  undo = jnp.zeros_like(sticker).at[sticker].set(ticker)
  pos = sticker % n
  n_chunks = n_hashes * n // chunk_len
  before = min(n_chunks_before, n_chunks - 1)
  after = min(n_chunks_after, n_chunks - 1 - before)

  def chunks(a):
    return a.reshape((n_chunks, chunk_len) + a.shape[1:])

  sq, sv = chunks(_permute_rows(qk, sticker, undo)), chunks(_permute_rows(v, sticker, undo))
  spos = chunks(pos)
  sk = _length_normalized(sq)
  k_valid = None if valid is None else _look_adjacent(chunks(valid[pos]), before, after)
  dots = _scores(sq, _look_adjacent(sk, before, after), spos,
                 _look_adjacent(spos, before, after), k_valid, causal, True)
  out, lse = _softmax_attend(dots, _look_adjacent(sv, before, after), dropout, rng)
  out = _permute_rows(out.reshape((n_hashes * n, -1)), undo, sticker).reshape((n_hashes, n, -1))
  lse = _permute_rows(lse.reshape(-1), undo, sticker).reshape((n_hashes, n, 1))
  weights = jax.nn.softmax(lse, axis=0)  # sums to 1 even where lse ~ -1e5
  return jnp.sum(out * weights.astype(out.dtype), axis=0)


def chunked_attention(q, k, v, *, causal=False, exclude_self=False, valid=None, chunk_len=None,
                      dropout=0.0, rng=None):
  """Exact attention with the queries taken `chunk_len` at a time.

  Args:
    q: (..., n, d); k: (..., n, d); v: (..., n, d_v).
    causal: hide later positions; exclude_self: lower a query's score with
      its own position by 1e5 (for shared query/keys).
    valid: None or a bool array broadcastable to (..., n): False hides a key.
    chunk_len: None for one block; else the loop over query chunks is
      rematerialised, so the backward pass too holds (..., chunk_len, n)
      scores at a time. n need not be a multiple (the queries are padded).
    dropout, rng: dropout on the attention probabilities.

  Returns:
    (..., n, d_v).
  """
  n = q.shape[-2]
  pos = jnp.arange(n, dtype=jnp.int32)

  def block(q_block, q_pos, r):
    dots = _scores(q_block, k, q_pos, pos, valid, causal, exclude_self)
    return _softmax_attend(dots, v, dropout, r)[0]

  if chunk_len is None or chunk_len >= n:
    return block(q, pos, rng)
  n_chunks = -(-n // chunk_len)
  pad = n_chunks * chunk_len - n
  q_padded = jnp.pad(q, [(0, 0)] * (q.ndim - 2) + [(0, pad), (0, 0)])
  q_chunks = jnp.moveaxis(q_padded.reshape(q.shape[:-2] + (n_chunks, chunk_len, q.shape[-1])),
                          -3, 0)
  pos_chunks = jnp.arange(n_chunks * chunk_len, dtype=jnp.int32).reshape(n_chunks, chunk_len)

  def body(args):
    q_block, q_pos, i = args
    return block(q_block, q_pos, None if rng is None else jax.random.fold_in(rng, i))

  out = jax.lax.map(jax.checkpoint(body), (q_chunks, pos_chunks, jnp.arange(n_chunks)))
  out = jnp.moveaxis(out, 0, -3).reshape(q.shape[:-2] + (n_chunks * chunk_len, v.shape[-1]))
  return out[..., :n, :]


def cached_attention(q, keys, values, start, *, exclude_self=False):
  """Causal attention of `m` new queries at positions `start..start+m-1` over a cache.

  q: (..., m, d); keys: (..., L, d); values: (..., L, d_v), already holding
  the new positions. Cache slots after a query's position are hidden.
  """
  q_pos = start + jnp.arange(q.shape[-2], dtype=jnp.int32)
  k_pos = jnp.arange(keys.shape[-2], dtype=jnp.int32)
  dots = _scores(q, keys, q_pos, k_pos, None, True, exclude_self)
  return _softmax_attend(dots, values, 0.0, None)[0]


# ------------------------------------------------------------------ layers


class _EfficientAttention(Layer):
  """Weights, projections, output dropout and the predict-mode cache shared by both layers."""

  def __init__(self, name, n_heads, d_qk, d_v, share_qk, causal, masked, mode, predict_mem_len,
               attention_dropout, output_dropout):
    for what, value in (('n_heads', n_heads), ('d_qk', d_qk), ('d_v', d_v),
                        ('predict_mem_len', predict_mem_len)):
      check_int(name, what, value)
    check_rate(name, 'attention_dropout', attention_dropout)
    check_rate(name, 'output_dropout', output_dropout)
    check_mode(name, mode)
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
      return weights, (jnp.zeros(shape + (self._d_qk,), jnp.float32),
                       jnp.zeros(shape + (self._d_v,), jnp.float32), jnp.zeros((), jnp.int32))
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
    k = _length_normalized(q) if self._share_qk else k
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
      k = _length_normalized(q)
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
    _check_buckets('LSHSelfAttention', n_buckets)
    super().__init__('LSHSelfAttention', n_heads, d_qk, d_v, True, causal, masked, mode,
                     predict_mem_len, attention_dropout, output_dropout)
    self._chunk_len, self._n_hashes = chunk_len, n_hashes
    self._n_chunks_before, self._n_chunks_after = n_chunks_before, n_chunks_after
    self._n_buckets = tuple(n_buckets) if isinstance(n_buckets, list) else n_buckets
    self._n_parallel_heads = n_parallel_heads

  def _train_state(self, rng):
    return jax.random.randint(rng, (), 0, 2 ** 31 - 1, jnp.int32)

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
        buckets = jnp.where(ok[None, :], buckets, _total_buckets(n_buckets))
      return bucketed_attention(qk, vh, buckets, chunk_len=chunk,
                                n_chunks_before=self._n_chunks_before,
                                n_chunks_after=self._n_chunks_after, causal=self._causal,
                                valid=ok, dropout=self._attention_dropout, rng=r)

    args = (q.reshape((b * h, n, -1)), v.reshape((b * h, n, -1)), rotations,
            None if valid is None else jnp.repeat(valid, h, axis=0),
            None if attention_rng is None else jax.random.split(attention_rng, b * h))
    if slices == b * h:
      out = jax.vmap(one)(*args)
    else:  # groups of `slices` heads one after another, each recomputed in the backward pass
      groups = jax.tree.map(lambda a: a.reshape((b * h // slices, slices) + a.shape[1:]), args)
      out = jax.lax.map(jax.checkpoint(lambda a: jax.vmap(one)(*a)), groups)
    return out.reshape((b, h, n, -1))


__all__ = ['SelfAttention', 'LSHSelfAttention', 'hash_vectors', 'random_rotations',
           'hash_with_rotations', 'auto_n_buckets', 'bucketed_attention', 'chunked_attention',
           'cached_attention']
