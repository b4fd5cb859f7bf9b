"""Rotary positional embeddings (Su et al., 2021, "RoFormer"; Trax 1.4's `Rotate`).

Each position p turns pairs of features by angles `p * f_i`, with frequencies
`f_i = 10000^(-2i / d)`, i < d / 2. Feature i is paired with feature i + d/2
(the two halves of the vector): `y = x * cos(p f) + rotate_half(x) * sin(p f)`,
where `rotate_half([a, b]) = [-b, a]` and `f` is repeated for both halves. A
dot product of two rotated vectors then depends on their positions only
through their difference.
"""

import jax.numpy as jnp

from minitrax.errors import ArgumentError
from minitrax.layers.base import Fn


def rotate(x):
  """Rotary embedding of positions 0..l-1: (batch, l, d) -> (batch, l, d), d even.

  Positions always count from 0 (as in Trax: in predict mode each call starts
  again at position 0).
  """
  if x.ndim != 3 or x.shape[-1] % 2:
    raise ArgumentError(f'Rotate: input must be (batch, length, d) with d even, got shape '
                        f'{x.shape}')
  length, d = x.shape[1], x.shape[2]
  inv_freq = jnp.exp(jnp.arange(0, d, 2, dtype=jnp.float32) * -(jnp.log(10000.0) / d))
  angles = jnp.arange(length, dtype=jnp.float32)[:, None] * inv_freq[None, :]
  angles = jnp.concatenate([angles, angles], axis=-1)[None]  # (1, l, d)
  half = d // 2
  turned = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  cos = jnp.broadcast_to(jnp.cos(angles), x.shape)
  sin = jnp.broadcast_to(jnp.sin(angles), x.shape)
  return (x * cos + turned * sin).astype(x.dtype)


def Rotate():  # pylint: disable=invalid-name
  """Rotary positional embedding as a layer: (batch, l, d) -> (batch, l, d); n_in = n_out = 1."""
  return Fn('Rotate', rotate)


__all__ = ['rotate', 'Rotate']
