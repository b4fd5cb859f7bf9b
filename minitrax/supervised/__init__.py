"""Supervised training: `Trainer` (the codelab's API), `train()`, Trax 1.4's `training` (`Loop`,
`TrainTask`, `EvalTask`) and decoding."""

from minitrax.data.inputs import Inputs
from minitrax.supervised import decoding
from minitrax.supervised import training
from minitrax.supervised.history import History
from minitrax.supervised.train import Objective, Plan, train
from minitrax.supervised.trainer import Trainer

__all__ = ['Inputs', 'Trainer', 'History', 'train', 'Objective', 'Plan', 'decoding', 'training']
