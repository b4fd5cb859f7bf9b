"""Models by name: the registry behind the command line's `--model=MLP`.

A model function (`MLP`, `Resnet50`, ...) is registered under a name, by
default its own `__name__`; `get_model(name)` returns the function, which
the caller then calls with its hyperparameters and `mode`:

>>> model = get_model('MLP')(d_hidden=128, mode='eval')

Each model module registers its own models with the `@register` decorator,
so importing `minitrax.models` (which imports every model module) registers
them all. This module imports no model module.
"""

import difflib

from minitrax.errors import ConfigError

_MODELS = {}


def register(fn, name=None):
  """Registers the model function `fn` under `name` (default `fn.__name__`).

  Registering the same function under the same name again does nothing, so
  that a module may be re-imported. Returns `fn`, so that `register` also
  works as a decorator: model modules write `@register` above each model.

  Args:
    fn: the model function, returning a layer.
    name: the registry name (None: `fn.__name__`).

  Raises:
    ConfigError: `fn` is not callable, `name` is not a non-empty string, or
      `name` is already taken by a different function.
  """
  if not callable(fn):
    raise ConfigError(f'register: a model must be a function returning a layer, got {fn!r}')
  name = getattr(fn, '__name__', None) if name is None else name
  if not isinstance(name, str) or not name:
    raise ConfigError(f'register: the model name must be a non-empty string, got {name!r}')
  known = _MODELS.get(name)
  if known is not None and known is not fn:
    raise ConfigError(f'register: model name {name!r} is already taken by '
                      f'{known.__module__}.{known.__qualname__}; pick another name')
  _MODELS[name] = fn
  return fn


def get_model(name):
  """The model function registered under `name`.

  Args:
    name: the registered name, e.g. 'TransformerLM'.

  Raises:
    ConfigError: no model has that name; the message lists the known names
      (and a close match, if there is one).
  """
  if name in _MODELS:
    return _MODELS[name]
  lowered = {known.lower(): known for known in _MODELS}
  close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1)
  hint = f' (did you mean {lowered[close[0]]!r}?)' if close else ''
  raise ConfigError(f'unknown model {name!r}{hint}; known models: '
                    f'{", ".join(model_names())}')


def model_names():
  """The registered names, sorted."""
  return sorted(_MODELS)


__all__ = ['register', 'get_model', 'model_names']
