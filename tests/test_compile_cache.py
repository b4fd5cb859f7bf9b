"""The persistent compilation cache: on by default, overridable, never an error."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from minitrax import compile_cache

# A fresh process: import minitrax, compile a small layer call, report JAX's cache folder.
_SCRIPT = textwrap.dedent("""
    import json, warnings
    warnings.simplefilter('always')
    with warnings.catch_warnings(record=True) as caught:
      import jax
      jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
      import numpy as np
      import minitrax.layers as tl
      from minitrax.shapes import ShapeDtype
      model = tl.Serial(tl.Dense(3), tl.Relu())
      model.init(ShapeDtype((2, 4)))
      y = np.asarray(model(np.ones((2, 4), np.float32)))
    print(json.dumps({'dir': jax.config.jax_compilation_cache_dir, 'sum': float(y.sum()),
                      'warnings': [str(w.message) for w in caught
                                   if 'cache' in str(w.message)]}))
    """)


def _run(env_value):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  env.pop(compile_cache.ENV, None)
  if env_value is not None:
    env[compile_cache.ENV] = env_value
  out = subprocess.run([sys.executable, '-c', _SCRIPT], env=env, capture_output=True, text=True,
                       timeout=300, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def _entries(folder):
  return sorted(name for name in os.listdir(folder) if not name.startswith('.'))


def test_a_second_process_finds_the_first_ones_programs_in_the_cache(tmp_path):
  folder = str(tmp_path / 'xla')
  first = _run(folder)
  assert first['dir'] == folder and first['warnings'] == []
  written = _entries(folder)
  assert written, 'the first process wrote no cache entry'
  second = _run(folder)
  assert second['sum'] == first['sum'] and _entries(folder) == written  # read, not rewritten


def test_an_empty_variable_turns_the_cache_off(tmp_path):
  assert _run('')['dir'] is None


def test_the_default_folder_is_under_the_home_cache(monkeypatch):
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  assert compile_cache.cache_dir() == os.path.expanduser('~/.cache/minitrax/xla')
  monkeypatch.setenv(compile_cache.ENV, '')
  assert compile_cache.cache_dir() is None


def test_an_unwritable_folder_is_skipped_with_one_warning(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a folder')
  result = _run(str(blocker / 'xla'))  # a folder under a file cannot exist
  assert result['dir'] is None
  assert len(result['warnings']) == 1
  assert result['warnings'][0].startswith(f'minitrax: the compilation cache folder {blocker}/xla '
                                          f'is not usable (')


def test_a_corrupt_cache_is_recompiled_not_an_error(tmp_path):
  folder = str(tmp_path / 'xla')
  good = _run(folder)
  for name in _entries(folder):
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
      with open(path, 'wb') as f:
        f.write(b'\0garbage' * 8)
  again = _run(folder)
  assert again['sum'] == good['sum']


def test_a_folder_jax_already_has_is_left_alone(monkeypatch):
  import jax  # pylint: disable=import-outside-toplevel
  configured = jax.config.jax_compilation_cache_dir
  if not configured:
    pytest.skip('the test session runs without a cache folder')
  monkeypatch.setenv(compile_cache.ENV, '/nonexistent/elsewhere')
  assert compile_cache.enable() == configured
  assert jax.config.jax_compilation_cache_dir == configured


def test_programs_of_a_tenth_of_a_second_are_kept_unless_the_user_chose_a_threshold(tmp_path):
  script = 'import jax, minitrax; print(jax.config.jax_persistent_cache_min_compile_time_secs)'
  env = dict(os.environ, JAX_PLATFORMS='cpu', **{compile_cache.ENV: str(tmp_path / 'xla')})
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  run = lambda env: subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                                   text=True, timeout=120, check=True).stdout.split()[-1]
  assert float(run(env)) == compile_cache.MIN_COMPILE_SECS == 0.1
  assert float(run(dict(env, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='2.5'))) == 2.5
