"""The `>>>` examples in minitrax.data's docstrings run and print what they show."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize('module', ['inputs', 'synthetic', 'arrays', 'prefetch', 'text'])
def test_docstring_examples(module):
  result = doctest.testmod(importlib.import_module(f'minitrax.data.{module}'))
  assert result.attempted > 0 and result.failed == 0
