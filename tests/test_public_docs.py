"""`help()` of every public function and class shows its real signature and an Args section.

The public names of each package below (its `__all__`, else its names without a
leading underscore) that are minitrax's own functions and classes are checked
once each: a docstring; a signature that `inspect.signature` reads and that is
not a bare `(*args, **kwargs)` hiding the real parameters; and, when there are
parameters (for a class, those of its constructor), an `Args:` section in the
docstring (the class's or its `__init__`'s; a dataclass's `Attributes:`) that
names every one of them. A
line such as `n_in, n_out: ...` names both; `*args` and `**kwargs` may be
described in prose instead.
"""

import dataclasses
import importlib
import inspect
import re

PACKAGES = ('minitrax.layers', 'minitrax.supervised', 'minitrax.data', 'minitrax.models',
            'minitrax.optimizers', 'minitrax.lr', 'minitrax.trax14.layers',
            'minitrax.trax14.models')
# Offenders not yet fixed: each must still be one, so fixing a name means
# deleting it here. None is left; a new public callable must come documented.
PENDING = frozenset()

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_ENTRY = re.compile(r'^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?:\([^)]*\))?\s*:')


def public_callables(packages=PACKAGES):
  """`[(qualified name, object), ...]`: each public minitrax function and class once."""
  found, seen = [], set()
  for package in packages:
    module = importlib.import_module(package)
    names = getattr(module, '__all__', None)
    if names is None:
      names = sorted(n for n in dir(module) if not n.startswith('_'))
    for name in names:
      obj = getattr(module, name)
      if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        continue
      if not (getattr(obj, '__module__', None) or '').startswith('minitrax') or id(obj) in seen:
        continue
      seen.add(id(obj))
      found.append((f'{package}.{name}', obj))
  return found


def _own_doc(obj):
  doc = obj.__doc__  # a class's own docstring only: `__doc__` is not inherited
  return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ''


def _minitrax_init(cls):
  init = getattr(cls, '__init__', None)
  return inspect.isfunction(init) and init.__module__.startswith('minitrax')


def _docs(obj):
  """The docstrings that may describe `obj`'s parameters: its own, and its `__init__`'s."""
  docs = [_own_doc(obj)]
  if inspect.isclass(obj) and _minitrax_init(obj):
    docs.append(_own_doc(obj.__init__))
  return docs


def args_names(doc, headings=('Args:',)):
  """The parameter names that the `Args:` sections (or `headings`) of `doc` describe."""
  names, lines = set(), doc.splitlines()
  for i, line in enumerate(lines):
    if line.strip() not in headings:
      continue
    indent, entry_indent = len(line) - len(line.lstrip()), None
    for body in lines[i + 1:]:
      if not body.strip():
        continue
      body_indent = len(body) - len(body.lstrip())
      if body_indent <= indent:
        break
      entry_indent = body_indent if entry_indent is None else entry_indent
      match = _ENTRY.match(body.strip()) if body_indent == entry_indent else None
      if match:
        names.update(n.strip().lstrip('*') for n in match.group(1).split(','))
  return names


def _really_variadic(obj):
  """Whether the code itself (not a wrapper) takes only `*args`/`**kwargs`."""
  code_owner = obj.__init__ if inspect.isclass(obj) else inspect.unwrap(obj)
  try:
    params = list(inspect.signature(code_owner).parameters.values())
  except (TypeError, ValueError):
    return False
  return all(p.kind in _VARIADIC or p.name == 'self' for p in params)


def problems(name, obj):
  """What is missing from `obj`'s help(), as `['<name>: <problem>', ...]`."""
  docs = _docs(obj)
  if not docs[0]:
    return [f'{name}: no docstring']
  if inspect.isclass(obj) and issubclass(obj, BaseException) and not _minitrax_init(obj):
    return []  # built like any exception, from a message: help() shows `(...)`
  try:
    params = [p for p in inspect.signature(obj).parameters.values() if p.name != 'self']
  except (TypeError, ValueError) as error:
    return [f'{name}: inspect.signature fails ({error})']
  if params and all(p.kind in _VARIADIC for p in params) and not _really_variadic(obj):
    return [f'{name}: signature shows only {[str(p) for p in params]}, not the real parameters']
  text = '\n'.join(docs)
  # A dataclass's fields are its constructor's parameters: `Attributes:` describes them.
  headings = ('Args:', 'Attributes:') if dataclasses.is_dataclass(obj) else ('Args:',)
  described = set().union(*(args_names(d, headings) for d in docs))
  named = [p.name for p in params if p.kind not in _VARIADIC]
  if named and not described:
    return [f'{name}: no Args section for {", ".join(named)}']
  missing = [n for n in named if n not in described]
  missing += [f'*{p.name}' for p in params if p.kind in _VARIADIC and p.name not in text]
  return [f'{name}: Args does not name {", ".join(missing)}'] if missing else []


def _offenders():
  return {name: problems(name, obj) for name, obj in public_callables() if problems(name, obj)}


def test_every_public_callable_shows_its_signature_and_arguments():
  found = [
      p for name, ps in _offenders().items() for p in ps
      if name.replace('minitrax.', '', 1) not in PENDING
  ]
  assert not found, f'{len(found)} offenders:\n' + '\n'.join(found)


def test_pending_lists_only_current_offenders():
  current = {name.replace('minitrax.', '', 1) for name in _offenders()}
  assert sorted(PENDING - current) == []  # fixed: delete these from PENDING


def test_the_walk_covers_every_package():
  names = {name for name, _ in public_callables()}
  assert {
      'minitrax.layers.Dense', 'minitrax.data.tokenize', 'minitrax.models.Transformer',
      'minitrax.optimizers.Adam', 'minitrax.supervised.Trainer'
  } <= names


def _documented(a, b):
  """Adds a and b.

  Args:
    a, b: The two numbers.
  """
  return a + b


def _half_documented(a, b=1, *rest):
  """Adds.

  Args:
    a (int): The first number.
      b: a continuation line, not an entry.
  """
  return a + b + sum(rest)


def _hidden(*args, **kwargs):
  """Returns its args and kwargs as given."""
  return args, kwargs


class _Forwarding(type):

  def __call__(cls, *args, **kwargs):
    return super().__call__(*args, **kwargs)


class _Hiding(metaclass=_Forwarding):
  """Hides its constructor's parameters behind its metaclass's `__call__`."""

  def __init__(self, size):
    self.size = size


class _Undocumented:

  def __init__(self, size):
    self.size = size


def test_the_check_names_each_kind_of_offender():
  assert problems('ok', _documented) == []
  assert problems('half', _half_documented) == ['half: Args does not name b, *rest']
  assert problems('hidden', _hidden) == []  # the code really takes only *args, **kwargs
  assert problems('hiding', _Hiding) == [
      "hiding: signature shows only ['*args', '**kwargs'], not the real parameters"
  ]
  assert problems('cls', _Undocumented) == ['cls: no docstring']
  _Undocumented.__doc__ = 'A size.'
  assert problems('cls', _Undocumented) == ['cls: no Args section for size']
