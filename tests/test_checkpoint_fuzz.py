"""Fuzzing the checkpoint reader: mutated real checkpoints load or raise MinitraxError, only.

A seeded corpus of small real checkpoints (a layer's file, a run's model.pkl,
a tree of every type) is mutated by bit flips, truncations, insertions,
splices, repeats and type swaps (of bytes, and of nodes of the tree), most of
them with the checksum recomputed (as a forger would) so that the payload
decoder sees them. Every input must
load or raise an error of the minitrax family, within 1 s; whatever loads is
then checked as a run checkpoint (schema and tree paths), under the same rule.
"""

import hashlib
import struct
import time

import numpy as np
import pytest

from minitrax import checkpoint
from minitrax.errors import MinitraxError
from minitrax.layers import Dense, L2Loss, Relu, Serial
from minitrax.optimizers import Adam
from minitrax.shapes import ShapeDtype
from minitrax.supervised import run_checkpoint, run_schema
from minitrax.supervised.history import History
from minitrax.supervised.run_state import new_run

# Lead bytes of every msgpack type, and a few hostile lengths, for insertions and type swaps.
_LEADS = [
    0x00, 0x7f, 0x80, 0x81, 0x90, 0x91, 0xa0, 0xa3, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
    0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xd5, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde,
    0xdf, 0xe0, 0xff
]
_SNIPPETS = [
    b'\xdd\xff\xff\xff\xff', b'\xdf\x7f\xff\xff\xff', b'\xc6\xff\xff\xff\xf0', b'\xd4\x02\x00',
    b'\xd6\xff\x00\x00\x00\x01', b'\xd4\x01\x00', b'\x91' * 200, b'\x82\xa1a\x01\xa1a\x02',
    b'\x81\xc0\x01', b'\x81\xcb\x00\x00\x00\x00\x00\x00\x00\x00\x01', b'\xc7\x0a\x01\x93\xa7float32'
]


def _corpus():
  """`(name, checkpoint bytes)` of small real checkpoints, and the run's fresh `RunState`."""
  model = Serial(Dense(3), Relu(), Dense(2))
  signature = (ShapeDtype((2, 4)), ShapeDtype((2, 2)))
  run = new_run(Serial(model, L2Loss()), Adam(0.01), signature, 3)
  run.history.append('eval', 'metrics/loss', 5, 0.5)
  tree = run_checkpoint.to_tree(run._replace(step=5, input_position=5, eval_position=2))
  layer_file = {'weights': tree['weights'], 'state': tree['state'], 'input_signature': [[2, 4]]}
  every_type = {
      'arrays': {
          name: np.arange(3).astype(dtype) for name, dtype in checkpoint._DTYPES.items()  # pylint: disable=protected-access
      },
      'nested': ((), [1, -3, 2.5, None, True, 'text', b'raw'], {3: (np.ones(2),), -7: 'x'}),
      'big': [2**40, -2**40, 2**64 - 1, 1e300]
  }
  files = [('run', tree), ('layer', layer_file), ('every type', every_type)]
  return [(name, checkpoint.dumps(t)) for name, t in files], run


_VALUES = [
    None, True, -5, 2**31, 2**63, 1.5,
    float('nan'), 'abc', b'x', [], (), {}, {'k': 1}, [[1, 'x']], [[-1, 0.5]],
    np.zeros(2, np.float32),
    np.zeros((), np.int8)
]


def _nodes(tree):
  """The number of nodes of `tree` (itself included)."""
  if isinstance(tree, dict):
    return 1 + sum(_nodes(v) for v in tree.values())
  if isinstance(tree, (list, tuple)):
    return 1 + sum(_nodes(v) for v in tree)
  return 1


def _swap_node(tree, index, value):
  """`tree` with its node number `index` (pre-order) replaced by `value`."""
  if index == 0:
    return value
  index -= 1
  items = list(tree.items()) if isinstance(tree, dict) else list(enumerate(tree))
  for i, (key, child) in enumerate(items):
    size = _nodes(child)
    if index < size:
      items[i] = (key, _swap_node(child, index, value))
      break
    index -= size
  if isinstance(tree, dict):
    return dict(items)
  return type(tree)(child for _, child in items)


def _split(data):
  size = struct.unpack('<I', data[8:12])[0]
  return data[:12 + size], data[12 + size:]


def _forge(payload):
  """Checkpoint bytes around `payload` with a correct header and checksum."""
  header = {
      'format_version': 1, 'payload_size': len(payload),
      'sha256': hashlib.sha256(payload).hexdigest()
  }
  import msgpack  # pylint: disable=import-outside-toplevel
  packed = msgpack.packb(header)
  return checkpoint.MAGIC + struct.pack('<I', len(packed)) + packed + payload


def _mutate(rng, data, other):
  """One mutation of `data` (`other`: another corpus file, for splices)."""
  data = bytearray(data)
  kind = rng.integers(7)
  pos = int(rng.integers(len(data) + 1))
  if kind == 0:  # bit flips
    for _ in range(int(rng.integers(1, 4)) if data else 0):
      i = int(rng.integers(len(data)))
      data[i] ^= 1 << int(rng.integers(8))
  elif kind == 1:  # truncation
    del data[pos:]
  elif kind == 2:  # insertion of random bytes or of a hostile snippet
    snippet = (_SNIPPETS[rng.integers(len(_SNIPPETS))] if rng.integers(2) else bytes(
        rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8)))
    data[pos:pos] = snippet
  elif kind == 3:  # splice with another file
    data[pos:] = other[int(rng.integers(len(other) + 1)):]
  elif kind == 4:  # repeat a range
    end = min(len(data), pos + int(rng.integers(1, 64)))
    data[pos:pos] = data[pos:end]
  elif kind == 5:  # type swap: one byte becomes the lead of another msgpack type
    if data:
      data[min(pos, len(data) - 1)] = _LEADS[rng.integers(len(_LEADS))]
  else:  # deletion of a range
    del data[pos:pos + int(rng.integers(1, 16))]
  return bytes(data)


def _check_one(data, fresh):
  """Loads `data`; if it loads, checks it as a run checkpoint. Only MinitraxError may escape."""
  try:
    tree = checkpoint.loads(data, source='fuzz.pkl')
    if isinstance(tree, dict):
      if not (isinstance(tree.get('format'), str) and tree['format'] == run_checkpoint.FORMAT):
        return  # what run_checkpoint.read refuses
      run_schema.check_fields(tree, 'fuzz.pkl')
      History.from_dict(tree.get('history', {}), 'fuzz.pkl')
      for key, field in run_checkpoint._TREES.items():  # pylint: disable=protected-access
        checkpoint.tree_mismatches(tree[key], getattr(fresh, field), root=key)
  except MinitraxError:
    pass


def _fuzz(seed, count):
  """Runs `count` mutated inputs; returns the slowest time of one."""
  corpus, fresh = _corpus()
  for _, data in corpus:  # the corpus itself is valid
    assert isinstance(checkpoint.loads(data), dict)
  rng = np.random.default_rng(seed)
  slowest = 0.0
  for i in range(count):
    data = corpus[rng.integers(len(corpus))][1]
    other = corpus[rng.integers(len(corpus))][1]
    forge = rng.integers(3)
    if forge == 2:  # a type swap in the tree: a valid file whose field or leaf is another type
      tree = checkpoint.loads(data)
      swapped = _swap_node(tree, int(rng.integers(1, _nodes(tree))),
                           _VALUES[rng.integers(len(_VALUES))])
      data = checkpoint.dumps(swapped)
    header, payload = _split(data)
    for _ in range(int(rng.integers(0 if forge == 2 else 1, 4))):
      payload = _mutate(rng, payload, _split(other)[1]) if forge else _mutate(rng, data, other)
    mutated = _forge(payload) if forge else payload
    start = time.perf_counter()
    try:
      _check_one(mutated, fresh)
    except Exception as e:  # pylint: disable=broad-except
      raise AssertionError(f'input {i} of seed {seed} ({mutated[:80]!r}...) raised '
                           f'{type(e).__name__}: {e}') from e
    slowest = max(slowest, time.perf_counter() - start)
    del header
  return slowest


def test_mutated_checkpoints_raise_only_minitrax_errors_quickly():
  start = time.perf_counter()
  slowest = _fuzz(seed=13, count=3000)
  assert slowest < 1.0
  assert time.perf_counter() - start < 30


@pytest.mark.slow
def test_a_hundred_thousand_mutated_checkpoints_in_bounded_memory():

  def rss():
    with open('/proc/self/status') as f:
      return next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmRSS:'))

  _fuzz(seed=1, count=2000)  # warm up caches and imports
  before = rss()
  slowest = max(_fuzz(seed=seed, count=10_000) for seed in range(100, 110))
  assert slowest < 1.0
  assert rss() - before < 64 * 2**20
