"""Multilayer perceptrons: fully connected feed-forward networks.

`MLP` accepts both signatures that Trax users know:

* Trax 1.2 (a classifier): `MLP(d_hidden=512, n_hidden_layers=2,
  activation_fn=Relu, n_output_classes=10)` flattens each example, applies
  `n_hidden_layers` times `Dense(d_hidden)` and the activation, then
  `Dense(n_output_classes)` and `LogSoftmax`, so that its output goes straight
  into `CrossEntropyLoss`::

      Serial(Flatten, [Dense(d_hidden), Relu] * n_hidden_layers,
             Dense(n_output_classes), LogSoftmax)

* Trax 1.4 (a building block): `MLP(layer_widths=(128, 64))` gives
  `Serial(Flatten, Dense(128), Relu, Dense(64))`: one `Dense` per width,
  the activation between them (and after the last with `out_activation`),
  no `LogSoftmax`.
"""

# Model and layer functions are CamelCase, as in Trax.
# pylint: disable=invalid-name

from minitrax.checks import check_int, check_mode
from minitrax.errors import ArgumentError, ArgumentTypeError
from minitrax.layers.activation_fns import Relu
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Flatten, LogSoftmax
from minitrax.models.registry import register

_DEFAULTS_1_2 = {'d_hidden': 512, 'n_hidden_layers': 2, 'n_output_classes': 10}


def _check_1_4_form(layer_widths, given_1_2):
  """Checks `layer_widths` and that no Trax 1.2 argument was changed alongside it."""
  changed = {k: v for k, v in given_1_2.items() if v != _DEFAULTS_1_2[k]}
  if changed:
    raise ArgumentError(f'MLP: pass either layer_widths (Trax 1.4 form) or d_hidden, '
                        f'n_hidden_layers and n_output_classes (Trax 1.2 form), not both; got '
                        f'layer_widths={layer_widths!r} and {changed}')
  try:
    widths = tuple(layer_widths)
  except TypeError:
    raise ArgumentError(f'MLP: layer_widths must be a non-empty tuple of ints >= 1, got '
                        f'{layer_widths!r}') from None
  if not widths:
    raise ArgumentError('MLP: layer_widths must be a non-empty tuple of ints >= 1, got ()')
  for width in widths:
    check_int('MLP', 'every entry of layer_widths', width, 1)
  return widths


@register
def MLP(d_hidden=512, n_hidden_layers=2, activation_fn=Relu, n_output_classes=10, mode='train', *,
        layer_widths=None, out_activation=False, flatten=True):
  """A multilayer perceptron; see the module docstring for the two forms.

  n_in = n_out = 1. Trax 1.2 form: `(batch, ...) -> (batch, n_output_classes)`
  log-probabilities. Trax 1.4 form: `(batch, ...) -> (batch, layer_widths[-1])`.
  Without `flatten` the input keeps its axes: `(..., d_in) -> (..., d_out)`.

  >>> model = MLP(d_hidden=128, n_hidden_layers=1)      # 784-128-10 on MNIST
  >>> block = MLP(layer_widths=(64, 32), flatten=False)  # Dense, Relu, Dense

  Args:
    d_hidden: width of each hidden layer (1.2 form).
    n_hidden_layers: number of hidden `Dense` + activation pairs (1.2 form);
      0 gives a linear classifier.
    activation_fn: function returning an activation layer, e.g. `Relu`.
    n_output_classes: number of classes (1.2 form).
    mode: 'train', 'eval' or 'predict'; an MLP behaves the same in all.
    layer_widths: tuple of widths, one `Dense` each (1.4 form); excludes the
      1.2 arguments.
    out_activation: (1.4 form) also apply the activation after the last layer.
    flatten: start with `Flatten()`, merging all axes after the batch axis.

  Returns:
    A `Serial` layer.
  """
  check_mode('MLP', 'mode', mode)
  if not callable(activation_fn):
    raise ArgumentTypeError(f'MLP: activation_fn must be a function returning a layer (e.g. Relu), '
                            f'got {activation_fn!r}')
  head = [Flatten()] if flatten else []
  if layer_widths is not None:
    widths = _check_1_4_form(layer_widths, {
        'd_hidden': d_hidden, 'n_hidden_layers': n_hidden_layers,
        'n_output_classes': n_output_classes
    })
    layers = []
    for i, width in enumerate(widths):
      layers.append(Dense(width))
      if i < len(widths) - 1 or out_activation:
        layers.append(activation_fn())
    return Serial(head, layers, name='MLP')
  if out_activation:
    raise ArgumentError('MLP: out_activation belongs to the Trax 1.4 form; pass layer_widths '
                        'too, or drop it (the Trax 1.2 form ends with LogSoftmax)')
  check_int('MLP', 'd_hidden', d_hidden, 1)
  check_int('MLP', 'n_hidden_layers', n_hidden_layers, 0)
  check_int('MLP', 'n_output_classes', n_output_classes, 1)
  hidden = [[Dense(d_hidden), activation_fn()] for _ in range(n_hidden_layers)]
  return Serial(head, hidden, Dense(n_output_classes), LogSoftmax(), name='MLP')


__all__ = ['MLP']
