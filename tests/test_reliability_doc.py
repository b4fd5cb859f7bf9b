"""docs/reliability.md names only tests that exist."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _references(text):
  """(file, test) pairs: `path.py::test` and, after it in a cell, `::test` of the same file."""
  pairs = []
  for cell in text.split('|'):
    current = None
    for path, name in re.findall(r'`([\w/]*\.py)?::(\w+)`', cell):
      current = path or current
      pairs.append((current, name))
  return pairs


def test_every_test_the_reliability_table_names_exists():
  with open(os.path.join(ROOT, 'docs', 'reliability.md'), encoding='utf-8') as f:
    pairs = _references(f.read())
  assert len(pairs) > 50
  missing = []
  for path, name in pairs:
    with open(os.path.join(ROOT, 'tests', path), encoding='utf-8') as f:
      if not re.search(rf'^def {name}\(', f.read(), re.M):
        missing.append(f'{path}::{name}')
  assert missing == []
