"""Trax 1.2's `trax.math`: the same functions as `minitrax.fastmath` (its later name).

`from trax import math` / `from trax.math import numpy as np` become
`from minitrax import math` / `from minitrax.math import numpy as np`.
"""

# pylint: disable=wildcard-import,unused-wildcard-import,redefined-builtin
from minitrax.fastmath import *  # noqa: F403
from minitrax.fastmath import __all__  # noqa: F401
