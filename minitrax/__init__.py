"""minitrax: train neural nets with JAX. Trax's API, rebuilt small and fast.

`import minitrax as trax` runs Trax 1.2 code (the codelab's); `import
minitrax.trax14 as trax` gives Trax 1.4's meanings where the two differ.

Importing minitrax turns on JAX's persistent compilation cache (see
`minitrax.compile_cache`; `MINITRAX_CACHE_DIR=` turns it off).
"""

# First, before anything is compiled: JAX decides at its first compilation whether to use a cache.
from minitrax import compile_cache

compile_cache.enable()

from minitrax import data
from minitrax import errors
from minitrax import fastmath
from minitrax import history
from minitrax import layers
from minitrax import learning_rate
from minitrax import lr
from minitrax import math
from minitrax import models
from minitrax import optimizers
from minitrax import shapes
from minitrax import supervised

__all__ = [
    'data', 'errors', 'fastmath', 'history', 'layers', 'learning_rate', 'lr', 'math', 'models',
    'optimizers', 'shapes', 'supervised'
]
