"""Byte-level text ids, as Trax's `ByteTextEncoder` with two reserved ids.

A string becomes its UTF-8 bytes, each shifted up by 2, followed by an
end-of-sequence id: `PAD_ID = 0` is padding (loss weight 0), `EOS_ID = 1` ends
a text, and byte `b` is id `b + 2`, so there are `BYTE_VOCAB_SIZE = 258` ids.

>>> encode_bytes('hi').tolist()
[106, 107, 1]
>>> decode_bytes([106, 107, 1, 0, 0])
'hi'
"""

import numpy as np

from minitrax.errors import DataError

__all__ = [
    'PAD_ID', 'EOS_ID', 'BYTE_VOCAB_SIZE', 'encode_bytes', 'decode_bytes', 'chunk_ids', 'lm_weights'
]

PAD_ID = 0
EOS_ID = 1
_OFFSET = 2
BYTE_VOCAB_SIZE = 256 + _OFFSET


def encode_bytes(text, eos=True):
  """Byte ids of `text` (str, UTF-8 encoded, or bytes): int32 array `(n_bytes + eos,)`."""
  if isinstance(text, np.ndarray) and text.ndim == 0:
    text = text.item()
  if isinstance(text, str):
    text = text.encode('utf-8')
  if not isinstance(text, (bytes, bytearray)):
    raise DataError(f'encode_bytes: expected str or bytes, got {type(text).__name__}')
  ids = np.frombuffer(bytes(text), np.uint8).astype(np.int32) + _OFFSET
  return np.append(ids, np.int32(EOS_ID)) if eos else ids


def decode_bytes(ids):
  """The text of byte ids, stopping at the first `EOS_ID`; padding is skipped."""
  out = bytearray()
  for i in np.asarray(ids).reshape(-1).tolist():
    if i == EOS_ID:
      break
    if i >= _OFFSET:
      out.append(i - _OFFSET)
  return out.decode('utf-8', errors='replace')


def chunk_ids(ids, length):
  """Cuts ids `(n,)` into rows of `length`, the last one padded with `PAD_ID`.

  Returns:
    int32 array `(ceil(n / length), length)`.
  """
  ids = np.asarray(ids, np.int32)
  n_rows = -(-len(ids) // length)
  out = np.full((n_rows, length), PAD_ID, np.int32)
  out.reshape(-1)[:len(ids)] = ids
  return out


def lm_weights(ids):
  """Loss weights of padded ids: 1.0 where `ids != PAD_ID`, else 0.0 (float32, same shape)."""
  return (np.asarray(ids) != PAD_ID).astype(np.float32)
