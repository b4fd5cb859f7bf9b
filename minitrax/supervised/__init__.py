"""Supervised training: Inputs, the Trainer, train() and decoding."""

from minitrax.data.inputs import Inputs

__all__ = ['Inputs']
