"""Trax 1.2's `trax.supervised.inputs`: `Inputs` and the built-in input functions.

The same objects as in `minitrax.data` (Trax 1.4 moved them to `trax.data`).

>>> from minitrax.supervised import inputs
>>> inputs.Inputs is __import__('minitrax').data.Inputs
True
"""

from minitrax.data import (Inputs, addition_inputs, array_inputs, copy_inputs, random_inputs,
                           reverse_inputs, synthetic_inputs, tfds_inputs)

inputs = tfds_inputs  # Trax 1.2's `trax.supervised.inputs.inputs(dataset_name, ...)`

__all__ = [
    'Inputs', 'inputs', 'tfds_inputs', 'copy_inputs', 'reverse_inputs', 'addition_inputs',
    'random_inputs', 'synthetic_inputs', 'array_inputs'
]
