"""Attention on arrays for long sequences: LSH hashing, bucketed, chunked and cached attention.

The computations behind `minitrax.layers.lsh_attention`'s layers (Kitaev,
Kaiser and Levskaya, 2020, "Reformer: The Efficient Transformer"), as pure
functions of arrays. Shapes: `(..., n, d)` for queries and keys, `(..., n,
d_v)` for values.

* Angular LSH (from `minitrax.layers.lsh_hashing`): `random_rotations` draws
  rotations R, `hash_with_rotations` puts a vector v in the bucket argmax of
  `[vR, -vR]` (several factors of buckets multiply), `hash_vectors` does both.
* `bucketed_attention`: per hashing round, positions sorted by (bucket,
  position), cut into chunks of `chunk_len`, each attending to itself and to
  `n_chunks_before`/`n_chunks_after` neighbours; rounds combined by the
  softmax of their log-sum-exp scores.
* `chunked_attention`: exact attention, the queries `chunk_len` at a time in
  a rematerialised loop, so scores take (chunk_len, n), never (n, n).
* `cached_attention`: causal attention of new queries over a predict cache.

Shared query/key: the keys are the queries normalised to unit RMS
(`length_normalized`), so a query scores highest against itself; a token
does not attend to itself (1e5 is subtracted from that score) unless nothing
else is visible to it (1e9 is subtracted from the scores of hidden keys).
"""

import jax
import jax.numpy as jnp

from minitrax.layers.chunk_loops import chunk_map
from minitrax.layers.lsh_hashing import (auto_n_buckets, check_buckets, hash_vectors,
                                         hash_with_rotations, random_rotations, total_buckets)
from minitrax.layers.masks import keep_mask

_MASK_PENALTY = 1e9  # subtracted from the scores of hidden keys
_SELF_PENALTY = 1e5  # subtracted from a query's score with its own key (shared QK)

# ------------------------------------------------------------------ attention functions


def length_normalized(x, epsilon=1e-6):
  """`x` in float32 scaled to unit root-mean-square over its last axis (shared-QK keys).

  Args:
    x: An array (..., d).
    epsilon: Added to the mean square before the reciprocal square root.
  """
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
  hidden = jnp.broadcast_to(k_pos > q_pos, dots.shape) if causal else None
  if k_valid is not None:
    padding = jnp.broadcast_to(~k_valid[..., None, :], dots.shape)
    hidden = padding if hidden is None else hidden | padding
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
  return sum_leading(ct.reshape((ct.shape[0] // n, n) + ct.shape[1:])), None, None


_permute_rows.defvjp(_permute_rows_fwd, _permute_rows_bwd)


def sum_leading(x):
  """`x.sum(axis=0)` for a short leading axis (hash rounds), as elementwise adds.

  XLA's CPU backend compiles a reduction over a short outer axis into a slow
  kernel (about 40 ms for 2 x 16384 x 64 floats); adds of slices are one
  elementwise loop.
  """
  return sum((x[i] for i in range(1, x.shape[0])), x[0])


def look_adjacent(x, before, after, axis=0):
  """Chunks with their neighbours: (..., c, L, ...) -> (..., c, (1 + before + after) L, ...).

  `axis` is the chunk axis and `axis + 1` the within-chunk axis. Chunk i is
  joined by chunks i - before .. i + after, wrapping around at both ends; as in
  Trax, nothing is clipped, so a neighbour that is reached twice (`before +
  after >= c`) appears twice.

  Args:
    x: The chunked array.
    before, after: How many chunks before and after each one to join (ints >= 0).
    axis: The chunk axis (non-negative or negative; `axis + 1` must exist).
  """
  parts = [jnp.roll(x, i, axis=axis) for i in range(before, 0, -1)] + [x]
  parts += [jnp.roll(x, -i, axis=axis) for i in range(1, after + 1)]
  return jnp.concatenate(parts, axis=axis + 1) if len(parts) > 1 else x


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
  before, after = n_chunks_before, n_chunks_after

  def chunks(a):
    return a.reshape((n_chunks, chunk_len) + a.shape[1:])

  sq, sv = chunks(_permute_rows(qk, sticker, undo)), chunks(_permute_rows(v, sticker, undo))
  spos = chunks(pos)
  s_valid = None if valid is None else chunks(valid[pos])
  if dropout == 0.0 and n_chunks >= max(before, after):  # groups of chunks (see the function)
    out, lse = grouped_chunk_attention(sq, sv, spos, s_valid, before, after, causal)
  else:
    k_valid = None if valid is None else look_adjacent(s_valid, before, after)
    dots = _scores(sq, look_adjacent(length_normalized(sq), before, after), spos,
                   look_adjacent(spos, before, after), k_valid, causal, True)
    out, lse = _softmax_attend(dots, look_adjacent(sv, before, after), dropout, rng)
  out = _permute_rows(out.reshape((n_hashes * n, -1)), undo, sticker).reshape((n_hashes, n, -1))
  lse = _permute_rows(lse.reshape(-1), undo, sticker).reshape((n_hashes, n, 1))
  weights = jax.nn.softmax(lse, axis=0)  # sums to 1 even where lse ~ -1e5
  return sum_leading(out * weights.astype(out.dtype))


# Scores per step of `grouped_chunk_attention` (1 MiB in float32): small enough that a step's
# scores and probabilities stay in the CPU's caches between the fusions that write and read them.
# Measured on 2 cores (32 MiB L3), one head's LSH attention forward + backward, 2 rounds of
# chunks of 128 (docs/performance.md, sitting RF2): at 65,536 positions 1498 ms with 2**24,
# 996 with 2**20, 861 with 2**18, 946 with 2**17; at 16,384 positions 348 against 287 ms.
GROUP_SCORES = 2**18


def grouped_chunk_attention(q, v, pos, valid, before, after, causal):
  """Shared-QK attention of chunks with their neighbours, a group of chunks per loop step.

  The numbers of `look_adjacent` attention over all chunks at once, but only
  about `GROUP_SCORES` scores exist at a time, in the backward pass too.

  Args:
    q: (c, L, d) chunked shared queries/keys.
    v: (c, L, d_v) chunked values.
    pos: (c, L) int positions (for the masks).
    valid: None or (c, L) bool, False hides a key.
    before, after: neighbouring chunks each chunk sees (wrapping around).
    causal: hide later positions.

  Returns:
    `(out (c, L, d_v), lse (c, L))`.
  """
  c, length = q.shape[:2]
  group = max(1, min(c, GROUP_SCORES // (length * length * (1 + before + after))))
  while c % group:
    group -= 1
  group = c if group < max(before, after) else group
  n_groups = c // group

  def grouped(a):
    """(c, ...) -> (groups, chunks of the group plus `before` ahead and `after` behind, ...)."""
    g = a.reshape((n_groups, group) + a.shape[1:])
    parts = [jnp.roll(g, 1, axis=0)[:, group - before:]] if before else []
    parts += [g] + ([jnp.roll(g, -1, axis=0)[:, :after]] if after else [])
    return jnp.concatenate(parts, axis=1) if len(parts) > 1 else g

  def step(_, args):
    q_w, v_w, pos_w, valid_w = args  # windows: before + group + after chunks

    def near(a):
      return jnp.concatenate([a[i:i + group] for i in range(before + after + 1)], axis=1)

    k_valid = None if valid_w is None else near(valid_w)
    dots = _scores(q_w[before:before + group], near(length_normalized(q_w)),
                   pos_w[before:before + group], near(pos_w), k_valid, causal, True)
    return _softmax_attend(dots, near(v_w), 0.0, None)

  args = (grouped(q), grouped(v), grouped(pos), None if valid is None else grouped(valid))
  out, lse = chunk_map(step, (), args)
  return out.reshape((c, length) + out.shape[3:]), lse.reshape((c, length))


def chunked_attention(q, k, v, *, causal=False, exclude_self=False, valid=None, chunk_len=None,
                      dropout=0.0, rng=None):
  """Exact attention with the queries taken `chunk_len` at a time.

  Args:
    q, k: (..., n, d) queries and keys.
    v: (..., n, d_v) values.
    causal: Hide later positions.
    exclude_self: Lower a query's score with its own position by 1e5 (for
      shared query/keys).
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
  q_chunks = jnp.moveaxis(q_padded.reshape(q.shape[:-2] + (n_chunks, chunk_len, q.shape[-1])), -3,
                          0)
  pos_chunks = jnp.arange(n_chunks * chunk_len, dtype=jnp.int32).reshape(n_chunks, chunk_len)

  def body(args):
    q_block, q_pos, i = args
    return block(q_block, q_pos, None if rng is None else jax.random.fold_in(rng, i))

  out = jax.lax.map(jax.checkpoint(body), (q_chunks, pos_chunks, jnp.arange(n_chunks)))
  out = jnp.moveaxis(out, 0, -3).reshape(q.shape[:-2] + (n_chunks * chunk_len, v.shape[-1]))
  return out[..., :n, :]


def local_attention(q, k, v, *, chunk_len, n_chunks_before=0, n_chunks_after=0, causal=False,
                    exclude_self=False, valid=None, dropout=0.0, rng=None):
  """Chunked attention (Trax's `chunk_len`): each chunk sees itself and its neighbours.

  The sequence is cut into chunks of `chunk_len`; the queries of chunk i
  attend to the keys of chunks i - n_chunks_before .. i + n_chunks_after,
  wrapping around at both ends (so, without `causal`, the first chunk sees the
  last one). Masks are by position, as in `chunked_attention`.

  Args:
    q, k: (..., n, d) queries and keys, n a multiple of `chunk_len`.
    v: (..., n, d_v) values.
    chunk_len, n_chunks_before, n_chunks_after: the chunks and neighbours.
    causal, exclude_self, dropout, rng: as in `chunked_attention`.
    valid: None or (..., n) bool with the leading axes of q: False hides a
      key.

  Returns:
    (..., n, d_v).
  """
  n = q.shape[-2]
  c = n // chunk_len

  def chunks(a):
    return a.reshape(a.shape[:-2] + (c, chunk_len) + a.shape[-1:])

  def near(a, axis=-3):
    return look_adjacent(a, n_chunks_before, n_chunks_after, axis=axis)

  pos = jnp.arange(n, dtype=jnp.int32).reshape(c, chunk_len)
  k_valid = None if valid is None else near(valid.reshape(valid.shape[:-1] + (c, chunk_len)), -2)
  dots = _scores(chunks(q), near(chunks(k)), pos, near(pos, 0), k_valid, causal, exclude_self)
  out, _ = _softmax_attend(dots, near(chunks(v)), dropout, rng)
  return out.reshape(q.shape[:-2] + (n, v.shape[-1]))


def cached_attention(q, keys, values, start, *, exclude_self=False):
  """Causal attention of `m` new queries at positions `start..start+m-1` over a cache.

  Cache slots after a query's position are hidden.

  Args:
    q: (..., m, d) new queries.
    keys, values: (..., L, d) and (..., L, d_v) caches, already holding the
      new positions.
    start: The position of the first new query (an int or int32 scalar).
    exclude_self: As in `chunked_attention`.

  Returns:
    (..., m, d_v).
  """
  q_pos = start + jnp.arange(q.shape[-2], dtype=jnp.int32)
  k_pos = jnp.arange(keys.shape[-2], dtype=jnp.int32)
  dots = _scores(q, keys, q_pos, k_pos, None, True, exclude_self)
  return _softmax_attend(dots, values, 0.0, None)[0]


__all__ = [
    'check_buckets', 'auto_n_buckets', 'random_rotations', 'hash_with_rotations', 'hash_vectors',
    'total_buckets', 'length_normalized', 'bucketed_attention', 'chunked_attention',
    'local_attention', 'cached_attention', 'look_adjacent'
]
