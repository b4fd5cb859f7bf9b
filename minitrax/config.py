"""Gin configuration: the ONE module of minitrax that imports gin and registers things.

Importing this module registers, under short names that gin files and
`--config` bindings use:

* `train` (minitrax.supervised) and `Trainer`;
* every model of `minitrax.models` (`MLP`, `TransformerLM`, `Resnet50`, ...);
* the optimizers (`Adafactor`, `Adam`, `Momentum`, `RMSProp`, `SGD`, `SM3`);
* the schedules of `minitrax.lr` (`MultifactorSchedule`, `EvalAdjustingSchedule`,
  `multifactor`, `constant`, `warmup`, `warmup_and_rsqrt_decay`, `cosine`);
* losses and metrics, activations, normalizations and RNN cells of `minitrax.layers`;
* inputs: `inputs` (TFDS by `dataset_name`), `copy_inputs`, `reverse_inputs`,
  `addition_inputs`, `random_inputs`, `array_inputs`, `idx_inputs`, `text_inputs`.

Library code never needs gin: everything here is also an ordinary function
with keyword arguments. Configs shipped with minitrax live in
`minitrax/configs/`; `config_path('mlp_mnist')` finds one by name.

>>> from minitrax import config
>>> config.parse(['transformer_copy'], ['train.steps = 10'])      # doctest: +SKIP
>>> config.train(output_dir='/tmp/copy')                          # doctest: +SKIP
"""

import difflib
import os

import gin

from minitrax import data
from minitrax import lr
from minitrax import models  # noqa: F401  pylint: disable=unused-import  (registers every model)
from minitrax import optimizers
from minitrax.errors import ConfigError
from minitrax.layers import activation_fns, metrics, normalization, rnn
from minitrax.models import registry
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.lr import MultifactorSchedule
from minitrax.optimizers import Adafactor
from minitrax.supervised.train import Objective, Plan
from minitrax.supervised.train import train as _train
from minitrax.supervised.trainer import Trainer as _Trainer

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs')

_LAYERS = ([getattr(activation_fns, n) for n in activation_fns.__all__] + [
    normalization.BatchNorm, normalization.LayerNorm, normalization.FilterResponseNorm,
    rnn.LSTMCell, rnn.GRUCell
] + [getattr(metrics, n) for n in metrics.__all__ if n != 'METRICS'])
_OPTIMIZERS = [
    optimizers.Adafactor, optimizers.Adam, optimizers.Momentum, optimizers.RMSProp, optimizers.SGD,
    optimizers.SM3
]
_SCHEDULES = [
    lr.MultifactorSchedule, lr.EvalAdjustingSchedule, lr.multifactor, lr.constant, lr.warmup,
    lr.warmup_and_rsqrt_decay, lr.cosine
]
_INPUTS = {
    'inputs': data.tfds_inputs, 'copy_inputs': data.copy_inputs,
    'reverse_inputs': data.reverse_inputs, 'addition_inputs': data.addition_inputs,
    'random_inputs': data.random_inputs, 'array_inputs': data.array_inputs,
    'idx_inputs': data.idx_inputs, 'text_inputs': data.text_inputs
}


def _register(fn, module, name=None):
  name = name or fn.__name__
  return gin.external_configurable(fn, name=name, module=module)


def _flat_train(output_dir, model=None, loss_fn=CrossEntropyLoss, inputs=None, optimizer=Adafactor,
                lr_schedule=MultifactorSchedule, trainer_class=_Trainer, steps=1000,
                checkpoints_at=None, eval_steps=10, eval_frequency=100, random_seed=None,
                n_devices=None, has_weights=False, id_to_mask=None, metrics=None,
                checkpoint_highest=None, checkpoint_lowest=None, train_steps=None, config_text=None,
                keep_checkpoints=None, permanent_every=None):
  """`supervised.train` with its settings as flat keywords: the names gin bindings use.

  `train.steps = 1000`, `train.has_weights = True`, ... fill the groups
  `Plan` and `Objective`; `train_steps` is the older name of `steps` (as in
  the Trax README's `--config="train.train_steps=1000"`) and wins when given.
  """
  objective = Objective(loss_fn, has_weights, id_to_mask, metrics)
  plan = Plan(train_steps if train_steps is not None else steps, eval_steps, eval_frequency,
              checkpoints_at, checkpoint_highest, checkpoint_lowest, keep_checkpoints,
              permanent_every)
  return _train(output_dir, model, inputs, optimizer, lr_schedule, objective, plan, random_seed,
                n_devices, trainer_class, config_text)


_flat_train.__name__ = 'train'
train = _register(_flat_train, 'minitrax.supervised')
Trainer = _register(_Trainer, 'minitrax.supervised')
MODELS = {
    name: _register(registry.get_model(name), 'minitrax.models', name)
    for name in registry.model_names()
}
for _fn in _LAYERS:
  _register(_fn, 'minitrax.layers')
for _fn in _OPTIMIZERS:
  _register(_fn, 'minitrax.optimizers')
for _fn in _SCHEDULES:
  _register(_fn, 'minitrax.lr')
INPUTS = {name: _register(fn, 'minitrax.data', name) for name, fn in _INPUTS.items()}
SYNTHETIC_TASKS = tuple(data.SYNTHETIC_TASKS)  # `--dataset=copy` binds train.inputs=@copy_inputs

# `train`'s defaults, as gin references: so that e.g. `Adafactor.factored = False` configures the
# default optimizer (a plain default argument would be the unconfigured class). Parsed first.
TRAIN_DEFAULTS = [
    'train.loss_fn = @CrossEntropyLoss', 'train.optimizer = @Adafactor',
    'train.lr_schedule = @MultifactorSchedule', 'train.trainer_class = @Trainer'
]


def shipped_configs():
  """Names of the configs shipped in `minitrax/configs` (without `.gin`), sorted."""
  if not os.path.isdir(CONFIGS_DIR):
    return []
  return sorted(f[:-4] for f in os.listdir(CONFIGS_DIR) if f.endswith('.gin'))


def config_path(name_or_path):
  """The path of a config file given as a path or a shipped config's name.

  Raises:
    ConfigError: no such file and no shipped config of that name.
  """
  path = os.path.expanduser(name_or_path)
  if os.path.isfile(path):
    return path
  name = os.path.basename(path)
  name = name[:-4] if name.endswith('.gin') else name
  shipped = os.path.join(CONFIGS_DIR, name + '.gin')
  if os.path.isfile(shipped):
    return shipped
  close = difflib.get_close_matches(name, shipped_configs(), n=1)
  hint = f' (did you mean {close[0]!r}?)' if close else ''
  raise ConfigError(f'config file {name_or_path!r} not found{hint}; give a path or one of the '
                    f'shipped configs: {", ".join(shipped_configs())}')


def parse(config_files=(), bindings=(), finalize=True):
  """Clears gin, then parses `TRAIN_DEFAULTS`, config files (paths or shipped names) and bindings.

  Raises:
    ConfigError: a file is missing or a binding names an unknown configurable,
      parameter or reference (the message quotes gin's, which names it).
  """
  gin.clear_config()
  paths = [config_path(f) for f in config_files or ()]
  try:
    gin.parse_config(TRAIN_DEFAULTS)
    gin.parse_config_files_and_bindings(paths, list(bindings or ()), finalize_config=finalize)
  except (ValueError, KeyError, SyntaxError, TypeError, ImportError) as e:
    message = str(e).strip()
    if 'No configurable matching' in message:
      message += f'\nKnown models: {", ".join(MODELS)}; inputs: {", ".join(INPUTS)}.'
    raise ConfigError(f'bad gin configuration: {message}') from e


def query(binding, default=None):
  """The value bound to `binding` (e.g. 'inputs.dataset_name'), or `default`."""
  try:
    return gin.query_parameter(binding)
  except ValueError:
    return default


def operative_config():
  """The gin bindings actually used so far, as the text of a .gin file."""
  return gin.operative_config_str()


def reference_name(value):
  """The configurable name of a gin reference (`@MLP` -> 'MLP'), else None."""
  configurable = getattr(value, 'configurable', None)
  return getattr(configurable, 'name', None)


__all__ = [
    'train', 'Trainer', 'MODELS', 'INPUTS', 'SYNTHETIC_TASKS', 'TRAIN_DEFAULTS', 'CONFIGS_DIR',
    'shipped_configs', 'config_path', 'parse', 'query', 'operative_config', 'reference_name'
]
