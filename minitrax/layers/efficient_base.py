"""The machinery shared by `SelfAttention`, `LSHSelfAttention` and `EncDecAttention`.

Arguments, their checks, the per-head weights and the predict-mode memory of
the memory-efficient attention layers of Trax's `efficient_attention.py`
(Trax 1.2's `efficient_attention_v2.py`). The layers themselves are in
`minitrax.layers.lsh_attention` and `minitrax.layers.efficient_attention`.

Weights hold one slice per head, stacked on axis 0 (as Trax stacks the heads'
weights): `w_q` (n_heads, d_model, d_qk), `w_k` (n_heads, d_model, d_qk),
`w_v` (n_heads, d_model, d_v), `w_o` (n_heads, d_v, d_model), in the order
`(w_q, w_k, w_v, w_o)`, or `(w_q, w_v, w_o)` when queries and keys share
`w_q`. With `bias=True` (Trax 1.4) zero-initialised biases follow:
`(..., b_q, b_k, b_v)` or `(..., b_q, b_v)`, each (n_heads, d).

Predict mode (causal self-attention only) keeps the keys and values of the
last `predict_mem_len` positions (Trax keeps the inputs; the outputs are the
same) and a counter. A call with `m <= predict_drop_len` new positions (and
`m < predict_mem_len`) first drops the oldest `predict_drop_len` positions
if the memory would overflow, then attends, causally, over the memory. A
longer call must start a sequence (its position must be 0, as in Trax): it
attends over its own positions as in eval mode and keeps the last
`predict_mem_len` of them. `predict_drop_len=None` (where Trax would refuse
the configuration) never drops: running past the memory is then an error
(see `minitrax.layers.attention`), and `predict_capacity()` reports it.
"""

import math

import jax
import jax.numpy as jnp

from minitrax.checks import check_flag, check_int, check_mode, check_rate
from minitrax.errors import ArgumentError
from minitrax.layers.attention import check_positions
from minitrax.layers.attention_kernels import cached_attention, length_normalized
from minitrax.layers.base import Layer
from minitrax.layers.chunk_loops import chunk_map
from minitrax.layers.core import poison
from minitrax.layers.masks import keep_mask

# ------------------------------------------------------------------ argument checks


def check_optional_int(who, what, value, minimum=1):
  """`value` if it is None or an int >= `minimum` (Trax's 0 for 'not set' is accepted as None)."""
  if value is None:
    return None
  return check_int(who, what, value, minimum)


def check_parallel_heads(who, n_parallel_heads, n_heads):
  """Trax's rule: None/0, or a multiple or a divisor of `n_heads`."""
  if not n_parallel_heads:
    return None
  check_int(who, 'n_parallel_heads', n_parallel_heads)
  if n_parallel_heads % n_heads and n_heads % n_parallel_heads:
    raise ArgumentError(f'{who}: n_parallel_heads must be a multiple or a divisor of '
                        f'n_heads={n_heads}, got {n_parallel_heads}')
  return n_parallel_heads


def predict_lengths(who, causal, chunk_len, n_chunks_before, predict_mem_len, predict_drop_len):
  """`(mem_len, drop_len)` of predict mode, with Trax's defaults and checks.

  With `chunk_len`, Trax keeps `chunk_len * (1 + n_chunks_before)` positions
  and drops `chunk_len` at a time. `drop_len` None means: never drop.
  """
  if not causal:
    raise ArgumentError(f"{who}: mode='predict' needs causal=True (fast decoding is for "
                        f"causal self-attention)")
  mem_len = predict_mem_len or (chunk_len * (1 + n_chunks_before) if chunk_len else None)
  if mem_len is None:
    raise ArgumentError(f"{who}: mode='predict' needs predict_mem_len (or chunk_len), got "
                        f"predict_mem_len={predict_mem_len!r} and chunk_len={chunk_len!r}")
  drop_len = predict_drop_len or chunk_len
  if drop_len is not None and not 0 < drop_len <= mem_len:
    raise ArgumentError(f'{who}: predict_drop_len must be in [1, predict_mem_len={mem_len}], '
                        f'got {drop_len}')
  return mem_len, drop_len


def _check_flags(who, **flags):
  for what, value in flags.items():
    check_flag(who, what, value)


# ------------------------------------------------------------------ the base layer


class EfficientAttention(Layer):
  """Per-head projections, output dropout and the predict memory (see the module docstring).

  Subclasses set `n_in` through `masked`, and override `_attend(q, k, v,
  valid, rng, attention_rng, state)` (`q`, `v`: (batch, n_heads, n, d); `k`
  None when shared; `valid`: None or (batch, n) bool) returning (batch,
  n_heads, n, d_v). All arguments but `name` are keyword-only and checked here.

  Args:
    name: The layer's name, also named in its errors.
    n_heads, d_qk, d_v, share_qk, causal, masked, bias: As for `SelfAttention`.
    chunk_len, n_chunks_before, n_chunks_after, mode: As for `SelfAttention`.
    predict_mem_len, predict_drop_len: As for `SelfAttention` (checked by
      `predict_lengths` in 'predict' mode).
    attention_dropout, output_dropout: As for `SelfAttention`; 0 outside 'train'.
    n_parallel_heads: None/0, or a multiple or divisor of `n_heads`.
    use_python_loop, use_reference_code: Flags, checked and otherwise ignored.
  """

  def __init__(self, name, *, n_heads, d_qk, d_v, share_qk, causal, masked, chunk_len,
               n_chunks_before, n_chunks_after, bias, mode, predict_mem_len, predict_drop_len,
               attention_dropout, output_dropout, n_parallel_heads, use_python_loop,
               use_reference_code):
    for what, value in (('n_heads', n_heads), ('d_qk', d_qk), ('d_v', d_v)):
      check_int(name, what, value)
    _check_flags(name, share_qk=share_qk, causal=causal, masked=masked, bias=bias,
                 use_python_loop=use_python_loop, use_reference_code=use_reference_code)
    chunk_len = check_optional_int(name, 'chunk_len', chunk_len)
    check_int(name, 'n_chunks_before', n_chunks_before, 0)
    check_int(name, 'n_chunks_after', n_chunks_after, 0)
    check_optional_int(name, 'predict_mem_len', predict_mem_len)
    check_optional_int(name, 'predict_drop_len', predict_drop_len)
    check_rate(name, 'attention_dropout', attention_dropout)
    check_rate(name, 'output_dropout', output_dropout)
    check_mode(name, 'mode', mode)
    if mode == 'predict':
      predict_mem_len, predict_drop_len = predict_lengths(name, causal, chunk_len, n_chunks_before,
                                                          predict_mem_len, predict_drop_len)
    super().__init__(n_in=2 if masked else 1, n_out=1, name=name)
    self._n_heads, self._d_qk, self._d_v = n_heads, d_qk, d_v
    self._share_qk, self._causal, self._masked = bool(share_qk), bool(causal), bool(masked)
    self._chunk_len, self._bias = chunk_len, bool(bias)
    self._n_chunks_before, self._n_chunks_after = n_chunks_before, n_chunks_after
    self._mode, self._mem_len, self._drop_len = mode, predict_mem_len, predict_drop_len
    self._n_parallel_heads = check_parallel_heads(name, n_parallel_heads, n_heads)
    train = mode == 'train'
    self._attention_dropout = float(attention_dropout) if train else 0.0
    self._output_dropout = float(output_dropout) if train else 0.0

  @property
  def mode(self):
    return self._mode

  @property
  def max_len(self):
    """Positions the predict-mode memory holds (`predict_mem_len`)."""
    return self._mem_len

  def predict_capacity(self):
    """Positions decodable in predict mode: `predict_mem_len` if nothing is dropped, else None."""
    if self._mode != 'predict' or self._drop_len is not None:
      return None
    return self._mem_len

  # ---------------------------------------------------------------- weights

  def _kernel(self, rng, d_in, d):
    # Glorot uniform over the fans of all heads together (as Trax).
    lim = math.sqrt(6.0 / (d_in + d * self._n_heads))
    return jax.random.uniform(rng, (self._n_heads, d_in, d), jnp.float32, -lim, lim)

  def _weights(self, rng, d_model, d_kv=None):
    """The weights tuple (see the module docstring); `d_kv` is the width keys/values come from."""
    d_kv = d_model if d_kv is None else d_kv
    r = jax.random.split(rng, 4)
    w_q, w_v = self._kernel(r[0], d_model, self._d_qk), self._kernel(r[2], d_kv, self._d_v)
    w_o = jnp.swapaxes(self._kernel(r[3], d_model, self._d_v), -1, -2)
    biases = ()
    if self._bias:
      zeros = [jnp.zeros((self._n_heads, d), jnp.float32) for d in (self._d_qk, self._d_v)]
      biases = tuple(zeros) if self._share_qk else (zeros[0], zeros[0], zeros[1])
    if self._share_qk:
      return (w_q, w_v, w_o) + biases
    return (w_q, self._kernel(r[1], d_kv, self._d_qk), w_v, w_o) + biases

  def init_weights_and_state(self, input_signature, rng):
    x = input_signature[0] if self._masked else input_signature
    if x.ndim != 3:
      raise ArgumentError(f'{self.name}: input must be (batch, length, d_model), got shape '
                          f'{x.shape}')
    r_weights, r_state = jax.random.split(rng)
    weights = self._weights(r_weights, x.shape[-1])
    if self._mode == 'predict':
      shape = (x.shape[0], self._n_heads, self._mem_len)
      return weights, (jnp.zeros(shape + (self._d_qk,),
                                 jnp.float32), jnp.zeros(shape + (self._d_v,),
                                                         jnp.float32), jnp.zeros((), jnp.int32))
    return weights, self._train_state(r_state, x)

  def _train_state(self, rng, x):
    del rng, x
    return ()

  # ---------------------------------------------------------------- forward

  def _inputs(self, x, weights):
    x, mask = (x[0], x[1]) if self._masked else (x, None)
    d_model = weights[0].shape[1]
    if x.ndim != 3 or x.shape[-1] != d_model:
      raise ArgumentError(f'{self.name}: input must be (batch, length, {d_model}), got shape '
                          f'{x.shape}')
    return x, None if mask is None else self._valid(mask, x.shape[:2])

  def _valid(self, mask, shape):
    if mask.size != shape[0] * shape[1]:
      raise ArgumentError(f'{self.name}: mask must have shape (batch, length) = {shape} '
                          f'(or (batch, 1, 1, length)), got {mask.shape}')
    return mask.reshape(shape).astype(bool)

  def _project(self, x, w, b):
    """(batch, n, d_model), (h, d_model, d), (h, d) or None -> (batch, h, n, d)."""
    y = jnp.einsum('bnd,hde->bhne', x, w)
    return y if b is None else y + jnp.broadcast_to(b[None, :, None, :], y.shape)

  def _qkv(self, x, weights, kv=None):
    kv = x if kv is None else kv
    n_w = 3 if self._share_qk else 4
    w, b = weights[:n_w], (weights[n_w:] if self._bias else (None,) * (n_w - 1))
    q = self._project(x, w[0], b[0])
    k = None if self._share_qk else self._project(kv, w[1], b[1])
    v = self._project(kv, w[-2], b[-1])
    return q, k, v, w[-1]

  def _dropout_rngs(self, rng):
    if self._attention_dropout == 0.0 and self._output_dropout == 0.0:
      return None, None
    if rng is None:
      raise ArgumentError(f"{self.name}: mode='train' with dropout needs an rng, got rng=None; "
                          f"pass a JAX key or use mode='eval'")
    return tuple(jax.random.split(jax.random.fold_in(rng, 1), 2))

  def _output(self, o, w_o, dtype, output_rng):
    """Heads projected back and summed; output dropout: one feature mask for all positions."""
    return self._dropped(jnp.einsum('bhne,hed->bnd', o.astype(dtype), w_o), output_rng)

  def _dropped(self, y, output_rng):
    if self._output_dropout > 0.0:
      keep = keep_mask(output_rng, 1.0 - self._output_dropout, (y.shape[-1],))
      y = jnp.where(keep, y / (1.0 - self._output_dropout), 0.0).astype(y.dtype)
    return y

  def forward_with_state(self, x, weights, state, rng):
    x, valid = self._inputs(x, weights)
    attention_rng, output_rng = self._dropout_rngs(rng)
    group = self._heads_per_step(x.shape[0])
    if group and self._mode != 'predict':
      one, extras = self._head_fn(x.shape[1], self._d_qk, rng, state)
      if one is not None:
        y = self._looped_heads(x, valid, weights, attention_rng, one, extras, group)
        return self._dropped(y, output_rng), state
    q, k, v, w_o = self._qkv(x, weights)
    if self._mode == 'predict':
      o, state = self._predict(q, k, v, state, attention_rng)
    else:
      o = self._attend(q, k, v, valid, rng, attention_rng, state)
      state = self._new_state(state, q, valid, rng)
    return self._output(o, w_o, x.dtype, output_rng), state

  # ---------------------------------------------------------------- one head at a time

  def _heads_per_step(self, batch):
    """Heads per step of the loop over heads, or None to attend with all heads at once.

    With `n_parallel_heads` below batch x n_heads, every step projects,
    attends and projects back a group of heads (for the whole batch).
    """
    p = self._n_parallel_heads
    if not p or p >= batch * self._n_heads:
      return None
    return math.gcd(self._n_heads, max(1, p // batch))

  def _head_fn(self, n, d_qk, rng, state):
    """`(one, extras)`: one (example, head) pair's attention and per-head arrays (or None).

    `one(q, k, v, extra, valid, rng)` with q (n, d_qk), k (n, d_qk) or None
    when shared, v (n, d_v), `extra` the head's slice of `extras`, valid
    None or (n,) bool, rng None or a key; returns (n, d_v). `(None, None)`:
    no loop over heads (the subclass attends all heads at once).
    """
    del n, d_qk, rng, state
    return None, None

  def _looped_heads(self, x, valid, weights, attention_rng, one, extras, group):
    """`sum_h one-head attention @ w_o[h]`, `group` heads per step of a `chunk_map`: (b, n, d).

    Only x (and the per-head weights) are kept for the backward pass; the
    queries, keys and values of a head exist while its step runs.
    """
    b, h = x.shape[0], self._n_heads
    n_w = 3 if self._share_qk else 4
    biases = tuple(weights[n_w:]) if self._bias else (None,) * (n_w - 1)
    rngs = None
    if attention_rng is not None:  # pair (example e, head j) gets key e * h + j, as in _pairs
      rngs = jnp.swapaxes(jax.random.split(attention_rng, b * h).reshape((b, h)), 0, 1)
    per_head = jax.tree.map(lambda a: a.reshape((h // group, group) + a.shape[1:]),
                            (tuple(weights[:n_w]), biases, extras, rngs))

    def head(x, valid, args):
      w, bias, extra, r = args

      def project(w, b):
        y = jnp.einsum('bnd,de->bne', x, w)
        return y if b is None else y + jnp.broadcast_to(b, y.shape)

      q, v = project(w[0], bias[0]), project(w[-2], bias[-1])
      k = None if self._share_qk else project(w[1], bias[1])
      o = jax.vmap(lambda q, k, v, ok, r: one(q, k, v, extra, ok, r))(q, k, v, valid, r)
      return jnp.einsum('bne,ed->bnd', o.astype(x.dtype), w[-1])

    def step(consts, args):  # the group's heads one after another (no stacked outputs)
      ys = [head(*consts, jax.tree.map(lambda a, j=j: a[j], args)) for j in range(group)]
      return sum(ys[1:], ys[0])

    return chunk_map(step, (x, valid), per_head, reduce=True)

  def _new_state(self, state, q, valid, rng):
    del q, valid, rng
    return state

  def _attend(self, q, k, v, valid, rng, attention_rng, state):
    raise NotImplementedError

  # ---------------------------------------------------------------- predict mode

  def _predict(self, q, k, v, state, rng):
    keys, values, pos = state
    m = q.shape[2]
    if keys.shape[0] != q.shape[0]:
      raise ArgumentError(f'{self.name}: the predict cache was made for batch {keys.shape[0]}, '
                          f'got batch {q.shape[0]}; re-initialise the model with this batch size')
    k = length_normalized(q) if self._share_qk else k
    if self._drop_len is not None and (m > self._drop_len or m >= self._mem_len):
      return self._predict_prompt(q, k, v, pos, rng)
    if self._drop_len is not None:  # make room: drop the oldest drop_len positions
      roll = pos + m > self._mem_len

      def dropped(a):
        kept = jnp.concatenate([a[:, :, self._drop_len:],
                                jnp.zeros_like(a[:, :, :self._drop_len])], axis=2)
        return jnp.where(roll, kept, a)

      keys, values, pos = dropped(keys), dropped(values), jnp.where(roll, pos - self._drop_len, pos)
    elif m > self._mem_len:
      raise ArgumentError(f'{self.name}: {m} positions in one call exceed predict_mem_len='
                          f'{self._mem_len}')
    bad = check_positions(pos, m, self._mem_len, self.name)
    keys = jax.lax.dynamic_update_slice(keys, k.astype(keys.dtype), (0, 0, pos, 0))
    values = jax.lax.dynamic_update_slice(values, v.astype(values.dtype), (0, 0, pos, 0))
    o = cached_attention(q, keys, values, pos, exclude_self=self._share_qk)
    return poison(o, bad), (keys, values, pos + m)

  def _predict_prompt(self, q, k, v, pos, rng):
    """A long call at the start of a sequence: eval-mode attention, memory = its last positions."""
    m, mem = q.shape[2], self._mem_len
    bad = None
    if isinstance(pos, jax.core.Tracer):
      bad = pos != 0
    elif int(pos) != 0:
      raise ArgumentError(f'{self.name}: a call with {m} positions (more than predict_drop_len='
                          f'{self._drop_len}) must start a sequence, but the memory is at '
                          f'position {int(pos)}; re-initialise the state first')
    o = self._prompt_attention(q, k, v, rng)

    def memory(a):
      a = a[:, :, -mem:]
      return jnp.pad(a, ((0, 0), (0, 0), (0, mem - a.shape[2]), (0, 0))).astype(jnp.float32)

    return poison(o, bad), (memory(k), memory(v), jnp.asarray(min(m, mem), jnp.int32))

  def _prompt_attention(self, q, k, v, rng):
    raise NotImplementedError


__all__ = ['EfficientAttention', 'predict_lengths', 'check_parallel_heads', 'check_optional_int']
