"""A msgpack reader for untrusted checkpoint payloads: only the format's types, bounded work.

`read_tree(payload, dtypes)` decodes the payload of a minitrax checkpoint (see
`minitrax.checkpoint`) in one pass over its bytes, accepting exactly what the
format documents and nothing else:

* nil, booleans, integers (64-bit), floats, UTF-8 strings, binary strings;
* arrays (lists), and tuples: arrays whose first element is the empty
  extension type 2;
* maps whose keys are strings or integers (not booleans), each key once;
* extension type 1, an array record `[dtype name, shape, raw bytes]` with a
  dtype from the allow-list, at most 64 dimensions and exactly
  `prod(shape) * itemsize` bytes.

Anything else (other extension types such as msgpack's timestamp, -1; a
duplicate key; a float, nil or list as a key; a truncated or trailing byte) is
a `FormatError` (a `ValueError`) saying what, at which tree path and at which
byte offset.

Bounds, each checked while decoding, before the object it counts is made:

* nesting: at most `max_depth` levels of lists, tuples and maps;
* elements: at most `max_elements` decoded values (default 2,097,152 + one per
  8 payload bytes), containers (lists, tuples, maps): at most
  `max_containers` (default 1,048,576 + one per 8 payload bytes), and no
  declared length longer than the bytes left;
* memory: every value is charged an upper bound of its CPython 3.11 size
  (list or tuple of n: 96 + 10n bytes, map of n: 192 + 56n (80 if empty), int 48, float 32,
  string of n bytes 64 + 4n, binary 48 + n, array 192 + 16 * ndim + its data)
  against `max_bytes` (default `BASE_BYTES` + `BYTES_PER_BYTE` * payload
  size = 64 MiB + 2 per payload byte).

So decoding does O(payload) work, and the objects it builds take at most
64 MiB + 2 * payload bytes (a valid checkpoint, mostly array data, needs about
1 * payload). The payload itself is only read (array data is copied once,
out of it, into each array).
"""

import math
import struct

import numpy as np

BASE_BYTES = 64 * 2**20
BYTES_PER_BYTE = 2
MAX_NDIM = 64
_TUPLE_EXT, _ARRAY_EXT = 2, 1
_FIXED = {  # lead byte -> (struct, size, charge) of fixed-width scalars: 0xca float ... 0xd3 int64
    lead: (struct.Struct(fmt), struct.calcsize(fmt), 32 if fmt in '>f>d' else 48)
    for lead, fmt in zip(range(0xca, 0xd4), '>f >d >B >H >I >Q >b >h >i >q'.split())
}
_WIDTH = {'bin+', 'ext+', 'str+', 'array+', 'map+'}  # the length follows the lead


def _lead_table():
  """`[(kind, arg)] * 256`: what each msgpack lead byte starts, with its value or length."""
  table = [('invalid', None)] * 256
  for lead in range(0x80):
    table[lead] = ('value', lead)
  for lead in range(0xe0, 0x100):
    table[lead] = ('negative', lead - 0x100)
  for lead in range(16):
    table[0x80 + lead], table[0x90 + lead] = ('map', lead), ('array', lead)
  for lead in range(32):
    table[0xa0 + lead] = ('str', lead)
  table[0xc0], table[0xc2], table[0xc3] = ('value', None), ('value', False), ('value', True)
  for lead, fixed in _FIXED.items():
    table[lead] = ('fixed', fixed)
  for lead, (kind, width) in {
      0xc4: ('bin', 1), 0xc5: ('bin', 2), 0xc6: ('bin', 4), 0xc7: ('ext', 1), 0xc8: ('ext', 2),
      0xc9: ('ext', 4), 0xd9: ('str', 1), 0xda: ('str', 2), 0xdb: ('str', 4), 0xdc: ('array', 2),
      0xdd: ('array', 4), 0xde: ('map', 2), 0xdf: ('map', 4)
  }.items():
    table[lead] = (kind + '+', width)
  for lead, n in {0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}.items():
    table[lead] = ('ext', n)
  return table


_LEADS = _lead_table()
_INTS = frozenset(range(0xcc, 0xd4))


class FormatError(ValueError):
  """Bytes outside the checkpoint format.

  Attributes:
    what: what is wrong.
    pos: the byte offset in the payload where it was found.
    path: the tree path (keys and indices) of the value being decoded.
  """

  def __init__(self, what, pos):
    super().__init__(what)
    self.what, self.pos, self.path = what, pos, []

  def where(self):
    """The tree path as `['key'][0]...`, or '<root>'."""
    return ''.join(f'[{p!r}]' for p in self.path) or '<root>'

  def __str__(self):
    return f'{self.what} at {self.where()} (byte {self.pos})'


class _Mark:
  """The decoded empty extension type 2 (marks a tuple)."""


_TUPLE = _Mark()


class _Reader:
  """One pass over `data` with budgets of elements, containers and bytes, and a depth limit."""

  def __init__(self, data, dtypes, max_depth, limits):
    self.data, self.pos = memoryview(data).cast('B'), 0
    self.dtypes, self.max_depth = dtypes, max_depth
    self.elements, self.containers, self.budget = limits
    self.limits = limits

  def fail(self, what):
    raise FormatError(what, self.pos)

  def charge(self, nbytes):
    self.budget -= nbytes
    if self.budget < 0:
      self.fail(f'decoding would take more than {self.limits[2]} bytes of memory')

  def take(self, n):
    if n > len(self.data) - self.pos:
      self.fail(f'truncated data: {n} bytes needed, {len(self.data) - self.pos} left')
    start, self.pos = self.pos, self.pos + n
    return self.data[start:self.pos]

  def uint(self, n):
    return int.from_bytes(self.take(n), 'big')

  def value(self, depth):
    """The next object (or the tuple mark)."""
    self.elements -= 1
    if self.elements < 0:
      self.fail(f'more than {self.limits[0]} elements')
    if self.pos >= len(self.data):
      self.fail('truncated data: 1 byte needed, 0 left')
    lead = self.data[self.pos]
    self.pos += 1
    kind, arg = _LEADS[lead]
    if kind == 'value':  # small ints (cached by CPython), nil and booleans
      return arg
    if kind == 'fixed':
      unpacker, size, cost = arg
      self.charge(cost)
      return unpacker.unpack(self.take(size))[0]
    if kind == 'invalid':
      self.pos -= 1
      self.fail(f'invalid msgpack byte 0x{lead:02x}')
    if kind in _WIDTH:
      return self.sized(kind[:-1], self.uint(arg), depth)
    if kind == 'negative':
      self.charge(48)
      return arg
    return self.sized(kind, arg, depth)

  def sized(self, kind, n, depth):
    left = len(self.data) - self.pos - (kind == 'ext')
    if n > left:
      unit = 'items' if kind in ('array', 'map') else 'bytes'
      self.fail(f'{kind} of {n} {unit}, longer than the {max(left, 0)} bytes left')
    if kind == 'bin':
      self.charge(48 + n)
      return bytes(self.take(n))
    if kind == 'str':
      self.charge(64 + 4 * n)
      try:
        return str(self.take(n), 'utf-8')
      except UnicodeDecodeError:
        self.fail('string that is not UTF-8')
    if kind == 'ext':
      code = struct.unpack('>b', self.take(1))[0]
      return self.ext(code, n)
    if depth > self.max_depth:
      self.fail(f'nesting deeper than {self.max_depth}')
    self.containers -= 1
    if self.containers < 0:
      self.fail(f'more than {self.limits[1]} lists, tuples and maps')
    return self.array(n, depth) if kind == 'array' else self.map(n, depth)

  def array(self, n, depth):
    self.charge(96 + 10 * n)
    items, i = [], 0
    try:
      for i in range(n):
        items.append(self.value(depth + 1))
        if i and items[i] is _TUPLE:
          self.fail('tuple mark after the first element of a list')
    except FormatError as e:
      e.path.insert(0, i - 1 if items and items[0] is _TUPLE else i)
      raise
    if items and items[0] is _TUPLE:
      self.charge(48 + 16 * n)  # the tuple, and the list slice it is made from
      return tuple(items[1:])
    return items

  def map(self, n, depth):
    self.charge(192 + 56 * n if n else 80)
    out = {}
    for _ in range(n):
      if self.pos < len(self.data) and not _is_key(self.data[self.pos]):
        self.fail(f'map key of type {_kind_name(self.data[self.pos])} (keys are str or int)')
      key = self.value(depth + 1)
      if key in out:
        self.fail(f'duplicate map key {key!r:.40}')
      try:
        out[key] = self.value(depth + 1)
        if out[key] is _TUPLE:
          self.fail('tuple mark as a map value')
      except FormatError as e:
        e.path.insert(0, key)
        raise
    return out

  def ext(self, code, n):
    if code == _TUPLE_EXT and n == 0:
      return _TUPLE
    if code == _TUPLE_EXT:
      self.fail(f'tuple mark (extension type 2) with {n} bytes of data; it has none')
    if code != _ARRAY_EXT:
      self.fail(f'extension type {code} (only arrays, 1, and tuple marks, 2, exist)')
    end = self.pos + n
    array = self.record()
    if self.pos != end:
      self.fail(f'array record of {self.pos - end + n} bytes where {n} were declared')
    return array

  def record(self):
    """An array record `[dtype name, shape, raw bytes]` (no nesting), as a NumPy array."""
    if self.uint(1) != 0x93:
      self.fail('malformed array record (not a list of 3)')
    lead = self.uint(1)
    if not (0xa0 <= lead <= 0xbf or lead == 0xd9):
      self.fail('malformed array record (the dtype is not a string)')
    name = str(self.take(lead & 0x1f if lead != 0xd9 else self.uint(1)), 'utf-8', 'replace')
    if name not in self.dtypes:
      self.fail(f'array dtype {name!r:.40} is not allowed; allowed: {", ".join(self.dtypes)}')
    shape = self.shape()
    lead = self.uint(1)
    if lead not in (0xc4, 0xc5, 0xc6):
      self.fail('malformed array record (the data is not a binary string)')
    raw = self.take(self.uint(1 << (lead - 0xc4)))
    dtype = self.dtypes[name]
    if math.prod(shape) * dtype.itemsize != len(raw):
      self.fail(f'array of shape {tuple(shape)} and dtype {name} does not match its '
                f'{len(raw)} bytes of data')
    self.charge(192 + 16 * len(shape) + len(raw))
    try:
      return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    except (ValueError, OverflowError, MemoryError) as e:
      self.fail(f'array of shape {tuple(shape)} that NumPy refuses ({e})')

  def shape(self):
    lead = self.uint(1)
    if not (0x90 <= lead <= 0x9f or lead == 0xdc):
      self.fail('malformed array record (the shape is not a list)')
    n = lead & 0x0f if lead != 0xdc else self.uint(2)
    if n > MAX_NDIM:
      self.fail(f'array of {n} dimensions; at most {MAX_NDIM}')
    self.charge(88 + 44 * n)
    shape = []
    for _ in range(n):
      lead = self.uint(1)
      if lead <= 0x7f:
        shape.append(lead)
      elif lead >= 0xe0:
        shape.append(lead - 0x100)
      elif lead in _INTS:
        unpacker, size, _ = _FIXED[lead]
        shape.append(unpacker.unpack(self.take(size))[0])
      else:
        self.fail('malformed array shape (a dimension is not an int)')
      if shape[-1] < 0:
        self.fail(f'malformed array shape (dimension {shape[-1]})')
    return shape


def _is_key(lead):
  """Whether msgpack lead byte `lead` starts a str or an int."""
  return lead <= 0x7f or lead >= 0xe0 or 0xa0 <= lead <= 0xbf or 0xd9 <= lead <= 0xdb or (
      0xcc <= lead <= 0xd3)


def _kind_name(lead):
  """The type that msgpack lead byte `lead` starts, in Python's words."""
  if 0x80 <= lead <= 0x8f or lead in (0xde, 0xdf):
    return 'dict'
  if 0x90 <= lead <= 0x9f or lead in (0xdc, 0xdd):
    return 'list'
  names = {0xc0: 'NoneType', 0xc2: 'bool', 0xc3: 'bool', 0xca: 'float', 0xcb: 'float'}
  names.update(dict.fromkeys((0xc4, 0xc5, 0xc6), 'bytes'))
  return names.get(lead, 'extension' if 0xc7 <= lead <= 0xc9 or 0xd4 <= lead <= 0xd8 else 'invalid')


def default_limits(size):
  """`(max_elements, max_containers, max_bytes)` for a payload of `size` bytes."""
  return (2**21 + size // 8, 2**20 + size // 8, BASE_BYTES + BYTES_PER_BYTE * size)


def read_tree(payload, dtypes, max_depth=128, max_elements=None, max_containers=None,
              max_bytes=None):
  """The tree encoded in `payload`; `FormatError` for anything outside the format.

  Args:
    payload: the msgpack bytes (any buffer: bytes, bytearray, memoryview).
    dtypes: `{name: numpy dtype}`, the allowed array dtypes.
    max_depth: the most levels of lists, tuples and maps.
    max_elements, max_containers, max_bytes: the budgets; None for the
      defaults of `default_limits(len(payload))`.

  Returns:
    The tree: dicts, lists, tuples, None, bools, ints, floats, strs, bytes and
    NumPy arrays (which own their data).
  """
  size = memoryview(payload).nbytes
  limits = tuple(
      given if given is not None else default
      for given, default in zip((max_elements, max_containers, max_bytes), default_limits(size)))
  reader = _Reader(payload, dtypes, max_depth, limits)
  tree = reader.value(0)
  if tree is _TUPLE:
    reader.fail('a tuple mark as the whole tree')
  if reader.pos != size:
    reader.fail(f'{size - reader.pos} bytes of trailing data')
  return tree


__all__ = ['FormatError', 'read_tree', 'default_limits', 'BASE_BYTES', 'BYTES_PER_BYTE']
