"""What a training run trains: layers and batch signature from a trainer's arguments.

`build_task` turns the arguments users give a trainer (a model function of
`mode`, a loss factory, metric factories, `has_weights`, `id_to_mask`) into
the layers the compiled steps run:

* `model_with_loss`: `Serial(model(mode='train'), loss)`, a batch `(x, y[, w])`
  going through the model, then `(output, y[, w])` through the loss;
* `model_eval`: `model(mode='eval')`, taking the training model's weights;
* the metric layers, in the order of their sorted names;

and checks them against the training batches' signature, before anything is
initialised or compiled.
"""

import typing

from minitrax.errors import ConfigError
from minitrax.layers.base import Layer
from minitrax.layers.combinators import Serial
from minitrax.layers.metrics import METRICS
from minitrax.supervised.step import loss_weight_fn, trailing_weight_fn


class Task(typing.NamedTuple):
  """The layers of a training run and the shape of its batches.

  Attributes:
    model_with_loss: `Serial(model(mode='train'), loss)`: `(x, y[, w]) -> loss`.
    model_eval: `model(mode='eval')`.
    metric_names: sorted metric names.
    metric_layers: metric layers `(output, y[, w]) -> scalar`, in that order.
    signature: a training batch, as a tuple of `ShapeDtype`s.
    weight_fn: `batch -> sum of its loss weights` (`step.loss_weight_fn`).
  """
  model_with_loss: Layer
  model_eval: Layer
  metric_names: list
  metric_layers: list
  signature: tuple
  weight_fn: typing.Callable


def as_inputs(inputs):
  """An `Inputs` from an `Inputs` or a function returning one (as given by gin)."""
  if not hasattr(inputs, 'train_stream') and callable(inputs):
    inputs = inputs()
  if not hasattr(inputs, 'train_stream'):
    raise ConfigError(f'Trainer: inputs must be an Inputs or a function returning one, got '
                      f'{type(inputs).__name__}')
  return inputs


def build_task(model, loss_fn, inputs, has_weights=False, id_to_mask=None, metrics=None):
  """The `Task` of a run; see the module docstring.

  Args:
    model: a function of `mode` returning the model layer, or a layer.
    loss_fn: a loss factory (called with `has_weights`, `id_to_mask`) or layer.
    inputs: an `Inputs`: its first training batch gives the signature.
    has_weights: whether batches carry loss weights as a third array.
    id_to_mask: target id whose positions count nothing, or None.
    metrics: `{name: factory or layer}`; default Trax's five (`METRICS`).

  Raises:
    ConfigError: `has_weights` does not match the batches, or the loss does
      not take the model's outputs and the targets (and weights).
  """
  signature = batch_signature(inputs, has_weights)
  as_model = (lambda mode: model) if isinstance(model, Layer) else model
  kwargs = {'has_weights': has_weights, 'id_to_mask': id_to_mask}
  model_train, model_eval = as_model(mode='train'), as_model(mode='eval')
  loss = loss_fn if isinstance(loss_fn, Layer) else loss_fn(**kwargs)
  expected = model_train.n_out + len(signature) - model_train.n_in
  if loss.n_in != expected:
    raise ConfigError(f'Trainer: the loss {loss.name} takes {loss.n_in} inputs but gets '
                      f'{expected} (model output, targets{", weights" if has_weights else ""})'
                      f'; make it with has_weights={has_weights}')
  metrics = metrics or METRICS
  names = sorted(metrics)
  layers = [m if isinstance(m, Layer) else m(**kwargs) for m in (metrics[n] for n in names)]
  return Task(Serial(model_train, loss), model_eval, names, layers, signature,
              loss_weight_fn(has_weights, id_to_mask))


def batch_signature(inputs, has_weights):
  """The signature of a training batch; checks it against `has_weights`."""
  signature = tuple(inputs.example_signature)
  if len(signature) == 3 and not has_weights:
    raise ConfigError('Trainer: the training batches carry loss weights (inputs, targets, '
                      'weights) but has_weights=False; pass has_weights=True to use them')
  if len(signature) == 2 and has_weights:
    raise ConfigError('Trainer: has_weights=True but the training batches have no weights '
                      '(they are (inputs, targets)); pass has_weights=False')
  return signature


def layers_task(model, loss_layer, signature, eval_model=None):
  """The `Task` of a Trax 1.4 `TrainTask`: the model and loss given as layers; no metrics.

  A batch is `(inputs..., targets[, weights])`, the model's `n_in` inputs
  first; it carries loss weights (`trailing_weight_fn`) when it has more than
  `n_in + 1` arrays.

  Args:
    model: the model layer (Trax 1.4's `Loop` trains the layer it is given).
    loss_layer: `(model outputs..., rest of the batch...) -> loss`.
    signature: a training batch, as a tuple of `ShapeDtype`s.
    eval_model: the evaluation model (default `model`).

  Raises:
    ConfigError: the loss does not take the model's outputs and the batch's
      arrays after the model's inputs.
  """
  signature = tuple(signature)
  n_rest = len(signature) - model.n_in
  if n_rest < 1 or loss_layer.n_in != model.n_out + n_rest:
    raise ConfigError(f'TrainTask: the loss {loss_layer.name} takes {loss_layer.n_in} inputs but '
                      f'gets {model.n_out + max(n_rest, 0)}: the {model.n_out} output(s) of the '
                      f'model {model.name} and the {max(n_rest, 0)} array(s) of the batch after '
                      f'its {model.n_in} input(s) (batches of {len(signature)} arrays)')
  return Task(Serial(model, loss_layer), eval_model or model, [], [], signature,
              trailing_weight_fn(model.n_in, n_rest > 1))


__all__ = ['Task', 'as_inputs', 'build_task', 'batch_signature', 'layers_task']
