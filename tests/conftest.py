"""Test-wide settings: CPU only, a persistent compilation cache, strict checks.

Strict: an implicit broadcast between arrays of different ranks (`(n,) + (n, 1)`,
or a bias `(d,)` added to `(batch, d)` without saying so) raises; scalars still
broadcast. Set through the environment, so the subprocesses that tests start
(the command line, resumed runs, multi-device runs) are strict too.
"""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_NUMPY_RANK_PROMOTION', 'raise')

import jax  # noqa: E402  (must follow the environment settings above)

_CACHE = os.environ.get('MINITRAX_TEST_JAX_CACHE',
                        os.path.expanduser('~/.cache/minitrax/jax_test_cache'))
jax.config.update('jax_compilation_cache_dir', _CACHE)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)
