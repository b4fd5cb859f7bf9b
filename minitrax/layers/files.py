"""A layer's own checkpoint files: weights, state and the input signature they fit.

`Layer.save_to_file` writes a minitrax checkpoint (see `minitrax.checkpoint`)
holding `{'weights': ..., 'state': ..., 'input_signature': ...}` (state left
out with `weights_only`); `Layer.init_from_file` reads the signature back to
initialise a layer that was not initialised yet (Trax 1.4's checkpoints
record one too), then loads the trees (`trees.load`).
"""

from minitrax import checkpoint
from minitrax import trax_import
from minitrax.shapes import ShapeDtype, signature_from_data, signature_to_data


def save(file_name, weights, state=None, input_signature=None):
  """Writes `weights` (and `state`, `input_signature` unless None) to `file_name` atomically."""
  tree = {'weights': weights}
  if state is not None:
    tree['state'] = state
  if input_signature is not None:
    tree['input_signature'] = signature_to_data(input_signature)
  checkpoint.save(file_name, tree)


def signature_in_file(file_name, n_in=None):
  """The input signature a checkpoint file records, or None.

  Minitrax files written by `save` record it; so do Trax 1.4's
  `model.pkl.gz` (read without running the pickle, `minitrax.trax_import`),
  as a tuple that may hold a whole batch: with `n_in`, the first `n_in`
  entries are the layer's (a bare `ShapeDtype` for `n_in == 1`).
  """
  if trax_import.looks_like_trax(file_name):
    sig = trax_import.read_checkpoint(file_name).input_signature
    return None if sig is None else _first(_as_shape_dtypes(sig), n_in)
  try:
    with open(file_name, 'rb') as f:
      is_minitrax = f.read(len(checkpoint.MAGIC)) == checkpoint.MAGIC
  except OSError:
    return None  # `trees.load` reports the file
  tree = checkpoint.load(file_name) if is_minitrax else None
  if not isinstance(tree, dict) or 'input_signature' not in tree:
    return None
  return signature_from_data(tree['input_signature'], file_name)


def _first(sig, n_in):
  """The first `n_in` inputs of a tuple signature (bare for one)."""
  if n_in is None or not isinstance(sig, tuple):
    return sig
  return sig[0] if n_in == 1 else sig[:n_in]


def _as_shape_dtypes(sig):
  """A signature of objects with `shape` and `dtype` (Trax's ShapeDtype) as `ShapeDtype`s."""
  if isinstance(sig, (list, tuple)):
    return tuple(_as_shape_dtypes(s) for s in sig)
  return ShapeDtype(tuple(sig.shape), sig.dtype)


__all__ = ['save', 'signature_in_file']
