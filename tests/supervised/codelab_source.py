"""Helpers for the codelab and notebook tests: the codelab's code, a child process environment."""

import os

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
CODELAB = os.path.join(HERE, 'codelab.md')


def code_blocks(path=CODELAB):
  """The contents of the ``` blocks of a Markdown file, in order."""
  blocks, lines = [], None
  for line in open(path, encoding='utf-8').read().splitlines():
    if line.startswith('```'):
      if lines is not None:
        blocks.append('\n'.join(lines) + '\n')
      lines = [] if lines is None else None
    elif lines is not None:
      lines.append(line)
  return blocks


def as_minitrax(block, keep_shell=False):
  """A codelab block with `import trax` -> `import minitrax as trax`; shell lines dropped."""
  lines = []
  for line in block.splitlines():
    if line.lstrip().startswith('!') and not (keep_shell and 'pip' not in line):
      continue
    lines.append('import minitrax as trax' if line.strip() == 'import trax' else line)
  return '\n'.join(lines).strip('\n')


def codelab_code():
  """The whole codelab as one script for `import minitrax as trax`."""
  return '\n'.join(as_minitrax(block) for block in code_blocks()) + '\n'


def subprocess_env(**extra):
  """The environment for a child Python: CPU only, and this session's compilation cache."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', **extra)
  if jax.config.jax_compilation_cache_dir:
    env['JAX_COMPILATION_CACHE_DIR'] = jax.config.jax_compilation_cache_dir
    env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = str(
        jax.config.jax_persistent_cache_min_compile_time_secs)
  return env
