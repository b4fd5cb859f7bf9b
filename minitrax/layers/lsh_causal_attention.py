"""Trax 1.2's `LSHCausalAttention`: causal LSH attention on per-head arrays.

After Trax 1.2.3's `trax/layers/research/efficient_attention.py` (Kitaev et
al., 2020). `(q, k, v) -> y` with q (batch * n_heads, n, d) the shared
query/keys (`k` is ignored), v (batch * n_heads, n, d_v); n_in = 3, n_out =
1, no weights; a core for Trax 1.2's `CausalAttention(attention_type=...)`.

For each (example, head) slice i: the hash key is `fold_in(rng, i)` split in
two (hashing, dropout); the hashing key is split again into the rotations'
key and a key for `drop_for_hash_rate` dropout of the hashed vectors.
Rotations R (d, n_hashes, r / 2) ~ N(0, 1) put v in bucket `argmax([vR,
-vR])` per round (`factorize_hash`: several factors of buckets combined),
plus the round times `n_buckets`. Positions are sorted by (bucket, position),
cut into `n_bins` chunks per round; each chunk attends to itself and the
previous chunk (wrapping). Scores `q k / sqrt(d)` (keys normalised to unit
RMS) get -1e9 for later positions, -1e5 for the query itself, -1e7 for keys
of another bucket (unless `attend_across_buckets`), and, unless
`allow_duplicate_attention`, `-log(c)` where c counts the rounds in which the
pair meets, so a pair counts once. Rounds are combined by the softmax of
their log-sum-exp. With `one_rng`, the hashing key is fixed per layer (a seed
drawn at init, kept in the state) instead of coming from the call's rng.

State: the buckets of the last call, (batch * n_heads, n_hashes * n) int32
(then the seed, with `one_rng`). Predict mode (one position at a time, as in
Trax): a cache of `max_len_for_inference` unit-RMS keys and values; each
round's bucket keeps the positions of its last `bucket_capacity_for_inference`
members; a query attends to the members of its buckets (itself at -1e5,
repeats at -1e7 unless duplicates are allowed). Its hash key is fixed (drawn
at init), shared by the examples and heads. Not supported (ArgumentError):
`hard_k > 0`, `data_rotation`, `rehash_each_round=False`.
"""

import math

import jax
import jax.numpy as jnp

from minitrax.checks import check_flag, check_int, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention import check_positions
from minitrax.layers.attention12 import BaseCausalAttention
from minitrax.layers.attention_kernels import length_normalized, look_adjacent, sum_leading
from minitrax.layers.core import poison
from minitrax.layers.masks import keep_mask


def factor_list(who, n_buckets, factorize_hash):
  """The bucket factors of Trax's `hash_vectors`: [n_buckets], a given list, or a found pair.

  Args:
    who: The layer named in errors.
    n_buckets: The total number of buckets (an int).
    factorize_hash: A list/tuple of even factors whose product is `n_buckets`
      (else `ArgumentError`); true to find the even pair closest to
      sqrt(n_buckets) (kept only if its first factor is > 2); false for no
      factorisation.
  """
  if isinstance(factorize_hash, (list, tuple)):
    if any(f % 2 for f in factorize_hash) or math.prod(factorize_hash) != n_buckets:
      raise ArgumentError(f'{who}: factorize_hash must be even factors of n_buckets={n_buckets}, '
                          f'got {factorize_hash!r}')
    return list(factorize_hash)
  if factorize_hash:
    factor = int(math.sqrt(n_buckets))
    while factor > 0 and not (n_buckets % factor == 0 and factor % 2 == 0 and
                              (n_buckets // factor) % 2 == 0):
      factor -= 1
    if factor > 2:
      return [factor, n_buckets // factor]
  return [n_buckets]


class LSHCausalAttention(BaseCausalAttention):
  """Causal LSH attention of Trax 1.2: (q, k, v) -> y; see the module docstring.

  Args:
    dropout: attention dropout rate (training only), one mask per chunk shape.
    mode: 'train', 'eval' or 'predict'.
    n_bins: chunks per hashing round; n must be a multiple of it.
    n_hashes: hashing rounds.
    n_buckets: buckets per round (even, >= n_bins).
    one_rng: hash with a fixed per-layer key.
    allow_duplicate_attention: let a pair that meets in several rounds count
      several times.
    attend_across_buckets: do not penalise keys of other buckets in a chunk.
    hard_k: must be 0 (not supported).
    factorize_hash: False, True (find two factors) or a list of factors.
    rehash_each_round: must be True (False is not supported).
    drop_for_hash_rate: dropout of the vectors before hashing (training).
    data_rotation, data_rotation_farthest, data_rotation_farthest_num: must
      stay off (data-dependent rotations are not supported).
    max_len_for_inference: positions of the predict-mode cache.
    bucket_capacity_for_inference: positions remembered per bucket (predict).
  """

  def __init__(self, dropout, mode, n_bins=64, n_hashes=1, n_buckets=64, one_rng=False,
               allow_duplicate_attention=False, attend_across_buckets=False, hard_k=0,
               factorize_hash=False, rehash_each_round=True, drop_for_hash_rate=0.0,
               data_rotation=False, data_rotation_farthest=False, data_rotation_farthest_num=8,
               max_len_for_inference=16384, bucket_capacity_for_inference=256):
    who = 'LSHCausalAttention'
    check_rate(who, 'dropout', dropout)
    check_rate(who, 'drop_for_hash_rate', drop_for_hash_rate)
    for what, value in (('n_bins', n_bins), ('n_hashes', n_hashes), ('n_buckets', n_buckets),
                        ('max_len_for_inference', max_len_for_inference),
                        ('bucket_capacity_for_inference', bucket_capacity_for_inference),
                        ('data_rotation_farthest_num', data_rotation_farthest_num)):
      check_int(who, what, value)
    if n_buckets % 2 or n_buckets < n_bins:
      raise ArgumentError(f'{who}: n_buckets must be even and >= n_bins={n_bins}, got '
                          f'{n_buckets}')
    unsupported = [
        f'{name}={value!r}' for name, value, off in (('hard_k', hard_k,
                                                      0), ('data_rotation', data_rotation,
                                                           False), ('data_rotation_farthest',
                                                                    data_rotation_farthest, False),
                                                     ('rehash_each_round', rehash_each_round, True))
        if value != off
    ]
    if unsupported:
      raise ArgumentError(f'{who}: {", ".join(unsupported)} is not supported by minitrax')
    super().__init__(mode=mode)
    self._n_bins, self._n_hashes, self._n_buckets = n_bins, n_hashes, n_buckets
    self._one_rng = check_flag(who, 'one_rng', one_rng)
    self._allow_dup = check_flag(who, 'allow_duplicate_attention', allow_duplicate_attention)
    self._across = check_flag(who, 'attend_across_buckets', attend_across_buckets)
    self._factors = factor_list(who, n_buckets, factorize_hash)
    train = mode == 'train'
    self._dropout = float(dropout) if train else 0.0
    self._drop_for_hash = float(drop_for_hash_rate) if train else 0.0
    self._max_len, self._capacity = max_len_for_inference, bucket_capacity_for_inference

  # ---------------------------------------------------------------- hashing

  def hash_vectors(self, vecs, rng):
    """Buckets of vecs (n, d): (n_hashes * n,) int32, round r's numbers offset by r * n_buckets."""
    rng, drop_rng = jax.random.split(rng)
    shape = (vecs.shape[-1], self._n_hashes, sum(self._factors) // 2)
    rotations = jax.random.normal(rng, shape).astype(jnp.float32)
    if self._drop_for_hash > 0.0:
      keep = keep_mask(drop_rng, 1.0 - self._drop_for_hash, vecs.shape)
      vecs = jnp.where(keep, vecs / (1.0 - self._drop_for_hash), 0.0)
    rotated = jnp.einsum('tf,fhb->htb', vecs, rotations)
    buckets, start, scale = 0, 0, 1
    for f in self._factors:
      part = rotated[..., start:start + f // 2]
      digit = jnp.argmax(jnp.concatenate([part, -part], axis=-1), axis=-1)
      buckets, start, scale = buckets + scale * digit, start + f // 2, scale * f
    offsets = (jnp.arange(self._n_hashes) * self._n_buckets)[:, None]
    return (buckets + offsets).reshape(-1).astype(jnp.int32)

  # ---------------------------------------------------------------- train / eval

  def init_weights_and_state(self, input_signature, rng):
    q = input_signature[0]
    seed = jax.random.randint(rng, (), 0, 2**31 - 1, jnp.int32)
    if self._mode == 'predict':
      b, d, d_v = q.shape[0], q.shape[-1], input_signature[2].shape[-1]
      slots = b * self._n_hashes * self._n_buckets
      return (), (jnp.zeros((b, self._max_len, d),
                            q.dtype), jnp.zeros((b, self._max_len, d_v), input_signature[2].dtype),
                  jnp.full((b, self._max_len), -1e9, jnp.float32), jnp.zeros(
                      (), jnp.int32), jnp.full((slots, self._capacity), self._max_len,
                                               jnp.int32), jnp.zeros((slots,), jnp.int32), seed)
    buckets = jnp.zeros((q.shape[0], self._n_hashes * q.shape[1]), jnp.int32)
    return (), ((buckets, seed) if self._one_rng else buckets)

  def forward_with_state(self, x, weights, state, rng):
    qk, k, v = x
    self._check_inputs(qk, k, v)
    if self._mode == 'predict':
      return self._predict(qk, v, state)
    n = qk.shape[1]
    if n % self._n_bins:
      raise ArgumentError(f'{self.name}: the length {n} must be a multiple of n_bins='
                          f'{self._n_bins}')
    fixed = jax.random.key(state[1]) if self._one_rng else None
    if rng is None and (fixed is None or self._dropout > 0.0):
      raise ArgumentError(f'{self.name}: hashing and dropout need an rng (hashing can use a fixed '
                          f'key with one_rng=True), got rng=None')

    def one(i, qk_i, v_i):
      hash_rng, slice_rng = jax.random.split(jax.random.fold_in(rng, i)) if rng is not None \
          else (None, None)
      if fixed is not None:
        hash_rng = jax.random.fold_in(fixed, i)
      buckets = self.hash_vectors(qk_i, hash_rng)
      return self._single(qk_i, v_i, buckets, slice_rng), buckets

    out, buckets = jax.lax.map(lambda a: one(*a), (jnp.arange(qk.shape[0]), qk, v))
    return out, ((buckets, state[1]) if self._one_rng else buckets)

  def _duplicates(self, buckets, undo, st, chunk):
    """Per (query, key) of each chunk: in how many rounds the pair meets (chunk + the previous)."""
    h, n_chunks, n = self._n_hashes, self._n_hashes * self._n_bins, st.shape[0] // self._n_hashes
    locs1 = undo // chunk
    locs2 = (locs1 + 1) % n_chunks
    if not self._across:
      locs1, locs2 = buckets * n_chunks + locs1, buckets * n_chunks + locs2
    locs = jnp.concatenate([locs1.reshape(h, n), locs2.reshape(h, n)], axis=0).T  # (n, 2h)
    b_locs = locs[st].reshape(n_chunks, chunk, 2 * h)
    q_locs = jnp.concatenate([b_locs[..., :h], b_locs[..., :h]], axis=-1)
    kv_locs = look_adjacent(b_locs, 1, 0)
    return jnp.sum(q_locs[:, :, None, :] == kv_locs[:, None, :, :], axis=-1).astype(jnp.float32)

  def _single(self, qk, v, buckets, rng):
    """One slice: qk (n, d), v (n, d_v), flat buckets -> (n, d_v)."""
    n, h = qk.shape[0], self._n_hashes
    ticker = jnp.arange(h * n)
    keys = jax.lax.stop_gradient(n * buckets + ticker % n)
    _, sticker = jax.lax.sort_key_val(keys, ticker)
    _, undo = jax.lax.sort_key_val(sticker, ticker)
    st = sticker % n
    n_chunks, chunk = h * self._n_bins, n // self._n_bins

    def chunks(a):
      return a.reshape((n_chunks, chunk) + a.shape[1:])

    bq, bv, t = chunks(qk[st]), chunks(v[st]), chunks(st)
    b_buckets = chunks(keys[sticker] // n)
    bk = look_adjacent(length_normalized(bq).astype(bq.dtype), 1, 0)
    dots = jnp.matmul(bq, jnp.swapaxes(bk, -1, -2)) / math.sqrt(qk.shape[-1])
    kv_t, kv_buckets = look_adjacent(t, 1, 0), look_adjacent(b_buckets, 1, 0)
    dots = dots - 1e9 * (t[:, :, None] < kv_t[:, None, :]) - 1e5 * (t[:, :, None] == kv_t[:,
                                                                                          None, :])
    if not self._across:
      dots = dots - 1e7 * (b_buckets[:, :, None] != kv_buckets[:, None, :])
    if not self._allow_dup:
      counts = self._duplicates(buckets, undo, st, chunk)
      dots = dots - jax.lax.stop_gradient(jnp.log(counts + 1e-9))
    lse = jax.nn.logsumexp(dots, axis=-1, keepdims=True)
    probs = jax.nn.softmax(dots, axis=-1)  # exp(dots - lse), normalised also near -1e5
    if self._dropout > 0.0:
      keep = keep_mask(rng, 1.0 - self._dropout, (1,) + probs.shape[1:])
      probs = probs * jnp.broadcast_to(keep, probs.shape) / (1.0 - self._dropout)
    so = jnp.matmul(probs, look_adjacent(bv, 1, 0)).reshape((h * n, -1))
    o, logits = so[undo].reshape((h, n, -1)), lse.reshape(-1)[undo].reshape((h, n, 1))
    return sum_leading(o * jax.nn.softmax(logits, axis=0))

  # ---------------------------------------------------------------- predict

  def _predict(self, qk, v, state):
    bad = check_positions(state[3], qk.shape[1], self._max_len, self.name)

    def step(state, qv):
      return self._predict_one(state, *qv)

    qv = (jnp.moveaxis(qk, 1, 0)[:, :, None], jnp.moveaxis(v, 1, 0)[:, :, None])
    state, out = jax.lax.scan(step, state, qv)
    return poison(jnp.moveaxis(out[:, :, 0], 0, 1), bad), state

  def _predict_one(self, state, qk, v):
    """qk (b, 1, d), v (b, 1, d_v) at the next position -> (state, y (b, 1, d_v))."""
    ks, vs, mask, index, assigned, locs, seed = state
    b, h, nb = qk.shape[0], self._n_hashes, self._n_buckets
    buckets = self.hash_vectors(qk[:, 0], jax.random.key(seed)).reshape(h, b).T  # (b, h)
    ks = ks.at[:, index].set(length_normalized(qk[:, 0]).astype(ks.dtype))
    vs = vs.at[:, index].set(v[:, 0].astype(vs.dtype))
    cur_mask = mask.at[:, index].set(-1e5)
    mask = mask.at[:, index].set(0.0)
    slots = (jnp.arange(b)[:, None] * h * nb + buckets).reshape(-1)
    at = locs[slots]
    assigned = assigned.at[slots, at].set(index)
    locs = locs.at[slots].set((at + 1) % self._capacity)
    refs = jnp.sort(assigned[slots].reshape(b, -1), axis=-1)
    empty = refs >= self._max_len  # unused slots of a bucket (Trax clamped them to a row)
    scores = jnp.where(empty, -1e9, jnp.take_along_axis(cur_mask, refs, axis=1, mode='clip'))
    scores = scores[:, None, :]
    keys = jnp.take_along_axis(ks, refs[..., None], axis=1, mode='clip')
    values = jnp.take_along_axis(vs, refs[..., None], axis=1, mode='clip')
    dots = jnp.matmul(qk, jnp.swapaxes(keys, -1, -2)) / math.sqrt(qk.shape[-1]) + scores
    if not self._allow_dup:
      repeat = refs == jnp.pad(refs, [(0, 0), (1, 0)], constant_values=-99)[:, :-1]
      dots = dots - 1e7 * repeat[:, None, :]
    y = jnp.matmul(jax.nn.softmax(dots, axis=-1).astype(values.dtype), values)
    return (ks, vs, mask, index + 1, assigned, locs, seed), y


__all__ = ['LSHCausalAttention', 'factor_list']
