"""ShapeDtype and signature()."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax.errors import ShapeError
from minitrax.shapes import ShapeDtype, signature, splice_signatures


def test_repr_matches_trax():
  assert repr(ShapeDtype((1, 1), dtype=np.int32)) == 'ShapeDtype{shape:(1, 1), dtype:int32}'
  assert repr(ShapeDtype((3,))) == 'ShapeDtype{shape:(3,), dtype:float32}'


def test_equality_and_hash():
  assert ShapeDtype([2, 3]) == ShapeDtype((2, 3), np.float32)
  assert ShapeDtype((2, 3)) != ShapeDtype((2, 3), np.int32)
  assert ShapeDtype((2, 3)) != ShapeDtype((3, 2))
  assert len({ShapeDtype((2,)), ShapeDtype((2,))}) == 1


def test_signature_of_arrays_tuples_and_tracers():
  assert signature(np.zeros((2, 3), np.int32)) == ShapeDtype((2, 3), np.int32)
  assert signature((jnp.ones(2), np.float32(1))) == (ShapeDtype((2,)), ShapeDtype(()))
  seen = []
  jax.jit(lambda x: seen.append(signature(x)) or x)(jnp.ones((4,), jnp.bfloat16))
  assert seen == [ShapeDtype((4,), jnp.bfloat16)]
  assert signature(jax.ShapeDtypeStruct((5,), jnp.int32)) == ShapeDtype((5,), np.int32)


def test_bad_shapes_raise():
  message = r'^ShapeDtype: shape dimensions must be >= 0, got \(2, -1\)$'
  with pytest.raises(ShapeError, match=message):
    ShapeDtype((2, -1))
  with pytest.raises(ShapeError, match='expected an array or a tuple of arrays, got str'):
    signature('abc')


def test_replace_and_splice():
  sig = ShapeDtype((2, 3))
  assert sig.replace(dtype=np.int32) == ShapeDtype((2, 3), np.int32)
  assert sig.replace(shape=(4,)).size == 4
  assert splice_signatures(sig, (sig, sig)) == (sig, sig, sig)
