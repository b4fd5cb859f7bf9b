"""`SparseFF`: a feed-forward block with one active unit per block (Terraformer, Trax 1.4).

The dense block `Dense(d_ff), Relu, Dense(d_model)` is cut into `d_ff /
n_elements_in_block` blocks of `n_elements_in_block` units. A low-rank
controller `logits = x m1 m2 + mb` (shape (blocks, n_elements_in_block))
picks one unit per block; only those units are computed:

    mid[x, y] = (x w1)[x, y] * onehot(pick)[x, y];  out = relu(mid) w2 + b2.

Training uses Gumbel-softmax noise (`temperature`) for the pick and, with
probability `quant_prob` per call, the one-hot pick with a straight-through
gradient (`onehot + softmax - stop_gradient(softmax)`), otherwise the soft
softmax mask; eval and predict use the argmax. Weights, Trax's order and
shapes: the controller's `(m1 (d_model, d_lowrank), m2 (d_lowrank, blocks,
n_elements_in_block), mb (blocks, n_elements_in_block))`, then the main
block's `(w1 (d_model, blocks, n_elements_in_block), w2 (n_elements_in_block,
blocks, d_model), b2 (d_model,))`.

Trax remembers the picks of the forward pass for the reversible backward
pass; minitrax's reversible layers re-run the forward pass with the same key,
which draws the same picks, so nothing is remembered (no state).
"""

import jax
import jax.numpy as jnp

from minitrax.checks import check_flag, check_int, check_mode
from minitrax.errors import ArgumentError
from minitrax.layers.base import Fn, Layer
from minitrax.layers.combinators import Chunk, Select, Serial
from minitrax.layers.combinators_more import BatchLeadingAxes
from minitrax.layers.core import Dropout
from minitrax.layers.initializers import GlorotUniformInitializer, RandomNormalInitializer


def check_probability(who, what, value):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
    raise ArgumentError(f'{who}: {what} must be a number in [0, 1], got {value!r}')


class _SparseFFController(Layer):
  """(x (rows, d), recalled picks) -> picks (rows, blocks) [, softmax mask (rows, blocks, k)]."""

  def __init__(self, d_ff, n_elements_in_block, d_lowrank, temperature, use_bfloat16, mode,
               kernel_initializer, bias_initializer, also_return_nondiscrete_output):
    super().__init__(n_in=2, n_out=2 if also_return_nondiscrete_output else 1,
                     name=f'_SparseFFController_{d_ff}')
    self._d_ff, self._k, self._d_lowrank = d_ff, n_elements_in_block, d_lowrank
    self._temperature = temperature if mode == 'train' else 0.0
    self._mode, self._bf16 = mode, use_bfloat16
    self._kernel_initializer, self._bias_initializer = kernel_initializer, bias_initializer
    self._soft = also_return_nondiscrete_output

  def init_weights_and_state(self, input_signature, rng):
    d_model, blocks = input_signature[0].shape[-1], self._d_ff // self._k
    r1, r2, rb = jax.random.split(rng, 3)
    m1 = self._kernel_initializer((d_model, self._d_lowrank), r1)
    m2 = self._kernel_initializer((self._d_lowrank, self._d_ff), r2)
    mb = self._bias_initializer((self._d_ff,), rb)
    weights = (m1, m2.reshape((self._d_lowrank, blocks, self._k)), mb.reshape((blocks, self._k)))
    return tuple(w.astype(jnp.bfloat16) if self._bf16 else w for w in weights), ()

  def forward_with_state(self, x, weights, state, rng):
    x, recalled = x
    m1, m2, mb = weights
    x = x.reshape((-1, x.shape[-1]))
    logits = jnp.einsum('bd,dl,lxy->bxy', x, m1, m2) + jnp.broadcast_to(
        mb[None], (x.shape[0],) + mb.shape)
    if not self._soft:
      picks = jnp.argmax(logits, axis=-1)
    else:
      log_mask = jax.nn.log_softmax(logits, axis=-1)
      mask = jnp.exp(log_mask)
      if self._temperature == 0.0:
        picks = jnp.argmax(log_mask, axis=-1)
      else:
        if rng is None:
          raise ArgumentError(f"{self.name}: mode='train' draws Gumbel noise and needs an rng")
        u = jax.random.uniform(rng, mask.shape, jnp.float32, 1e-6, 1.0 - 1e-6)
        picks = jnp.argmax(log_mask - jnp.log(-jnp.log(u)) * self._temperature, axis=-1)
    if self._mode == 'train':
      picks = jnp.where(recalled == -1, picks, recalled)
    return ((picks, mask) if self._soft else picks), state


class _SparseFFMain(Layer):
  """(picks, [mask,] x) -> (picks, y): the block computed on the picked units only."""

  def __init__(self, d_ff, n_elements_in_block, quant_prob, use_bfloat16, big_weights_in_bfloat16,
               mode, kernel_initializer, bias_initializer, multiply_by_controller_output,
               kernel_scaling):
    with_mask = mode == 'train' or multiply_by_controller_output
    super().__init__(n_in=3 if with_mask else 2, n_out=2, name=f'_SparseFFMain_{d_ff}')
    self._d_ff, self._k, self._quant_prob, self._mode = d_ff, n_elements_in_block, quant_prob, mode
    self._bf16, self._big_bf16 = use_bfloat16, big_weights_in_bfloat16
    self._kernel_initializer, self._bias_initializer = kernel_initializer, bias_initializer
    self._multiply, self._scaling, self._with_mask = (multiply_by_controller_output, kernel_scaling,
                                                      with_mask)

  def init_weights_and_state(self, input_signature, rng):
    d_model, blocks = input_signature[-1].shape[-1], self._d_ff // self._k
    r1, r2, rb = jax.random.split(rng, 3)
    w1 = self._kernel_initializer((d_model, self._d_ff), r1).reshape((d_model, blocks, self._k))
    w2 = self._kernel_initializer((self._d_ff, d_model), r2).reshape((self._k, blocks, d_model))
    b2 = self._bias_initializer((d_model,), rb)
    if self._scaling:
      w2 = w2 * (self._k**0.5)
    big = jnp.bfloat16 if self._bf16 or self._big_bf16 else w1.dtype
    return (w1.astype(big), w2.astype(big), b2.astype(jnp.bfloat16) if self._bf16 else b2), ()

  def forward_with_state(self, x, weights, state, rng):
    picks, mask, x = x if self._with_mask else (x[0], None, x[1])
    w1, w2, b2 = weights
    shape = x.shape
    x = x.reshape((-1, shape[-1]))
    chosen = jax.nn.one_hot(picks, self._k, dtype=jnp.float32)
    if self._mode == 'train':
      if rng is None:
        raise ArgumentError(f"{self.name}: mode='train' draws which blocks are quantised and "
                            f"needs an rng")
      chosen = jax.lax.stop_gradient(chosen) + mask - jax.lax.stop_gradient(mask)
      quantised = jax.random.uniform(rng, (), jnp.float32) < self._quant_prob
      chosen = jnp.where(quantised, chosen, mask)
      scale = jax.lax.stop_gradient(jnp.where(quantised, mask, jnp.ones_like(mask)))
    else:
      scale = mask
    mid = jnp.einsum('bd,dxy->bxy', x, w1) * chosen.astype(x.dtype)
    relu = jnp.maximum(mid, 0)
    if self._multiply:
      relu = relu * scale.astype(relu.dtype)
    y = jnp.einsum('bxy,yxd->bd', relu, w2)
    y = y + jnp.broadcast_to(b2.astype(y.dtype), y.shape)
    return (picks, y.reshape(shape)), state


def SparseFF(  # pylint: disable=invalid-name
    d_ff, n_elements_in_block=32, d_lowrank=64, temperature=0.1, quant_prob=0.3, use_bfloat16=False,
    big_weights_in_bfloat16=False, mode='train', kernel_initializer=GlorotUniformInitializer(),
    bias_initializer=RandomNormalInitializer(1e-6), dropout_rate=0.0, dropout_shared_axes=None,
    ff_chunk_size=0, multiply_by_controller_output=False, kernel_scaling=False):
  """A feed-forward block with one active unit per block: (..., d_model) -> (..., d_model).

  n_in = n_out = 1; see the module docstring. The leading axes are folded
  into one (`BatchLeadingAxes`). 'train' mode needs an rng.

  Args:
    d_ff: Units of the dense block; a multiple of `n_elements_in_block`.
    n_elements_in_block: Units per block, of which one is active.
    d_lowrank: Inner width of the controller's low-rank map `m1 m2`.
    temperature: Scale of the Gumbel noise on the controller's picks in
      training (0: no noise); no noise in other modes.
    quant_prob: Probability in [0, 1] that a training call uses the one-hot
      (straight-through) picks rather than the soft mask.
    use_bfloat16: Keep all weights in bfloat16.
    big_weights_in_bfloat16: Keep only w1 and w2 in bfloat16.
    mode: 'train', 'eval' or 'predict' (the last two pick by argmax).
    kernel_initializer: `init(shape, rng)` for m1, m2, w1 and w2.
    bias_initializer: `init(shape, rng)` for mb and b2.
    dropout_rate: Dropout rate on the block's output (training only).
    dropout_shared_axes: Axes sharing one dropout mask entry, or None.
    ff_chunk_size: If > 0, run the block on chunks of that many rows (positions).
    multiply_by_controller_output: Scale the kept units by the controller's softmax.
    kernel_scaling: Multiply w2 by sqrt(n_elements_in_block) at init.
  """
  who = 'SparseFF'
  check_int(who, 'd_ff', d_ff)
  check_int(who, 'n_elements_in_block', n_elements_in_block)
  check_int(who, 'd_lowrank', d_lowrank)
  check_mode(who, 'mode', mode)
  check_probability(who, 'quant_prob', quant_prob)
  check_flag(who, 'multiply_by_controller_output', multiply_by_controller_output)
  if d_ff % n_elements_in_block:
    raise ArgumentError(f'{who}: d_ff={d_ff} must be a multiple of n_elements_in_block='
                        f'{n_elements_in_block}')
  soft = mode == 'train' or multiply_by_controller_output
  controller = _SparseFFController(d_ff, n_elements_in_block, d_lowrank, temperature, use_bfloat16,
                                   mode, kernel_initializer, bias_initializer, soft)
  main = _SparseFFMain(d_ff, n_elements_in_block, quant_prob, use_bfloat16, big_weights_in_bfloat16,
                       mode, kernel_initializer, bias_initializer, multiply_by_controller_output,
                       kernel_scaling)
  blocks = d_ff // n_elements_in_block
  recall = Fn('_RecallQuantMaskInReverse', lambda x: (x, -jnp.ones(
      (x.shape[0], blocks), jnp.int32)), n_out=2)
  body = Serial(Select((0, 1, 0)), controller, main, Select([1, 0]),
                Dropout(rate=dropout_rate, shared_axes=dropout_shared_axes, mode=mode),
                Select([1, 0]))
  return BatchLeadingAxes(
      Serial(recall, Chunk(body, ff_chunk_size), Select([1], n_in=2), name='SparseFF'))


__all__ = ['SparseFF']
