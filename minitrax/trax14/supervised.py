"""`trax.supervised` of Trax 1.4: `training` (`Loop`, `TrainTask`, `EvalTask`), `decoding`,
`lr_schedules` (= `minitrax.lr`), and the `Trainer` of 1.2, all shared with `minitrax.supervised`.

>>> import minitrax.trax14 as trax
>>> trax.supervised.lr_schedules.multifactor is trax.lr.multifactor
True
"""

from minitrax import lr as lr_schedules
from minitrax.supervised import *
from minitrax.supervised import __all__ as _ALL
from minitrax.supervised import decoding, training

__all__ = sorted(set(_ALL) | {'lr_schedules', 'decoding', 'training'})
