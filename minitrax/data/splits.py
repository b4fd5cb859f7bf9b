"""TFDS split strings (`train`, `test[:80%]`, `train[10:-10]`, `train+test`) over any data.

A split string names one or more splits joined by `+`, each optionally sliced
`[from:to]` by example counts (`train[:1000]`, negative counts from the end:
`train[-1000:]`) or by percents (`test[80%:]`, `train[10.5%:20%]`). `all` is
every split of the dataset, in order. The rules are TFDS's (its
`ReadInstruction` with the default `'closest'` rounding):

* a percent boundary `p` of a split of `n` examples is example
  `int(round(p * n / 100.0))` (Python's `round`: halves go to the even
  number), so `test[:80%]` and `test[80%:]` always cover `test` exactly once;
* a boundary whose absolute value exceeds `n` (`train[:1000]` of 500
  examples) is an error; a negative one counts from the end;
* when one side has a unit, the other side has the same unit
  (`train[10:20%]` is `train[10%:20%]`).

Slicing by TFDS shard (`train[1shard]`) has no meaning for data read from
distribution files and is refused.

`Slices` reads the selected examples, in order, from one random-access
source per split (anything with `len()` and `[i]`).

>>> ranges('test[:80%]+train[-1000:]', {'train': 60000, 'test': 10000})
[('test', 0, 8000), ('train', 59000, 60000)]
>>> [ranges(f'test[{s}]', {'test': 10}) for s in (':5%', ':15%', ':25%')]  # Halves to even.
[[('test', 0, 0)], [('test', 0, 2)], [('test', 0, 2)]]
"""

import bisect
import dataclasses
import re

from minitrax.errors import DataError

__all__ = ['SplitSlice', 'parse', 'split_names', 'ranges', 'Slices', 'SPLITS_HELP']

SPLITS_HELP = ("TFDS split strings: 'train', 'test[:80%]', 'test[80%:]', 'train[:1000]', "
               "'train[10%:20%]', 'train+test' (https://www.tensorflow.org/datasets/splits)")
_SUB = re.compile(r'^(?P<name>[\w-]+)(\[(?P<selector>[\d\w%:.-]+)\])?$')
_BOUND = re.compile(r'^((?P<value>-?[\d_.]+)(?P<unit>%|shard)?)?$')
_PLUS = re.compile(r'\s*\+\s*')


@dataclasses.dataclass(frozen=True)
class SplitSlice:
  """One term of a split string: `name[start:stop]` in `unit` ('abs' or '%'); None: open end."""
  name: str
  start: float | int | None = None
  stop: float | int | None = None
  unit: str = 'abs'


def _error(spec, why):
  return DataError(f'split {spec!r}: {why}. {SPLITS_HELP}')


def _number(spec, text, unit):
  try:
    return float(text) if unit == '%' else int(text)
  except ValueError:
    raise _error(spec, f'{text!r} is not a{" percent" if unit == "%" else "n example count"}') \
        from None


def _term(spec, term):
  """The `SplitSlice` of one `+`-separated term of `spec`."""
  match = _SUB.match(term)
  if not match:
    raise _error(spec, f'cannot read {term!r} as name[from:to]')
  name, selector = match['name'], match['selector']
  if name == 'all' and selector:
    raise _error(spec, "'all' cannot be sliced")
  if selector is None:
    return SplitSlice(name)
  bounds = [_BOUND.match(b) for b in selector.split(':')]
  if not all(bounds) or not any(b.group(0) for b in bounds):
    raise _error(spec, f'cannot read the slice [{selector}]')
  if len(bounds) != 2:
    raise _error(spec, f'[{selector}] is not a slice [from:to]')
  unit = bounds[0]['unit'] or bounds[1]['unit'] or 'abs'
  if unit == 'shard':
    raise _error(spec, 'slicing by TFDS shard is not supported here; slice by examples or %')
  start, stop = (None if b['value'] is None else _number(spec, b['value'], unit) for b in bounds)
  if unit == '%' and any(abs(v or 0) > 100 for v in (start, stop)):
    raise _error(spec, 'percent boundaries must lie in [-100%, 100%]')
  return SplitSlice(name, start, stop, unit)


def parse(spec):
  """The terms of the TFDS split string `spec`, as a tuple of `SplitSlice`.

  Raises:
    DataError: `spec` is not a split string (the message shows the forms).
  """
  if not isinstance(spec, str) or not spec.strip():
    raise _error(spec, 'expected a non-empty string')
  return tuple(_term(spec, term) for term in _PLUS.split(spec.strip()))


def split_names(spec, known):
  """The distinct split names `spec` reads, in order (`all`: every name in `known`)."""
  names = []
  for term in parse(spec):
    for name in (known if term.name == 'all' else [term.name]):
      if name not in names:
        names.append(name)
  return names


def _absolute(spec, term, n):
  """`(start, stop)` example indices of `term` in a split of `n` examples (TFDS's rules)."""
  start, stop = term.start, term.stop
  if term.unit == '%':
    start = 0 if start is None else int(round(start * n / 100.0))
    stop = n if stop is None else int(round(stop * n / 100.0))
  else:
    start, stop = start or 0, n if stop is None else stop
  if abs(start) > n or abs(stop) > n:
    raise _error(
        spec, f'slice [{term.start if term.start is not None else ""}:'
        f'{term.stop if term.stop is not None else ""}] of split {term.name!r} does not '
        f'fit its {n} examples')
  return start % n if start < 0 else start, stop % n if stop < 0 else stop


def ranges(spec, sizes):
  """`[(name, start, stop), ...]`: the example ranges `spec` selects, in order.

  Args:
    spec: a TFDS split string.
    sizes: `{split name: number of examples}` of the dataset's splits, in
      the dataset's order (`all` follows it).

  Raises:
    DataError: an unknown split name, or a slice outside its split.
  """
  out = []
  for term in parse(spec):
    names = list(sizes) if term.name == 'all' else [term.name]
    for name in names:
      if name not in sizes:
        raise _error(spec, f'no split {name!r} (splits: {", ".join(sizes)})')
      start, stop = _absolute(spec, dataclasses.replace(term, name=name), sizes[name])
      out.append((name, start, max(start, stop)))
  return out


class Slices:
  """Random access to the examples of a split string: `len()` and `[i]`, in order.

  Args:
    spec: a TFDS split string.
    sources: `{split name: random-access source}` of every split `spec`
      names (in the dataset's order if `spec` uses `all`).
  """

  def __init__(self, spec, sources):
    self.spec = spec
    self._pieces = [(sources[name], start, stop)
                    for name, start, stop in ranges(spec, {k: len(v) for k, v in sources.items()})]
    self._ends = []
    total = 0
    for _, start, stop in self._pieces:
      total += stop - start
      self._ends.append(total)

  def __len__(self):
    return self._ends[-1] if self._ends else 0

  def __getitem__(self, index):
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f'example {index} of split {self.spec!r} ({len(self)} examples)')
    piece = bisect.bisect_right(self._ends, index)
    source, start, _ = self._pieces[piece]
    return source[start + index - (self._ends[piece - 1] if piece else 0)]
