"""Trax 1.2's `trax.learning_rate`: the same schedules as `minitrax.lr` (its later name).

>>> from minitrax import learning_rate, lr
>>> learning_rate.MultifactorSchedule is lr.MultifactorSchedule
True
"""

# pylint: disable=wildcard-import,unused-wildcard-import
from minitrax.lr import *  # noqa: F403
