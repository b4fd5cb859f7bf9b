"""Hostile checkpoint payloads: exactly the documented types, bounded memory and time."""

import hashlib
import os
import struct
import subprocess
import sys
import textwrap

import msgpack
import numpy as np
import pytest

from minitrax import checkpoint, msgpack_reader
from minitrax.errors import CheckpointError


def _file(payload, header=None):
  """Checkpoint bytes around `payload` with a valid checksum (as a forger would write them)."""
  header = header or {
      'format_version': 1, 'payload_size': len(payload),
      'sha256': hashlib.sha256(payload).hexdigest()
  }
  packed = msgpack.packb(header)
  return checkpoint.MAGIC + struct.pack('<I', len(packed)) + packed + payload


def _load(tmp_path, payload, **header):
  path = tmp_path / 'model.pkl'
  path.write_bytes(_file(payload, header or None))
  return checkpoint.load(path), str(path)


@pytest.mark.parametrize('tree, message', [
    ({'t': msgpack.Timestamp(1, 0)
     }, r"malformed at \['t'\] \(byte \d+\): extension type -1 \(only arrays, 1, and tuple marks"),
    ({'w': [1, msgpack.ExtType(5, b'x')]}, r"malformed at \['w'\]\[1\] .*extension type 5"),
    ({'a': {1.5: 2}}, r"malformed at \['a'\] .*map key of type float \(keys are str or int\)"),
    ({'a': {None: 2}}, r"malformed at \['a'\] .*map key of type NoneType"),
    ({'a': {True: 2}}, r"malformed at \['a'\] .*map key of type bool"),
    ({'a': {b'k': 2}}, r"malformed at \['a'\] .*map key of type bytes"),
    ({'a': {(1, 2): 2}}, r"malformed at \['a'\] .*map key of type list"),
])
def test_undocumented_msgpack_types_are_refused_at_their_path(tmp_path, tree, message):
  payload = msgpack.packb(tree, use_bin_type=True, strict_types=False)
  with pytest.raises(CheckpointError, match=r'model.pkl: the checkpoint payload is ' + message):
    _load(tmp_path, payload)


def test_duplicate_map_keys_are_refused_not_last_wins(tmp_path):
  # {'weights': 1, 'step': 3, 'step': -5}, written by hand (msgpack.packb cannot repeat a key)
  payload = b'\x83' + msgpack.packb('weights') + b'\x01' + (msgpack.packb('step') + b'\x03' +
                                                            msgpack.packb('step') + b'\xfb')
  with pytest.raises(
      CheckpointError,
      match=r"model.pkl: .* malformed at <root> \(byte \d+\): duplicate map key 'step'"):
    _load(tmp_path, payload)


def test_a_tuple_error_names_the_tuple_index(tmp_path):
  payload = msgpack.packb(checkpoint._encode({'w': ((), [1, 2])}, ()), use_bin_type=True)  # pylint: disable=protected-access
  bad = payload.replace(b'\x92\x01\x02', b'\x92\x01\xc1')  # an invalid byte in the list
  with pytest.raises(CheckpointError, match=r"at \['w'\]\[1\]\[1\] .*invalid msgpack byte 0xc1"):
    _load(tmp_path, bad)


@pytest.mark.parametrize('field, value, message', [
    ('format_version', True, 'field "format_version" must be an int, got bool True'),
    ('format_version', 1.0, 'field "format_version" must be an int, got float 1.0'),
    ('format_version', '1', "field \"format_version\" must be an int, got str '1'"),
    ('payload_size', -1, 'field "payload_size" must be an int >= 0, got int -1'),
    ('sha256', 'ab', "field \"sha256\" must be 64 lowercase hex digits, got str 'ab'"),
    ('extra', 1, 'is corrupted \\(expected the fields format_version, payload_size, '
     'sha256, found format_version, payload_size, sha256, extra\\)'),
])
def test_header_fields_have_exactly_their_types(tmp_path, field, value, message):
  payload = msgpack.packb(1)
  header = {
      'format_version': 1, 'payload_size': len(payload),
      'sha256': hashlib.sha256(payload).hexdigest(), field: value
  }
  with pytest.raises(CheckpointError, match=r'model.pkl: the checkpoint header ' + message):
    _load(tmp_path, payload, **header)


def test_header_with_duplicate_keys_is_corrupted(tmp_path):
  payload = msgpack.packb(1)
  packed = msgpack.packb({'format_version': 1, 'payload_size': 1, 'sha256': '0' * 64})
  packed = b'\x84' + packed[1:] + msgpack.packb('format_version') + b'\x01'
  path = tmp_path / 'model.pkl'
  path.write_bytes(checkpoint.MAGIC + struct.pack('<I', len(packed)) + packed + payload)
  with pytest.raises(CheckpointError, match="header is corrupted .*duplicate map key "
                     "'format_version'"):
    checkpoint.load(path)


def test_array_records_are_exact(tmp_path):
  good = msgpack.packb(['float32', [2], b'\x00' * 8], use_bin_type=True)
  cases = [
      (msgpack.packb(['float32', [2], b'\x00' * 8, 0], use_bin_type=True), 'not a list of 3'),
      (msgpack.packb(['float32', [True], b'\x00' * 4], use_bin_type=True), 'not an int'),
      (msgpack.packb(['float32', [-1], b''], use_bin_type=True), r'dimension -1'),
      (msgpack.packb(['float32', [1] * 65, b'\x00' * 4], use_bin_type=True), '65 dimensions'),
      (msgpack.packb(['float32', [2], '\x00' * 8], use_bin_type=True), 'not a binary string'),
      (good + b'\x00', r'array record of 21 bytes where 22 were declared'),
  ]
  for record, message in cases:
    with pytest.raises(CheckpointError, match=message):
      _load(tmp_path, msgpack.packb(msgpack.ExtType(1, record)))
  loaded, _ = _load(tmp_path, msgpack.packb(msgpack.ExtType(1, good)))
  np.testing.assert_array_equal(loaded, np.zeros(2, np.float32))


def test_deepest_tree_minitrax_writes_still_loads():
  deep = ()
  for _ in range(checkpoint.MAX_DEPTH):
    deep = [deep, np.ones(1)]
  loaded = checkpoint.loads(checkpoint.dumps(deep))
  for _ in range(checkpoint.MAX_DEPTH):
    loaded = loaded[0]
  assert loaded == ()
  too_deep = b'\x91' * (checkpoint.MAX_DEPTH + 2) + b'\xc0'
  with pytest.raises(CheckpointError, match='nesting deeper than 128'):
    checkpoint.loads(_file(too_deep))


@pytest.mark.parametrize('limit, payload, message', [
    (dict(max_elements=10), msgpack.packb(list(range(20))), 'more than 10 elements'),
    (dict(max_containers=3), msgpack.packb([[]] * 5), 'more than 3 lists, tuples and maps'),
    (dict(max_bytes=1000), msgpack.packb([{}] * 50), 'more than 1000 bytes of memory'),
])
def test_each_budget_stops_decoding(limit, payload, message):
  with pytest.raises(msgpack_reader.FormatError, match=message):
    msgpack_reader.read_tree(payload, {}, **limit)


_MEASURE = textwrap.dedent('''
    import os, sys, time, types
    # Only minitrax.checkpoint and what it imports (not the package's __init__, which imports JAX).
    package = types.ModuleType('minitrax')
    package.__path__ = [os.path.join(os.getcwd(), 'minitrax')]
    sys.modules['minitrax'] = package
    from minitrax import checkpoint, msgpack_reader

    def rss(field):
      with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

    path = sys.argv[1]
    msgpack_reader.BASE_BYTES = int(sys.argv[2])
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')  # resets the peak (VmHWM) to the current resident size
    base = rss('VmRSS:')
    start = time.perf_counter()
    try:
      checkpoint.load(path)
      print('loaded')
    except checkpoint.CheckpointError as e:
      print(str(e)[:300])
    print(rss('VmHWM:') - base, time.perf_counter() - start)
''')


def _crafted(tmp_path, mib, unit):
  """A checkpoint of `mib` MiB: lists of 15 `unit`s, in lists of 15, ...: no length is long."""
  n = mib * 2**20
  inner = b'\x9f' + unit * 15
  count = n // len(inner)
  chunks = [b'\xdd' + struct.pack('>I', count // 15 + 1)]
  chunks += [b'\x9f' + inner * 15] * (count // 15) + [b'\x90']
  path = tmp_path / f'crafted_{mib}.pkl'
  path.write_bytes(_file(b''.join(chunks)))
  return path


def _peak_growth(path, base_bytes):
  """`(message, peak RSS growth in bytes, seconds)` of loading `path` in a fresh process."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, '-c', _MEASURE,
                        str(path), str(base_bytes)], cwd=root, capture_output=True, text=True,
                       timeout=300, check=True).stdout
  message, numbers = out.rsplit('\n', 2)[:2]
  growth, seconds = numbers.split()
  return message, int(growth), float(seconds)


def _check_bound(tmp_path, mib, unit, base_bytes):
  """Loading a crafted file of `mib` MiB grows the peak RSS by at most the documented bound."""
  path = _crafted(tmp_path, mib, unit)
  size = os.path.getsize(path)
  message, growth, seconds = _peak_growth(path, base_bytes)
  assert 'decoding would take more than' in message and str(path) in message
  bound = size + base_bytes + msgpack_reader.BYTES_PER_BYTE * size
  print(f'{mib} MiB of {unit!r}: +{growth / 2**20:.0f} MiB RSS (bound {bound / 2**20:.0f} MiB, '
        f'{growth / size:.1f}x the file) in {seconds:.1f} s')
  assert growth <= bound + 8 * 2**20  # + 8 MiB: the interpreter's own allocations


# The default run shrinks the 64 MiB constant to 4 MiB (the bound is checked with that constant),
# so that decoding stops sooner; the slow run keeps the real one.
@pytest.mark.parametrize('mib, unit', [(1, b'\x80'), (1, b'\x90'), (8, b'\x80')])
def test_crafted_file_of_empty_containers_stays_in_the_memory_bound(tmp_path, mib, unit):
  _check_bound(tmp_path, mib, unit, base_bytes=4 * 2**20)


@pytest.mark.slow
@pytest.mark.parametrize('mib, unit', [(1, b'\x80'), (8, b'\x90'), (32, b'\x80'), (32, b'\x90')])
def test_crafted_file_stays_in_the_memory_bound_with_the_real_constant(tmp_path, mib, unit):
  _check_bound(tmp_path, mib, unit, base_bytes=msgpack_reader.BASE_BYTES)


def test_header_with_an_int_key_is_corrupted_not_a_type_error(tmp_path):
  """Found by the fuzz test: mixed str and int header keys once raised TypeError from sorted()."""
  payload = msgpack.packb(1)
  header = {'format_version': 1, 2: 3, 'sha256': hashlib.sha256(payload).hexdigest()}
  path = tmp_path / 'model.pkl'
  path.write_bytes(_file(payload, header))
  with pytest.raises(CheckpointError, match='header is corrupted .*found format_version, 2, '):
    checkpoint.load(path)
