"""A msgpack reader for untrusted checkpoint payloads: only the format's types, bounded work.

`read_tree(payload)` decodes the payload of a minitrax checkpoint (see
`minitrax.checkpoint`) in one pass over its bytes, accepting exactly what the
format documents and nothing else:

* nil, booleans, integers (64-bit), floats, UTF-8 strings, binary strings;
* arrays (lists), and tuples: arrays whose first element is the empty
  extension type 2;
* maps whose keys are strings or integers (not booleans), each key once;
* extension type 1, an array record `[dtype name, shape, raw bytes]` with a
  dtype from the allow-list and exactly `prod(shape) * itemsize` bytes.

Any other type (other extension types such as msgpack's timestamp -1), a
duplicate key, a truncated or trailing byte is a `ValueError` naming what and
where (the byte offset).

Bounds, checked while decoding and before anything is allocated: nesting of
at most `max_depth` levels; at most `max_objects` objects (default 100,000 +
one per 64 payload bytes); a declared container length never exceeds the
bytes left (every element takes at least one). So decoding does O(payload)
work and its peak memory is at most about 4 times the payload size plus a
constant: the payload, one copy of the array data, and per object at most
~250 bytes of Python objects for every 64 payload bytes.
"""

import struct

import numpy as np

_TUPLE_EXT, _ARRAY_EXT = 2, 1
_FIXED = {  # lead byte -> (struct format, size) of fixed-width scalars
    0xca: ('>f', 4), 0xcb: ('>d', 8), 0xcc: ('>B', 1), 0xcd: ('>H', 2), 0xce: ('>I', 4),
    0xcf: ('>Q', 8), 0xd0: ('>b', 1), 0xd1: ('>h', 2), 0xd2: ('>i', 4), 0xd3: ('>q', 8)
}
_SIZED = {  # lead byte -> (kind, bytes of the length field)
    0xc4: ('bin', 1), 0xc5: ('bin', 2), 0xc6: ('bin', 4), 0xc7: ('ext', 1), 0xc8: ('ext', 2),
    0xc9: ('ext', 4), 0xd9: ('str', 1), 0xda: ('str', 2), 0xdb: ('str', 4), 0xdc: ('array', 2),
    0xdd: ('array', 4), 0xde: ('map', 2), 0xdf: ('map', 4)
}
_FIXEXT = {0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}


class _Mark:
  """The decoded empty extension type 2 (marks a tuple)."""


_TUPLE = _Mark()


class _Reader:
  """One pass over `data` with a budget of objects and a depth limit."""

  def __init__(self, data, dtypes, max_objects, max_depth):
    self.data, self.pos = memoryview(data), 0
    self.dtypes, self.budget, self.max_depth = dtypes, max_objects, max_depth
    self.in_record = False  # inside an array record, binary data stays a view (copied once)

  def fail(self, what):
    raise ValueError(f'{what} at byte {self.pos}')

  def take(self, n):
    if n > len(self.data) - self.pos:
      self.fail(f'truncated data: {n} bytes needed')
    start, self.pos = self.pos, self.pos + n
    return self.data[start:self.pos]

  def uint(self, n):
    return int.from_bytes(self.take(n), 'big')

  def value(self, depth):
    """The next object (or the tuple mark)."""
    self.budget -= 1
    if self.budget < 0:
      self.fail('too many objects for the payload size')
    if depth > self.max_depth:
      self.fail(f'nesting deeper than {self.max_depth}')
    lead = self.uint(1)
    if lead <= 0x7f or lead >= 0xe0:
      return lead if lead <= 0x7f else lead - 0x100
    if lead in (0xc0, 0xc2, 0xc3):
      return {0xc0: None, 0xc2: False, 0xc3: True}[lead]
    if lead in _FIXED:
      fmt, size = _FIXED[lead]
      return struct.unpack(fmt, self.take(size))[0]
    if 0x80 <= lead <= 0x9f:
      kind, n = ('map', lead & 0x0f) if lead <= 0x8f else ('array', lead & 0x0f)
    elif 0xa0 <= lead <= 0xbf:
      kind, n = 'str', lead & 0x1f
    elif lead in _SIZED:
      kind, width = _SIZED[lead]
      n = self.uint(width)
    elif lead in _FIXEXT:
      kind, n = 'ext', _FIXEXT[lead]
    else:
      self.fail(f'invalid msgpack byte 0x{lead:02x}')
    return self.sized(kind, n, depth)

  def sized(self, kind, n, depth):
    if kind in ('array', 'map') and n > len(self.data) - self.pos:
      self.fail(f'{kind} of {n} items longer than the data left')
    if kind == 'bin':
      return self.take(n) if self.in_record else bytes(self.take(n))
    if kind == 'str':
      try:
        return str(self.take(n), 'utf-8')
      except UnicodeDecodeError:
        self.fail('string that is not UTF-8')
    if kind == 'array':
      return self.array(n, depth)
    if kind == 'map':
      return self.map(n, depth)
    code = struct.unpack('>b', self.take(1))[0]
    return self.ext(code, n)

  def array(self, n, depth):
    items = [self.value(depth + 1) for _ in range(n)]
    if any(item is _TUPLE for item in items[1:]):
      self.fail('tuple marker after the first element of a list')
    return tuple(items[1:]) if items and items[0] is _TUPLE else items

  def map(self, n, depth):
    out = {}
    for _ in range(n):
      key = self.value(depth + 1)
      if isinstance(key, bool) or not isinstance(key, (str, int)):
        self.fail(f'map key of type {type(key).__name__} (keys are str or int)')
      if key in out:
        self.fail(f'duplicate map key {key!r:.40}')
      out[key] = self.value(depth + 1)
      if out[key] is _TUPLE:
        self.fail('tuple marker as a map value')
    return out

  def ext(self, code, n):
    if code == _TUPLE_EXT and n == 0:
      return _TUPLE
    if code != _ARRAY_EXT:
      self.fail(f'extension type {code} (only arrays, 1, and tuple marks, 2, exist)')
    end, self.in_record = self.pos + n, True
    try:
      record = self.value(self.max_depth - 2)
    finally:
      self.in_record = False
    if self.pos != end:
      self.fail('array record of another length than declared')
    return self.numpy_array(record)

  def numpy_array(self, record):
    if not (isinstance(record, list) and len(record) == 3):
      self.fail('malformed array record')
    name, shape, raw = record
    if name not in self.dtypes:
      self.fail(f'array dtype {name!r} is not allowed; allowed: {", ".join(self.dtypes)}')
    if not (isinstance(shape, list) and
            all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
      self.fail(f'malformed array shape {shape!r:.60}')
    dtype = self.dtypes[name]
    is_bin = isinstance(raw, memoryview)
    if not is_bin or int(np.prod(shape, dtype=object)) * dtype.itemsize != len(raw):
      self.fail(f'array of shape {tuple(shape)} and dtype {name} that does not match its '
                f'{len(raw) if is_bin else "missing"} bytes of data')
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def read_tree(payload, dtypes, max_depth=128, max_objects=None):
  """The tree encoded in `payload` (bytes); `ValueError` for anything outside the format.

  Args:
    payload: the msgpack bytes.
    dtypes: `{name: numpy dtype}`, the allowed array dtypes.
    max_depth: the deepest nesting allowed.
    max_objects: at most this many objects; default 100,000 + len(payload) // 64.
  """
  if max_objects is None:
    max_objects = 100_000 + len(payload) // 64
  reader = _Reader(payload, dtypes, max_objects, max_depth)
  tree = reader.value(0)
  if tree is _TUPLE:
    reader.fail('a tuple marker as the whole tree')
  if reader.pos != len(payload):
    reader.fail(f'{len(payload) - reader.pos} bytes of trailing data')
  return tree


__all__ = ['read_tree']
