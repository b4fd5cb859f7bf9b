"""The size discipline: every module under 450 lines, every function under 50 (docstring aside).

Small files and short functions keep every rule findable (STYLE.md); this test
fails when a change lets one grow past the limits, naming each one.
"""

import ast
import pathlib

import minitrax

PACKAGE = pathlib.Path(minitrax.__file__).parent
MODULE_LINES = 450
FUNCTION_LINES = 50


def _function_lines(node):
  """Lines of a function definition, its docstring not counted."""
  lines = node.end_lineno - node.lineno + 1
  first = node.body[0]
  if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
      first.value.value, str):
    lines -= first.end_lineno - first.lineno + 1
  return lines


def oversized(folder):
  """`['<path>: <n> lines', '<path>:<line> <function>: <n> lines', ...]` over the limits."""
  found = []
  for path in sorted(pathlib.Path(folder).rglob('*.py')):
    source = path.read_text(encoding='utf-8')
    if len(source.splitlines()) > MODULE_LINES:
      found.append(f'{path}: {len(source.splitlines())} lines (limit {MODULE_LINES})')
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if _function_lines(node) > FUNCTION_LINES:
          found.append(f'{path}:{node.lineno} {node.name}: {_function_lines(node)} lines '
                       f'(limit {FUNCTION_LINES})')
  return found


def test_every_module_and_function_is_small():
  assert oversized(PACKAGE) == []


def test_the_check_finds_a_long_module_and_a_long_function(tmp_path):
  body = ''.join(f'  x{i} = {i}\n' for i in range(FUNCTION_LINES))
  (tmp_path / 'long_function.py').write_text(f'def f():\n  """Doc."""\n{body}', encoding='utf-8')
  (tmp_path / 'long_module.py').write_text('x = 1\n' * (MODULE_LINES + 1), encoding='utf-8')
  (tmp_path / 'fine.py').write_text('def g():\n  """Doc\n\n  more doc.\n  """\n  return 1\n',
                                    encoding='utf-8')
  found = oversized(tmp_path)
  assert found == [
      f'{tmp_path / "long_function.py"}:1 f: {FUNCTION_LINES + 1} lines '
      f'(limit {FUNCTION_LINES})', f'{tmp_path / "long_module.py"}: {MODULE_LINES + 1} lines '
      f'(limit {MODULE_LINES})'
  ]
