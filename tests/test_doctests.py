"""Every `>>>` example in minitrax's docstrings runs and prints what it shows.

Modules are found by reading the sources, so a new module with examples is
tested without being listed here. Examples that need files, a network or long
training say so with `# doctest: +SKIP`.
"""

import doctest
import importlib
import pathlib

import pytest

import minitrax

PACKAGE = pathlib.Path(minitrax.__file__).parent


def _modules_with_examples():
  names = []
  for path in sorted(PACKAGE.rglob('*.py')):
    if '>>>' in path.read_text(encoding='utf-8'):
      parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
      names.append('.'.join(parts[:-1] if parts[-1] == '__init__' else parts))
  return names


MODULES = _modules_with_examples()


def test_examples_are_found():
  assert {'minitrax.layers.fn', 'minitrax.data.inputs', 'minitrax.lr'} <= set(MODULES)


@pytest.mark.parametrize('name', MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # examples that write files write them here
  result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
  assert result.failed == 0
