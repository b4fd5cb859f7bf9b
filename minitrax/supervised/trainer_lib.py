"""Trax's `trax.supervised.trainer_lib`: `Trainer`, `train` and `epochs` under that module path.

>>> from minitrax.supervised import trainer_lib
>>> trainer_lib.train is __import__('minitrax').supervised.train
True
"""

from minitrax.supervised.train import epochs, train
from minitrax.supervised.trainer import Trainer

__all__ = ['Trainer', 'train', 'epochs']
