"""`trax.layers` of Trax 1.4: `minitrax.layers` with 1.4's meaning for the names that changed.

>>> import minitrax.layers, minitrax.trax14.layers as tl
>>> tl.SRU is minitrax.layers.SRU14, tl.Dense is minitrax.layers.Dense
(True, True)
"""

from minitrax.layers import *
from minitrax.layers import __all__ as _ALL_12
from minitrax.layers import metrics14
from minitrax.layers.attention import CausalAttention14 as CausalAttention
from minitrax.layers.lsh_attention import LSHSelfAttention14 as LSHSelfAttention
from minitrax.layers.metrics14 import *
from minitrax.layers.positions import PositionalEncoding14 as PositionalEncoding
from minitrax.layers.research.position_encodings import (FixedBasePositionalEncoding14 as
                                                         FixedBasePositionalEncoding)
from minitrax.layers.rnn import SRU14 as SRU

# The names whose meaning here is Trax 1.4's rather than `minitrax.layers`'.
CHANGED = sorted(
    set(metrics14.__all__) | {
        'CausalAttention', 'LSHSelfAttention', 'PositionalEncoding', 'FixedBasePositionalEncoding',
        'SRU'
    })

__all__ = sorted(set(_ALL_12) | set(CHANGED) | {'CHANGED'})
