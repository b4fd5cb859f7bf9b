"""Angular LSH for Reformer attention: bucket counts, random rotations and hashing.

A vector v goes to the bucket argmax of `[vR, -vR]` for a random matrix R
(Kitaev, Kaiser and Levskaya, 2020); several factors of buckets multiply.
Re-exported by `minitrax.layers.attention_kernels`, whose attention functions
use the buckets.
"""

import math
import numbers

import jax
import jax.numpy as jnp

from minitrax.errors import ArgumentError

# ------------------------------------------------------------------ argument checks


def check_buckets(who, n_buckets):
  """Raises `ArgumentError` naming `who` unless `n_buckets` is a valid bucket count.

  Args:
    who: The layer or function named in the message.
    n_buckets: Valid: None (chosen later), 1 (no hashing), an even int >= 2,
      or a tuple/list of even ints >= 2 (factorised hashing).
  """
  if n_buckets is None or n_buckets == 1:
    return
  factors = n_buckets if isinstance(n_buckets, (tuple, list)) else [n_buckets]
  for f in factors:
    if not isinstance(f, numbers.Integral) or isinstance(f, bool) or f < 2 or f % 2:
      raise ArgumentError(f'{who}: n_buckets must be None, 1, an even int >= 2 or a tuple of '
                          f'them (factorised hashing), got {n_buckets!r}')


# ------------------------------------------------------------------ hashing


def auto_n_buckets(n, chunk_len):
  """Trax's default: `2 * max(1, n // chunk_len)` buckets, factorised in two when > 128.

  Args:
    n: The sequence length.
    chunk_len: Positions per chunk (a positive int).

  Returns:
    An even int, or a pair of even ints whose product is about the count.
  """
  n_buckets = 2 * max(1, n // chunk_len)
  if n_buckets <= 128:
    return n_buckets
  first = 2**math.ceil(math.log2(math.sqrt(n_buckets)))
  return (first, 2 * (n_buckets // (2 * first)))


def _factors(n_buckets):
  return list(n_buckets) if isinstance(n_buckets, (tuple, list)) else [n_buckets]


def random_rotations(rng, d, n_buckets, n_hashes=1, n_sets=None):
  """The random matrices of `hash_vectors`: (d, n_hashes, r/2), r = sum of the bucket factors.

  With `n_sets`, that many independent sets in one draw: (n_sets, d,
  n_hashes, r/2). The draw depends only on `rng` and the shape.

  Args:
    rng: A JAX key.
    d: The depth of the vectors to hash.
    n_buckets: An even int, or a tuple of even ints (one rotation per factor).
    n_hashes: Number of hashing rounds.
    n_sets: None for one set, else the number of independent sets.
  """
  shape = (d, n_hashes, sum(_factors(n_buckets)) // 2)
  return jax.random.normal(rng, shape if n_sets is None else (n_sets,) + shape, jnp.float32)


HASH_CHUNK = 2**14  # positions hashed per loop step by `hash_with_rotations`


def hash_with_rotations(vecs, rotations, n_buckets):
  """Buckets of vecs (..., n, d) for rotations (d, n_hashes, r/2): (..., n_hashes, n) int32.

  No gradient flows through the buckets; `HASH_CHUNK` positions are hashed at a time.

  Args:
    vecs: (..., n, d) vectors to hash (computed in float32).
    rotations: (d, n_hashes, r/2) from `random_rotations`, made for `n_buckets`.
    n_buckets: As for `random_rotations`; 1 puts everything in bucket 0.
  """
  n, d = vecs.shape[-2:]
  if n_buckets == 1:
    return jnp.zeros(vecs.shape[:-2] + (rotations.shape[1], n), jnp.int32)
  vecs = jax.lax.stop_gradient(vecs)
  if n <= HASH_CHUNK or n % HASH_CHUNK:
    return _hash(vecs, rotations, n_buckets)
  chunks = jnp.moveaxis(vecs.reshape(vecs.shape[:-2] + (n // HASH_CHUNK, HASH_CHUNK, d)), -3, 0)
  out = jax.lax.map(lambda c: _hash(c, rotations, n_buckets), chunks)  # (k, ..., h, chunk)
  out = jnp.moveaxis(out, 0, -2)
  return out.reshape(out.shape[:-2] + (n,))


def _hash(vecs, rotations, n_buckets):
  """`hash_with_rotations` in one piece. argmax([p, -p]) is argmax(p) if max(p) >= -min(p) (the
  first maximum wins), else f/2 + argmin(p): [p, -p] is never built.

  The rotations are one (n, d) x (d, n_hashes r/2) matmul whose rows stay
  position-major, and the buckets are transposed at the end: with the rounds
  as the outer axis of the product, XLA's CPU backend transposes it before
  the argmax (about twice the time at 256 buckets).
  """
  d, n_hashes, half = rotations.shape
  rotated = jnp.matmul(vecs.astype(jnp.float32), rotations.reshape(d, n_hashes * half))
  rotated = rotated.reshape(vecs.shape[:-1] + (n_hashes, half))
  buckets, start, scale = 0, 0, 1
  for f in _factors(n_buckets):
    part = rotated[..., start:start + f // 2]
    top = jnp.max(part, axis=-1) >= -jnp.min(part, axis=-1)
    digit = jnp.where(top, jnp.argmax(part, axis=-1), f // 2 + jnp.argmin(part, axis=-1))
    buckets, start, scale = buckets + scale * digit.astype(jnp.int32), start + f // 2, scale * f
  return jnp.swapaxes(buckets, -1, -2)


def hash_vectors(vecs, n_buckets, rng, n_hashes=1):
  """Angular LSH buckets of vectors: (..., n, d) -> (..., n_hashes, n) int32.

  Each round draws a random matrix R (d, r/2) from `rng` and puts v in bucket
  `argmax([v R, -v R])`, so v and a positive multiple of v share a bucket.
  With `n_buckets` a tuple (r_1, r_2, ...), one rotation per factor gives
  digits combined as `b_1 + r_1 b_2 + r_1 r_2 b_3 + ...` (prod(r_i)
  buckets). `n_buckets=1` puts everything in bucket 0.

  Args:
    vecs: (..., n, d) vectors.
    n_buckets: An even int, a tuple of even ints, or 1.
    rng: A JAX key for the rotations (equal keys give equal buckets).
    n_hashes: Number of hashing rounds.
  """
  rotations = random_rotations(rng, vecs.shape[-1], n_buckets, n_hashes)
  return hash_with_rotations(vecs, rotations, n_buckets)


def total_buckets(n_buckets):
  """The number of buckets: `n_buckets` itself, or the product of its factors.

  Args:
    n_buckets: An int, or a tuple/list of ints (factorised hashing).
  """
  return math.prod(_factors(n_buckets))


__all__ = [
    'check_buckets', 'auto_n_buckets', 'random_rotations', 'hash_with_rotations', 'hash_vectors',
    'total_buckets', 'HASH_CHUNK'
]
