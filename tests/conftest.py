"""Test-wide settings: CPU only, a persistent compilation cache, strict checks."""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402  (must follow the environment settings above)

_CACHE = os.environ.get('MINITRAX_TEST_JAX_CACHE',
                        os.path.expanduser('~/.cache/minitrax/jax_test_cache'))
jax.config.update('jax_compilation_cache_dir', _CACHE)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)
