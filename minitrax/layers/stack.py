"""The data stack: how a layer's inputs are taken from it and its outputs put back.

A layer takes `n_in` inputs from the top of a stack (a tuple) and puts `n_out`
outputs back. One input or output is a bare array, several are a tuple:
`n_in == 1` gives the layer `stack[0]`, `n_in == 2` gives `(stack[0],
stack[1])`. Items below the inputs stay on the stack, under the outputs.
"""

import numpy as np  # noqa: F401  (the doctest)

from minitrax.errors import ArgumentError


def stack_inputs(layer, stack):
  """The inputs of `layer` from the top of a data stack (tuple).

  Args:
    layer: A layer; its `n_in` says how many items it takes.
    stack: The data stack, a tuple with the top item first.

  Returns:
    `stack[0]` when `layer.n_in == 1`, else a tuple of the top `n_in` items.
  """
  if layer.n_in == 1:
    return stack[0]
  return tuple(stack[:layer.n_in])


def push_outputs(layer, outputs, stack):
  """The stack after `layer` consumed its inputs and produced `outputs`.

  Args:
    layer: The layer that ran; its `n_in` items are taken off `stack`.
    outputs: What it returned: one array when `layer.n_out == 1`, else a tuple
      or list of exactly `n_out` items (`ArgumentError` otherwise).
    stack: The data stack before the layer ran (a tuple, top item first).
  """
  if layer.n_out == 1:
    outputs = (outputs,)
  elif not isinstance(outputs, (tuple, list)) or len(outputs) != layer.n_out:
    raise ArgumentError(f'layer {layer.name} declares n_out={layer.n_out} but returned '
                        f'{len(outputs) if isinstance(outputs, (tuple, list)) else "one array"}')
  return tuple(outputs) + tuple(stack[layer.n_in:])


def as_stack(x, n_in):
  """The inputs of a layer as a tuple of `n_in` items.

  Args:
    x: One input (any value) when `n_in == 1`, else a tuple or list of at least
      `n_in` items (`ArgumentError` otherwise).
    n_in: How many inputs the layer takes.
  """
  if n_in == 1:
    return (x,)
  if not isinstance(x, (tuple, list)) or len(x) < n_in:
    got = f'{len(x)} items' if isinstance(x, (tuple, list)) else 'one array'
    raise ArgumentError(f'expected a tuple of {n_in} inputs, got {got}')
  return tuple(x)


def check_n_inputs(layer, x):
  """Raises if `x` holds more inputs than `layer.n_in` (surplus inputs are never dropped).

  For `n_in == 1`, a tuple of two or more arrays is more than one input.
  """
  n_in = layer.n_in
  if isinstance(x, tuple) if n_in == 1 else isinstance(x, (tuple, list)):
    if len(x) > n_in:
      raise ArgumentError(f'layer {layer.name} (n_in={n_in}): expected {n_in} input'
                          f'{"s" if n_in != 1 else ""}, got {len(x)}')


def from_stack(stack, n_out):
  """Outputs of a layer from its final stack: a bare array when `n_out == 1`.

  Args:
    stack: The data stack (a tuple, top item first) after the layer ran.
    n_out: How many outputs the layer produces; a tuple of the top `n_out`
      items is returned when it is not 1.
  """
  return stack[0] if n_out == 1 else tuple(stack[:n_out])


def to_list(outputs):
  """Layer outputs as nested Python lists (one array, or a tuple/list of them), for equality.

  Args:
    outputs: One array, or a tuple or list of arrays (each turned by `.tolist()`).

  >>> to_list((np.ones(2), np.zeros((1, 1))))
  [[1.0, 1.0], [[0.0]]]
  """
  if isinstance(outputs, (list, tuple)):
    return [y.tolist() for y in outputs]
  return outputs.tolist()


__all__ = ['stack_inputs', 'push_outputs', 'as_stack', 'check_n_inputs', 'from_stack', 'to_list']
