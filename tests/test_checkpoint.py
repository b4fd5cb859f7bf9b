"""The msgpack checkpoint format: round trips, atomicity, refusal of bad files."""

import os
import pickle
import struct
import time
import tracemalloc

import jax.numpy as jnp
import ml_dtypes
import msgpack
import numpy as np
import pytest

from minitrax import checkpoint
from minitrax.errors import CheckpointError


def _tree():
  rng = np.random.default_rng(0)
  arrays = {
      name: (rng.standard_normal((2, 3)) * 10).astype(dtype)
      for name, dtype in checkpoint._DTYPES.items()
  }  # pylint: disable=protected-access
  return {
      'arrays': arrays,
      'scalar': np.float32(1.5),
      'rank0': np.array(7, np.int32),
      'empty': np.zeros((0, 4), np.float32),
      'jax': jnp.arange(6, dtype=jnp.bfloat16).reshape(2, 3),
      'nested': ((), [1, 2.5, None, True, 'text', b'raw'], {3: (np.ones(2),)}),
      'list_of_tuples': [(1, 2), ()],
  }


def _assert_same(a, b, path='root'):
  assert type(a) is type(b) or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)), path
  if isinstance(a, dict):
    assert sorted(a, key=str) == sorted(b, key=str), path
    for k in a:
      _assert_same(a[k], b[k], f'{path}[{k!r}]')
  elif isinstance(a, (list, tuple)):
    assert len(a) == len(b), path
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_same(x, y, f'{path}[{i}]')
  elif isinstance(a, np.ndarray):
    assert a.dtype == b.dtype and a.shape == b.shape, path
    np.testing.assert_array_equal(a, b)
  else:
    assert a == b, path


def test_round_trip_every_dtype_and_nested_tree(tmp_path):
  tree = _tree()
  path = tmp_path / 'ckpt'
  checkpoint.save(path, tree)
  loaded = checkpoint.load(path)
  assert set(loaded['arrays']) == set(checkpoint.ALLOWED_DTYPES)
  assert loaded['arrays']['bfloat16'].dtype == ml_dtypes.bfloat16
  expected = dict(tree, scalar=np.asarray(tree['scalar']), jax=np.asarray(tree['jax']))
  _assert_same(loaded, expected)


def test_tuples_and_lists_stay_distinct():
  loaded = checkpoint.loads(checkpoint.dumps(([1, (2,)], (), [()])))
  assert loaded == ([1, (2,)], (), [()])
  assert isinstance(loaded, tuple) and isinstance(loaded[0], list)


def test_disallowed_types_name_the_path():
  with pytest.raises(CheckpointError, match=r"cannot save a object at \['a'\]\[1\]"):
    checkpoint.dumps({'a': (1, object())})
  with pytest.raises(CheckpointError, match=r"dtype object at \['b'\].*allowed dtypes: bool"):
    checkpoint.dumps({'b': np.array([None])})
  with pytest.raises(CheckpointError, match=r'dict key \(1, 2\) at <root> is a tuple'):
    checkpoint.dumps({(1, 2): 0})


def test_crash_between_write_and_rename_keeps_old_file(tmp_path, monkeypatch):
  path = tmp_path / 'model.pkl'
  checkpoint.save(path, {'step': 1})

  def crash(src, dst):
    raise KeyboardInterrupt('simulated crash before rename')

  monkeypatch.setattr(os, 'replace', crash)
  with pytest.raises(KeyboardInterrupt):
    checkpoint.save(path, {'step': 2, 'w': np.ones(1000)})
  monkeypatch.undo()
  assert checkpoint.load(path) == {'step': 1}
  assert os.listdir(tmp_path) == ['model.pkl']  # the temporary file is cleaned up


def test_temporary_file_lives_beside_target(tmp_path, monkeypatch):
  seen = []
  real_replace = os.replace

  def spy(src, dst):
    seen.append((os.path.dirname(src), os.path.dirname(dst)))
    real_replace(src, dst)

  monkeypatch.setattr(os, 'replace', spy)
  checkpoint.save(tmp_path / 'sub' / 'c.ckpt', [1])
  assert seen == [(str(tmp_path / 'sub'), str(tmp_path / 'sub'))]


@pytest.mark.parametrize('data, message', [
    (b'', 'the file is empty; it is not a minitrax checkpoint'),
    (b'\x00\x01random bytes here', 'the file is not a minitrax checkpoint'),
    (pickle.dumps({'weights': 1}), 'the file is a Python pickle .*never unpickles'),
    (b'MTRXCKPT\x05', r'the file is truncated \(header missing\)'),
])
def test_foreign_files_are_refused(tmp_path, data, message):
  path = tmp_path / 'bad.ckpt'
  path.write_bytes(data)
  with pytest.raises(CheckpointError, match=f'{path}: {message}'):
    checkpoint.load(path)


def test_truncated_and_corrupted_files(tmp_path):
  good = checkpoint.dumps({'w': np.arange(100, dtype=np.float32)})
  path = tmp_path / 'c.ckpt'
  path.write_bytes(good[:-10])
  with pytest.raises(CheckpointError, match='truncated or has trailing data'):
    checkpoint.load(path)
  corrupted = bytearray(good)
  corrupted[-20] ^= 0xFF
  path.write_bytes(bytes(corrupted))
  with pytest.raises(CheckpointError, match=r'corrupted \(payload checksum mismatch\)'):
    checkpoint.load(path)


def _with_header(payload, version=checkpoint.FORMAT_VERSION):
  import hashlib  # pylint: disable=import-outside-toplevel
  header = msgpack.packb({
      'format_version': version, 'payload_size': len(payload),
      'sha256': hashlib.sha256(payload).hexdigest()
  })
  return checkpoint.MAGIC + struct.pack('<I', len(header)) + header + payload


def test_newer_format_version_is_refused():
  data = _with_header(msgpack.packb(1), version=checkpoint.FORMAT_VERSION + 1)
  with pytest.raises(
      CheckpointError, match='x.ckpt: written in checkpoint format version 2; '
      'this minitrax reads versions 1 to 1. Upgrade minitrax.'):
    checkpoint.loads(data, source='x.ckpt')


def test_unknown_dtype_in_file_is_refused():
  record = msgpack.packb(['object', [1], b'\x00' * 8], use_bin_type=True)
  data = _with_header(msgpack.packb(msgpack.ExtType(1, record), use_bin_type=True))
  with pytest.raises(CheckpointError, match="array dtype 'object' is not allowed"):
    checkpoint.loads(data)


def test_array_shape_must_match_its_bytes():
  record = msgpack.packb(['float32', [1000, 1000], b'\x00' * 8], use_bin_type=True)
  data = _with_header(msgpack.packb(msgpack.ExtType(1, record), use_bin_type=True))
  with pytest.raises(CheckpointError, match=r'shape \(1000, 1000\) and dtype float32 does '
                     'not match its 8 bytes'):
    checkpoint.loads(data)


@pytest.mark.parametrize(
    'payload',
    [
        b'\xc6\xff\xff\xff\xf0' + b'x' * 16,  # bin32 declaring ~4 GiB
        b'\xdd\xff\xff\xff\xf0' + b'\x00' * 16,  # array32 declaring ~4 billion items
        b'\xdf\xff\xff\xff\xf0' + b'\x00' * 16,  # map32 declaring ~4 billion pairs
        b'\x91' * 200_000 + b'\xc0',  # 200,000 nested arrays
        b'\xc9\xff\xff\xff\xf0\x01' + b'x' * 16,  # ext32 declaring ~4 GiB
    ])
def test_hostile_msgpack_fails_fast_in_bounded_memory(payload):
  data = _with_header(payload)
  tracemalloc.start()
  start = time.perf_counter()
  with pytest.raises(CheckpointError, match='payload is malformed'):
    checkpoint.loads(data)
  elapsed = time.perf_counter() - start
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert elapsed < 1.0
  assert peak < 50 * 2**20


def test_nesting_limit_on_save():
  deep = []
  for _ in range(checkpoint.MAX_DEPTH + 5):
    deep = [deep]
  with pytest.raises(CheckpointError, match='tree nests deeper than 128'):
    checkpoint.dumps(deep)


def test_malicious_pickle_named_model_pkl_never_runs(tmp_path):
  marker = tmp_path / 'pwned'

  class Payload:

    def __reduce__(self):
      return (open, (str(marker), 'w'))

  path = tmp_path / 'model.pkl'
  path.write_bytes(pickle.dumps({'weights': Payload()}))
  with pytest.raises(CheckpointError, match='is a Python pickle'):
    checkpoint.load(path)
  assert not marker.exists()


def test_mismatches_list_every_path():
  saved = {'w': (np.zeros((2, 3), np.float32), np.zeros(3, np.float32)), 'extra': 1}
  expected = {'w': (np.zeros((2, 4), np.float32), np.zeros(3, np.int32)), 'gone': ()}
  with pytest.raises(CheckpointError) as info:
    checkpoint.check_compatible(saved, expected, 'f.ckpt')
  message = str(info.value)
  assert message.startswith('f.ckpt: the saved weights do not fit the model; 4 mismatched')
  assert "['extra']: saved int, not expected" in message
  assert "['gone']: missing in saved, expected tuple" in message
  assert "['w'][0]: saved (2, 3) float32, expected (2, 4) float32" in message
  assert "['w'][1]: saved (3,) float32, expected (3,) int32" in message


def test_missing_file_names_it(tmp_path):
  with pytest.raises(CheckpointError, match='nope.ckpt: cannot read checkpoint'):
    checkpoint.load(tmp_path / 'nope.ckpt')
