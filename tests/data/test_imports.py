"""Importing minitrax.data loads no TensorFlow, tfds or gin; reading TFDS loads no TensorFlow."""

import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')

CHECK_IMPORT = """
import sys
import minitrax.data
loaded = sorted(m for m in ('tensorflow', 'tensorflow_datasets', 'gin') if m in sys.modules)
assert not loaded, loaded
"""

CHECK_TFDS = """
import sys
import tensorflow_datasets as tfds
from minitrax.data import tfds_inputs
with tfds.testing.mock_data(num_examples=8):
  for name in ('mnist', 'lm1b'):
    next(tfds_inputs(name, batch_size=2, bucket_length=8).train_stream(1))
assert 'tensorflow' not in sys.modules
"""


def _run(code):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]


def test_importing_minitrax_data_is_light():
  _run(CHECK_IMPORT)


def test_reading_tfds_datasets_never_imports_tensorflow():
  _run(CHECK_TFDS)
