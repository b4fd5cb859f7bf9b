"""Every fenced ```python block of README.md runs.

Blocks are grouped by their `## ` section and run in order, in one namespace
per section, in a temporary folder (as a reader would paste them into a fresh
interpreter). A block that must not run is marked by an HTML comment line
starting with `<!-- not run` right before its fence, saying why (e.g. an
excerpt run whole elsewhere); use it sparingly.
"""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'README.md')
NOT_RUN = '<!-- not run'


def python_blocks(text):
  """`[(section, source, runs)]` of the fenced python blocks of `text`, in order."""
  blocks, section, lines = [], '', text.splitlines()
  i = 0
  while i < len(lines):
    if lines[i].startswith('## '):
      section = lines[i][3:].strip()
    if lines[i].strip() == '```python':
      end = lines.index('```', i + 1)
      runs = not (i > 0 and lines[i - 1].startswith(NOT_RUN))
      blocks.append((section, '\n'.join(lines[i + 1:end]) + '\n', runs))
      i = end
    i += 1
  return blocks


def sections():
  with open(README, encoding='utf-8') as f:
    blocks = python_blocks(f.read())
  out = {}
  for section, source, runs in blocks:
    if runs:
      out.setdefault(section, []).append(source)
  return out


def test_blocks_are_found_and_few_are_left_out():
  with open(README, encoding='utf-8') as f:
    blocks = python_blocks(f.read())
  assert len(blocks) >= 4
  skipped = [section for section, _, runs in blocks if not runs]
  assert skipped == ['Training: `minitrax.supervised.Trainer` and `train`']
  assert python_blocks('## A\n<!-- not run: why -->\n```python\nx\n```\n```python\ny\n```\n') == [
      ('A', 'x\n', False), ('A', 'y\n', True)
  ]


@pytest.mark.parametrize('section', sorted(sections()))
def test_readme_section_runs(section, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  namespace = {'__name__': 'readme_' + re.sub(r'\W+', '_', section)}
  for number, source in enumerate(sections()[section], 1):
    code = compile(source, f'README.md ({section}, block {number})', 'exec')
    exec(code, namespace)  # pylint: disable=exec-used
