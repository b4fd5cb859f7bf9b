"""minitrax: train neural nets with JAX. Trax's API, rebuilt small and fast."""

from minitrax import errors
from minitrax import layers
from minitrax import lr
from minitrax import optimizers
from minitrax import shapes

__all__ = ['errors', 'layers', 'lr', 'optimizers', 'shapes']
