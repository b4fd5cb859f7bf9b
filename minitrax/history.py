"""Trax 1.2's `trax.history`: `History`, the record of metrics by mode and step.

>>> from minitrax.history import History
>>> History is __import__('minitrax').supervised.History
True
"""

from minitrax.supervised.history import History

__all__ = ['History']
