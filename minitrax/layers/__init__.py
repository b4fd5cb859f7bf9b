"""Layers: the `Layer` contract, combinators, core layers, losses and metrics."""

from minitrax.layers.base import EMPTY, Fn, Layer
from minitrax.layers.combinators import (Add, Branch, Cache, Chunk, Concatenate, Cond, Drop,
                                         Dup, Multiply, Parallel, Residual, Scan, Select,
                                         Serial, Split, SubtractTop, Swap)
from minitrax.errors import LayerError

__all__ = ['EMPTY', 'Fn', 'Layer', 'LayerError', 'Add', 'Branch', 'Cache', 'Chunk',
           'Concatenate', 'Cond', 'Drop', 'Dup', 'Multiply', 'Parallel', 'Residual', 'Scan',
           'Select', 'Serial', 'Split', 'SubtractTop', 'Swap']
