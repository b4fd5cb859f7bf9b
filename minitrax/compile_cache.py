"""JAX's persistent compilation cache, on by default for everything minitrax compiles.

Compiling a training step or a decoder takes seconds to minutes on a CPU;
re-running a notebook cell or resuming a command-line run compiles the same
programs again. `import minitrax` therefore points JAX's persistent
compilation cache (`jax_compilation_cache_dir`) at a folder, so that the
Trainer, `train()`, the Loop, decoding and `Layer.__call__` of a later process
load their compiled programs from disk instead:

* the folder is `$MINITRAX_CACHE_DIR`, by default `~/.cache/minitrax/xla`;
  `MINITRAX_CACHE_DIR=` (empty) turns the cache off;
* a cache folder that JAX is already configured with (by the user, a test
  harness or `JAX_COMPILATION_CACHE_DIR`) is left alone;
* a folder that cannot be created or written is skipped with one warning,
  and training compiles as it would without a cache; a corrupt cache entry
  is recompiled (JAX warns about it and never fails on it).

When minitrax sets the folder it also lowers JAX's threshold for storing a
program (`jax_persistent_cache_min_compile_time_secs`) from 1 s to
`MIN_COMPILE_SECS` = 0.1 s, unless it was changed from JAX's default: a
training run compiles many programs of a fraction of a second (initialisation,
evaluation, the first save), and together they are most of a warm start. The
cache only takes effect if it is set before the process's first compilation,
which is why this runs at import time.
"""

import os
import tempfile
import warnings

import jax

ENV = 'MINITRAX_CACHE_DIR'
DEFAULT = os.path.join('~', '.cache', 'minitrax', 'xla')
MIN_COMPILE_SECS = 0.1
_JAX_DEFAULT_MIN_COMPILE_SECS = 1.0


def cache_dir():
  """The folder minitrax would use: `$MINITRAX_CACHE_DIR` or the default; None if turned off."""
  value = os.environ.get(ENV)
  if value is None:
    return os.path.expanduser(DEFAULT)
  return os.path.expanduser(value) if value.strip() else None


def _usable(path):
  """None if `path` can hold cache files, else the reason it cannot."""
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix='.probe-'):
      pass
  except OSError as e:
    return f'{type(e).__name__}: {e.strerror or e}'
  return None


def enable():
  """Points JAX's persistent compilation cache at `cache_dir()`, unless JAX already has one.

  Returns:
    The folder in use (JAX's own if it was configured already), or None when
    the cache is off or the folder is unusable (then one warning says why).
  """
  configured = jax.config.jax_compilation_cache_dir
  if configured:
    return configured
  path = cache_dir()
  if path is None:
    return None
  reason = _usable(path)
  if reason is not None:
    warnings.warn(
        f'minitrax: the compilation cache folder {path} is not usable ({reason}); '
        f'compiling without a persistent cache (set {ENV} to another folder, or to '
        f'nothing to turn the cache off)', stacklevel=2)
    return None
  jax.config.update('jax_compilation_cache_dir', path)
  if jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_DEFAULT_MIN_COMPILE_SECS:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', MIN_COMPILE_SECS)
  return path


__all__ = ['ENV', 'DEFAULT', 'MIN_COMPILE_SECS', 'cache_dir', 'enable']
