"""Memory-efficient self-attention for long sequences: `SelfAttention` and `LSHSelfAttention`.

Names, arguments and defaults follow Trax's `efficient_attention.py` (Trax
1.4; `efficient_attention_v2.py` in Trax 1.2), after Kitaev, Kaiser and
Levskaya, 2020, "Reformer: The Efficient Transformer". Both layers map
`(batch, n, d_model) -> (batch, n, d_model)`; with `masked=True` they take
`(x, mask) -> y`, `mask` True at real tokens, shape (batch, n) or (batch, 1,
1, n). Per head, queries, keys and values are `x @ w_q (+ b_q)`, ...; the
heads are projected back with `w_o` and summed. Weights, biases and the
predict-mode memory: see `minitrax.layers.efficient_base`. The computations
on arrays are in `minitrax.layers.attention_kernels`.

Shared query/key (always in LSH attention, optional in `SelfAttention`): the
keys are the queries normalised to unit RMS, so a query would score highest
against itself; a token therefore does not attend to itself (1e5 is
subtracted from that score) unless nothing else is visible to it (1e9 is
subtracted from the scores of hidden keys, as in Trax).

`chunk_len` means what it means in Trax: *local* attention. The sequence is
cut into chunks of `chunk_len`; each chunk attends to itself and to
`n_chunks_before` / `n_chunks_after` neighbouring chunks, wrapping around at
the ends. `chunk_len=None` is full attention.

`LSHSelfAttention` hashes the shared query/keys with random rotations
(angular LSH: the bucket of v is the argmax of `[vR, -vR]`) into `n_buckets`
buckets, `n_hashes` times. The rounds' positions, each sorted by (bucket,
position), are laid end to end and cut into chunks of `chunk_len`, which
attend as above; the rounds are combined weighted by the softmax of their
log-sum-exp scores. `chunk_len=None` is one chunk: exact attention.

Computing options: `n_parallel_heads` (that many (example, head) pairs at a
time in a rematerialised loop; None: all at once), `use_python_loop` and
`use_reference_code` (Trax's slower paths for debugging) select how the same
numbers are computed; they never change the result.

Randomness. The rotations depend only on the key the layer is called with:
the hash key comes from the `rng` given to `pure_fn` (the Trainer gives one
per step; `layer(x)` gives the layer's init key). When `rng` is None, a fixed
key made from an int32 seed drawn at `init` and kept in the state is used.
Same key, same hashes; the reversible backward pass passes the forward's key,
so it re-hashes identically (Trax instead advances a per-head key kept in the
state and stores the buckets there). The rotations of all heads are one draw,
so they do not depend on `n_parallel_heads`. Dropout masks are drawn per
(example, head) (Trax shares one across examples and heads).

Predict mode: see `efficient_base`. LSH layers attend *exactly* over their
memory (Trax picks at most `n_hashes * chunk_len * (1 + n_chunks_before)`
remembered positions by their buckets); the two agree whenever the memory is
no longer than that.
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_int
from minitrax.errors import ArgumentError
from minitrax.layers.attention_kernels import (auto_n_buckets, bucketed_attention, check_buckets,
                                               chunked_attention, hash_with_rotations,
                                               length_normalized, local_attention, random_rotations,
                                               total_buckets)
from minitrax.layers.chunk_loops import chunk_map
from minitrax.layers.efficient_base import EfficientAttention, check_optional_int


def over_heads(one, args, n_pairs, n_parallel):
  """`vmap(one)(*args)` over (example, head) pairs, `n_parallel` at a time when given.

  Every leaf of `args` has a leading axis of `n_pairs` (None leaves stay
  None). With `n_parallel`, groups of pairs run one after another in a
  rematerialised loop (less memory, the same numbers).

  Args:
    one: A function of one pair's arguments (leaves without the leading axis).
    args: A tuple of arrays (or pytrees, or None) with leading axis `n_pairs`.
    n_pairs: batch x n_heads; must be a multiple of `n_parallel` if that is
      smaller (`ArgumentError` otherwise).
    n_parallel: None/0 for all pairs in one vmap, else the group size.
  """
  if not n_parallel or n_parallel >= n_pairs:
    return jax.vmap(one)(*args)
  if n_pairs % n_parallel:
    raise ArgumentError(f'n_parallel_heads={n_parallel} must divide batch x n_heads = {n_pairs}')
  groups = jax.tree.map(lambda a: a.reshape((n_pairs // n_parallel, n_parallel) + a.shape[1:]),
                        args)
  out = chunk_map(lambda _, a: jax.vmap(one)(*a), (), groups)
  return out.reshape((n_pairs,) + out.shape[2:])


def _pairs(q, k, v, valid, rng):
  """(batch, h, n, d) arrays -> per-(example, head) arguments with a leading b * h axis."""
  b, h = q.shape[:2]

  def flat(a):
    return None if a is None else a.reshape((b * h,) + a.shape[2:])

  return (flat(q), flat(k), flat(v), None if valid is None else jnp.repeat(valid, h, axis=0),
          None if rng is None else jax.random.split(rng, b * h))


# (Trax 1.4's default of a slot, Trax 1.2's default of the argument it holds) for the slots from
# `mode` to `use_python_loop`, which hold `predict_mem_len` .. `use_reference_code` in 1.2's order.
_SLOT_DEFAULTS = (('train', None), (None, None), (None, 0.0), (0.0, 0.0), (0.0, None),
                  (None, False), (False, False))


def _shifted(*values):
  """Trax 1.2's arguments from 1.4's slots; a slot left at 1.4's default gets 1.2's default."""
  return tuple(d12 if v is d14 or v == d14 else v for v, (d14, d12) in zip(values, _SLOT_DEFAULTS))


class SelfAttention(EfficientAttention):
  """Multi-head self-attention, full or chunked (local): (batch, n, d) -> (batch, n, d).

  n_in = 1 (2 with `masked=True`: `(x, mask)`), n_out = 1. Weights `(w_q,
  w_k, w_v, w_o)`, or `(w_q, w_v, w_o)` with `share_qk=True`, then the
  biases with `bias=True`; no state outside predict mode. See the module
  docstring. The signature is Trax 1.4's; Trax 1.2's lacks `bias`, and a
  call with Trax 1.2's positional order (a mode string in `bias`'s place) is
  read in that order.

  Args:
    n_heads: number of heads.
    d_qk: query/key width per head.
    d_v: value width per head.
    share_qk: keys are the RMS-normalised queries; no attention to self.
    causal: position i sees positions <= i.
    masked: take a padding mask as a second input.
    chunk_len: None (full attention) or the chunk length of local attention;
      n must be a multiple of it.
    n_chunks_before, n_chunks_after: neighbouring chunks each chunk sees.
    bias: add learned biases (initialised to 0) to queries, keys and values.
    mode: 'train', 'eval' or 'predict' (needs `causal`).
    predict_mem_len: positions the predict memory holds; default
      `chunk_len * (1 + n_chunks_before)`.
    predict_drop_len: positions dropped when it is full; default `chunk_len`
      (None without chunks: never drop, error when full).
    attention_dropout: dropout on attention probabilities (training only).
    output_dropout: dropout on the output, one feature mask for all
      positions (training only).
    n_parallel_heads, use_python_loop, use_reference_code: how to compute
      (see the module docstring); the results are the same.
  """

  def __init__(self, n_heads=2, d_qk=64, d_v=64, share_qk=False, causal=False, masked=False,
               chunk_len=None, n_chunks_before=0, n_chunks_after=0, bias=False, mode='train',
               predict_mem_len=None, predict_drop_len=None, attention_dropout=0.0,
               output_dropout=0.0, n_parallel_heads=None, use_python_loop=False,
               use_reference_code=False):
    if bias in ('train', 'eval', 'predict'):  # Trax 1.2's order: `mode` where 1.4 put `bias`
      mode, (predict_mem_len, predict_drop_len, attention_dropout, output_dropout, n_parallel_heads,
             use_python_loop,
             use_reference_code) = bias, _shifted(mode, predict_mem_len, predict_drop_len,
                                                  attention_dropout, output_dropout,
                                                  n_parallel_heads, use_python_loop)
      bias = False
    if chunk_len is None and (n_chunks_before or n_chunks_after):
      raise ArgumentError(f'SelfAttention: n_chunks_before={n_chunks_before} and n_chunks_after='
                          f'{n_chunks_after} need chunk_len (chunked attention); got '
                          f'chunk_len=None')
    super().__init__('SelfAttention', n_heads=n_heads, d_qk=d_qk, d_v=d_v, share_qk=share_qk,
                     causal=causal, masked=masked, chunk_len=chunk_len,
                     n_chunks_before=n_chunks_before, n_chunks_after=n_chunks_after, bias=bias,
                     mode=mode, predict_mem_len=predict_mem_len, predict_drop_len=predict_drop_len,
                     attention_dropout=attention_dropout, output_dropout=output_dropout,
                     n_parallel_heads=n_parallel_heads, use_python_loop=use_python_loop,
                     use_reference_code=use_reference_code)

  def _head_fn(self, n, d_qk, rng, state):
    """`(one, None)`: `one(q, k, v, extra, valid, rng)` attends for one (example, head) pair."""
    del d_qk, rng, state
    chunk_len = self._chunk_len
    if chunk_len is not None and n % chunk_len:
      raise ArgumentError(f'{self.name}: sequence length {n} is not a multiple of '
                          f'chunk_len={chunk_len}; pad the inputs or pick another chunk_len')
    dropout = self._attention_dropout

    def one(qh, kh, vh, extra, ok, r):  # one head of one example: (n, d)
      del extra
      kh = length_normalized(qh) if kh is None else kh
      if chunk_len is None:
        return chunked_attention(qh, kh, vh, causal=self._causal, exclude_self=self._share_qk,
                                 valid=ok, dropout=dropout, rng=r)
      return local_attention(qh, kh, vh, chunk_len=chunk_len, n_chunks_before=self._n_chunks_before,
                             n_chunks_after=self._n_chunks_after, causal=self._causal,
                             exclude_self=self._share_qk, valid=ok, dropout=dropout, rng=r)

    return one, None

  def _attend(self, q, k, v, valid, rng, attention_rng, state):
    one, _ = self._head_fn(q.shape[2], q.shape[3], rng, state)
    k = None if self._share_qk else k

    def pair(qh, kh, vh, ok, r):
      return one(qh, kh, vh, None, ok, r)

    out = over_heads(pair, _pairs(q, k, v, valid, attention_rng), q.shape[0] * q.shape[1],
                     self._n_parallel_heads)
    return out.reshape(q.shape[:3] + (v.shape[-1],))

  def _prompt_attention(self, q, k, v, rng):
    m = q.shape[2]
    if self._chunk_len is not None and m > self._chunk_len:
      return self._attend(q, k, v, None, None, rng, ())
    return chunked_attention(q, k, v, causal=True, exclude_self=self._share_qk)


class _LSHAttention(EfficientAttention):
  """LSH self-attention; `LSHSelfAttention` (Trax 1.2) and `LSHSelfAttention14` set defaults."""

  def __init__(self, name, *, share_qk, n_hashes, n_buckets, max_length_for_buckets, **kwargs):
    if share_qk not in ('unused', True):
      raise ArgumentError(f"{name}: queries and keys are always shared in LSH attention; "
                          f"share_qk must be 'unused' or True, got {share_qk!r}")
    check_int(name, 'n_hashes', n_hashes)
    check_buckets(name, n_buckets)
    check_optional_int(name, 'max_length_for_buckets', max_length_for_buckets)
    super().__init__(name, share_qk=True, **kwargs)
    self._n_hashes = n_hashes
    self._n_buckets = tuple(n_buckets) if isinstance(n_buckets, list) else n_buckets

  def _train_state(self, rng, x):
    del x
    return jax.random.randint(rng, (), 0, 2**31 - 1, jnp.int32)

  def _prompt_attention(self, q, k, v, rng):
    return chunked_attention(q, k, v, causal=True, exclude_self=True)

  def _chunk(self, n):
    if self._chunk_len is None:
      return None
    total = self._n_hashes * n
    chunk = min(self._chunk_len, total)
    if total % chunk:
      raise ArgumentError(f'{self.name}: n_hashes x sequence length = {self._n_hashes} x {n} is '
                          f'not a multiple of chunk_len={chunk}; pad the inputs or pick another '
                          f'chunk_len')
    return chunk

  def _head_fn(self, n, d_qk, rng, state):
    """`(one, rotations)` for one (example, head) pair, or `(None, None)` without chunks.

    `one(qk, k, v, rotations_of_the_head, valid, rng)` (k unused); the
    rotations of all heads are one draw, (n_heads, d_qk, n_hashes, r/2).
    """
    chunk = self._chunk(n)
    if chunk is None:
      return None, None
    n_buckets = self._n_buckets or auto_n_buckets(n, self._chunk_len)
    hash_rng = jax.random.key(state) if rng is None else jax.random.fold_in(rng, 0)
    # One draw for all heads, outside any vmap/loop: the rotations do not depend
    # on how the heads are batched (JAX's 'rbg' keys draw differently under vmap).
    rotations = random_rotations(hash_rng, d_qk, n_buckets, self._n_hashes, n_sets=self._n_heads)

    def one(qk, k, vh, rot, ok, r):  # one head of one example
      del k
      buckets = hash_with_rotations(qk, rot, n_buckets)
      if ok is not None:  # padding gets a bucket of its own
        buckets = jnp.where(ok[None, :], buckets, total_buckets(n_buckets))
      return bucketed_attention(qk, vh, buckets, chunk_len=chunk,
                                n_chunks_before=self._n_chunks_before,
                                n_chunks_after=self._n_chunks_after, causal=self._causal, valid=ok,
                                dropout=self._attention_dropout, rng=r)

    return one, rotations

  def _attend(self, q, k, v, valid, rng, attention_rng, state):
    b, h, n, _ = q.shape
    one, rotations = self._head_fn(n, q.shape[3], rng, state)
    if one is None:  # one chunk holding everything: exact attention
      return chunked_attention(q, length_normalized(q), v, causal=self._causal, exclude_self=True,
                               valid=None if valid is None else valid[:, None, :],
                               dropout=self._attention_dropout, rng=attention_rng)
    rotations = rotations[jnp.tile(jnp.arange(h), b)]

    def pair(qk, vh, rot, ok, r):
      return one(qk, None, vh, rot, ok, r)

    qf, _, vf, okf, rf = _pairs(q, None, v, valid, attention_rng)
    out = over_heads(pair, (qf, vf, rotations, okf, rf), b * h, self._n_parallel_heads)
    return out.reshape((b, h, n, -1))


class LSHSelfAttention(_LSHAttention):
  """Multi-head LSH self-attention, Trax 1.2's signature: (batch, n, d) -> (batch, n, d).

  n_in = 1 (2 with `masked=True`), n_out = 1. Shared query/keys; weights
  `(w_qk, w_v, w_o)` (then `(b_qk, b_v)` with `bias=True`). State: an int32
  seed for the hash key used when no rng is given (train/eval), or the
  memory (predict). Each head has its own rotations; the examples of a batch
  share them. See the module docstring. Trax 1.2's defaults: `chunk_len=None`
  (exact attention) and `n_buckets=256`; `LSHSelfAttention14` has Trax 1.4's
  (`chunk_len=128`, `n_buckets=None`) and argument order.

  Args:
    n_heads, d_qk, d_v, causal, masked, bias, mode: As for `SelfAttention`.
    predict_mem_len, predict_drop_len, attention_dropout, output_dropout: As for `SelfAttention`.
    n_parallel_heads, use_python_loop, use_reference_code: As for `SelfAttention`.
    share_qk: 'unused' or True (queries and keys are always shared).
    chunk_len: None (one chunk: exact attention), or positions per chunk
      after sorting; `n_hashes * n` must be a multiple of it.
    n_chunks_before, n_chunks_after: neighbouring chunks each chunk sees.
    n_hashes: hashing rounds.
    n_buckets: buckets per round: an even int, a tuple of even ints
      (factorised), 1 (no hashing), or None for `auto_n_buckets(n, chunk_len)`.
    max_length_for_buckets: (Trax 1.4) the length Trax sized its stored
      buckets for; accepted, with no effect on the outputs.
  """

  def __init__(self, n_heads=2, d_qk=64, d_v=64, share_qk='unused', causal=False, chunk_len=None,
               n_chunks_before=1, n_chunks_after=0, n_hashes=1, n_buckets=256, mode='train',
               predict_mem_len=2048, predict_drop_len=256, attention_dropout=0.0,
               output_dropout=0.0, n_parallel_heads=1, use_python_loop=False,
               use_reference_code=False, *, masked=False, max_length_for_buckets=None, bias=False):
    super().__init__('LSHSelfAttention', n_heads=n_heads, d_qk=d_qk, d_v=d_v, share_qk=share_qk,
                     causal=causal, masked=masked, chunk_len=chunk_len,
                     n_chunks_before=n_chunks_before, n_chunks_after=n_chunks_after,
                     n_hashes=n_hashes, n_buckets=n_buckets, mode=mode,
                     predict_mem_len=predict_mem_len, predict_drop_len=predict_drop_len,
                     attention_dropout=attention_dropout, output_dropout=output_dropout,
                     max_length_for_buckets=max_length_for_buckets, bias=bias,
                     n_parallel_heads=n_parallel_heads, use_python_loop=use_python_loop,
                     use_reference_code=use_reference_code)


class LSHSelfAttention14(_LSHAttention):
  """`LSHSelfAttention` with Trax 1.4's signature and defaults (`minitrax.trax14`'s meaning).

  n_in = 1 (2 with `masked=True`), n_out = 1: (batch, n, d) -> (batch, n, d).
  Defaults `chunk_len=128`, `n_buckets=None`.

  Args:
    n_heads, d_qk, d_v, share_qk, causal, masked, mode: As for `LSHSelfAttention`.
    chunk_len, n_chunks_before, n_chunks_after, n_hashes, n_buckets: As there.
    predict_mem_len, predict_drop_len, attention_dropout, output_dropout: As there.
    max_length_for_buckets, bias, n_parallel_heads: As there.
    use_python_loop, use_reference_code: As there.
  """

  def __init__(self, n_heads=2, d_qk=64, d_v=64, share_qk='unused', causal=False, masked=False,
               chunk_len=128, n_chunks_before=1, n_chunks_after=0, n_hashes=1, n_buckets=None,
               mode='train', predict_mem_len=2048, predict_drop_len=256, attention_dropout=0.0,
               output_dropout=0.0, max_length_for_buckets=None, bias=False, n_parallel_heads=1,
               use_python_loop=False, use_reference_code=False):
    super().__init__('LSHSelfAttention', n_heads=n_heads, d_qk=d_qk, d_v=d_v, share_qk=share_qk,
                     causal=causal, masked=masked, chunk_len=chunk_len,
                     n_chunks_before=n_chunks_before, n_chunks_after=n_chunks_after,
                     n_hashes=n_hashes, n_buckets=n_buckets, mode=mode,
                     predict_mem_len=predict_mem_len, predict_drop_len=predict_drop_len,
                     attention_dropout=attention_dropout, output_dropout=output_dropout,
                     max_length_for_buckets=max_length_for_buckets, bias=bias,
                     n_parallel_heads=n_parallel_heads, use_python_loop=use_python_loop,
                     use_reference_code=use_reference_code)


__all__ = ['SelfAttention', 'LSHSelfAttention', 'LSHSelfAttention14', 'over_heads']
