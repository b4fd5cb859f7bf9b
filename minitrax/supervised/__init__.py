"""Supervised training: `Trainer` (the codelab's API), `train()`, Trax 1.4's `training`.

Also `trainer_lib` (Trax's module path of `train` and `Trainer`), `decoding` and
`plot_history` (training curves; needs matplotlib).
"""

from minitrax.data.inputs import Inputs
from minitrax.supervised import decoding
from minitrax.supervised import trainer_lib
from minitrax.supervised import training
from minitrax.supervised.history import History
from minitrax.supervised.plot import plot_history
from minitrax.supervised.train import Objective, Plan, train
from minitrax.supervised.trainer import Trainer

__all__ = [
    'Inputs', 'Trainer', 'History', 'train', 'Objective', 'Plan', 'decoding', 'trainer_lib',
    'training', 'plot_history'
]
