"""minitrax: train neural nets with JAX. Trax's API, rebuilt small and fast."""

from minitrax import errors
from minitrax import shapes

__all__ = ['errors', 'shapes']
