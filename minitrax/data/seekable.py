"""Random-access example streams: the iterators that make pipelines resumable in O(1).

A `Seekable` is an iterator whose item `p` is a pure function `get(p)` of its
position, so it can be moved to any position without reading what comes
before. The `minitrax.data` stream combinators keep this property where they
can: a combinator given a `Seekable` returns a `Seekable` when each output
item depends only on its position (a TFDS source, per-example maps, `Batch`,
`Shuffle`'s index plan), and a plain generator otherwise (`FilterByLength`,
`BucketByLength`, `Parallel`). Either way the result is an ordinary iterator.

>>> squares = Seekable(lambda p: p * p)
>>> next(squares), next(squares), next(squares.seek(10))
(0, 1, 100)
>>> list(itertools.islice(skip(iter(range(6)), 4), 3))
[4, 5]
"""

import itertools

__all__ = ['Seekable', 'seekable_map', 'skip']


class Seekable:
  """An iterator over items `get(0), get(1), ...` that can move to any position.

  Args:
    get: `position -> item`; pure (the same position gives an equal item).
    length: the number of items, or None for an endless stream.
  """

  def __init__(self, get, length=None):
    self._get = get
    self.length = length
    self.position = 0

  def at(self, position):
    """Item number `position` (0-based); IndexError past the end."""
    if self.length is not None and position >= self.length:
      raise IndexError(f'position {position} is past the end ({self.length} items)')
    return self._get(position)

  def seek(self, position):
    """Moves to `position` (the next item yielded is item `position`); returns self."""
    self.position = int(position)
    return self

  def __iter__(self):
    return self

  def __next__(self):
    if self.length is not None and self.position >= self.length:
      raise StopIteration
    item = self._get(self.position)
    self.position += 1
    return item

  def __repr__(self):
    size = 'endless' if self.length is None else f'{self.length} items'
    return f'Seekable({size}, at {self.position})'


def seekable_map(fn, upstream):
  """`fn` applied to each item of the Seekable `upstream`: a Seekable of the same length."""
  return Seekable(lambda p: fn(upstream.at(p)), upstream.length)


def skip(iterator, n):
  """`iterator` moved `n` items ahead: a seek for a `Seekable`, else `n` items read and dropped.

  Reading is exact when the stream is deterministic (every minitrax
  combinator is; a function using unseeded randomness is not) and costs the
  work of making the skipped items.
  """
  if n <= 0:
    return iterator
  if isinstance(iterator, Seekable):
    return iterator.seek(iterator.position + n)
  iterator = iter(iterator)
  next(itertools.islice(iterator, n, n), None)
  return iterator
