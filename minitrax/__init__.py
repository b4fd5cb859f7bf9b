"""minitrax: train neural nets with JAX. Trax's API, rebuilt small and fast."""

from minitrax import data
from minitrax import errors
from minitrax import layers
from minitrax import lr
from minitrax import models
from minitrax import optimizers
from minitrax import shapes
from minitrax import supervised

__all__ = ['data', 'errors', 'layers', 'lr', 'models', 'optimizers', 'shapes', 'supervised']
