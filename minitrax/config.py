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

import copy
import difflib
import inspect
import os
import re
import tokenize

import gin
from gin import config_parser

from minitrax import data
from minitrax import lr
from minitrax import models  # noqa: F401  pylint: disable=unused-import  (registers every model)
from minitrax import optimizers
from minitrax.checks import check_int
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

_ORIGINALS = {}  # name -> the function or class registered under it (for its defaults)


def _register(fn, module, name=None):
  name = name or fn.__name__
  _ORIGINALS[name] = fn
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
  if train_steps is not None:
    check_int('train', 'train_steps', train_steps, 1, error=ConfigError)
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


def parse(config_files=(), bindings=(), finalize=True, defaults=()):
  """Clears gin, then parses `TRAIN_DEFAULTS`, `defaults`, config files and bindings.

  Args:
    config_files: paths or names of shipped configs.
    bindings: gin bindings, applied after the files.
    finalize: lock gin's configuration after parsing.
    defaults: gin bindings parsed before the files (the dataset shortcut's,
      `minitrax.shortcuts.defaults`), so that files and bindings override them.

  Each file and each binding is parsed on its own, in order (as gin would parse
  them together), so that an error names the one it is in.

  Raises:
    ConfigError: a file is missing; a file or binding has a syntax error (the
      message names the file or binding, the line and the statement, in one
      paragraph); or a binding names an unknown configurable, parameter or
      reference (the message quotes gin's, which names it).
  """
  gin.clear_config()
  paths = [config_path(f) for f in config_files or ()]
  gin.parse_config(TRAIN_DEFAULTS + list(defaults or ()))
  for path in paths:
    _parse_one(gin.parse_config_file, path, f'config file {path!r}', _read_text(path))
  for binding in bindings or ():
    _parse_one(gin.parse_config, binding, f'binding {binding!r}', binding)
  if finalize:
    _parse_one(lambda _: gin.finalize(), None, 'the configuration', '')


def _read_text(path):
  try:
    with open(path, encoding='utf-8') as f:
      return f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise ConfigError(f'config file {path!r} cannot be read: {e}') from e


def _parse_one(parse_fn, source, where, text):
  """`parse_fn(source)`, gin's errors turned into one `ConfigError` naming `where`."""
  try:
    parse_fn(source)
  except (SyntaxError, tokenize.TokenError) as e:
    raise ConfigError(_syntax_message(e, where, text)) from e
  except (ValueError, KeyError, TypeError, ImportError) as e:
    message = _GIN_LOCATION.sub(lambda m: _place(where, text, m), str(e).strip())
    if 'No configurable matching' in message:
      message += f' Known models: {", ".join(MODELS)}; inputs: {", ".join(INPUTS)}.'
    raise ConfigError(f'bad gin configuration: {message}') from e


# The location gin appends to a message: '\n  In file "f.gin", line 2\n    a.b = 1\n      ^'.
_GIN_LOCATION = re.compile(r'\n  In (?:file "[^\n]*", line|bindings string line) (\d+)\n    '
                           r'([^\n]*)(?:\n *\^)?$')


def _place(where, text, location):
  """` (<where>, line <n>: '<statement>')`, or ` (<where>)` for a one-line binding."""
  if '\n' not in text.strip():
    return f' ({where})'
  return f' ({where}, line {location.group(1)}: {location.group(2).strip()!r})'


_BINDING_START = re.compile(r'[A-Za-z_][\w./]*\s*=')


def _syntax_message(error, where, text):
  """One paragraph for a gin syntax error: where it is, the statement, what is wrong.

  A statement that runs on (an unclosed bracket) is named by the line that
  starts it, which is the line before the error when the error is at the very
  start of a line (the next binding read as part of the value).
  """
  if isinstance(error, tokenize.TokenError):  # ('EOF in multi-line statement', (line, col))
    reason, (line, column) = 'an unclosed bracket or string', error.args[1]
  else:
    reason = str(error.msg).split('\n', maxsplit=1)[0].rstrip('.')
    line, column = error.lineno or 1, error.offset or 0
    if reason.startswith('malformed node or string'):
      reason = 'not a literal value (a number, string, tuple, list, dict, @reference)'
  lines = text.splitlines() or ['']
  line = max(1, min(line, len(lines)))
  start = line - 1 if column == 0 and line > 1 else line
  while start > 1 and not _BINDING_START.match(lines[start - 1]):
    start -= 1
  if len(lines) == 1:
    return f'bad gin configuration: syntax error in {where}: {reason}'
  return (f'bad gin configuration: syntax error in {where}, line {start}: {reason}: '
          f'{lines[start - 1]!r}')


# Bindings a resumed run may change: how long it trains (resuming to train longer is the point).
RUN_LENGTH_BINDINGS = ('train.steps', 'train.train_steps')


def config_drift(saved_text, ignore=RUN_LENGTH_BINDINGS):
  """The bindings of a saved config whose values the current configuration changes.

  Every binding `C.p = v` of `saved_text` (a run's `config.gin`: gin's
  operative config, which lists every parameter the run used) is compared with
  the value the current configuration (after `parse`) gives `C.p`: its bound
  value, else the default of `C`'s parameter `p`. Parameters whose current
  value cannot be known (no binding and no default) are not compared.

  Args:
    saved_text: the text of a gin file.
    ignore: bindings not compared.

  Returns:
    A list of `(binding, saved, current)` strings, in the saved text's order;
    empty if nothing changed.

  Raises:
    ConfigError: `saved_text` is not gin.
  """
  try:
    statements = list(config_parser.ConfigParser(saved_text, gin.config.ParserDelegate(True)))
  except (SyntaxError, tokenize.TokenError, ValueError) as e:
    raise ConfigError(f'the saved configuration is not a gin file: {e}') from e
  drift = []
  for s in statements:
    if not isinstance(s, config_parser.BindingStatement):
      continue
    key = f'{s.scope + "/" if s.scope else ""}{s.selector}.{s.arg_name}'
    current = _current_value(key, s.selector, s.arg_name)
    if key not in ignore and current is not _UNKNOWN and _show(current) != _show(s.value):
      drift.append((key, _show(s.value), _show(current)))
  return drift


_UNKNOWN = object()


def _current_value(key, selector, arg_name):
  """The value `key` (`[scope/]C.p`) has now: bound, else `C`'s default for `p`, else _UNKNOWN."""
  try:
    value = gin.query_parameter(key)
  except ValueError:
    return _default(_ORIGINALS.get(selector.rsplit('.', 1)[-1]), arg_name)
  if isinstance(value, gin.config.ConfigurableReference) and repr(value).startswith('%'):
    value = copy.deepcopy(value)  # a macro: its value (deepcopy evaluates gin references)
  return value


def _default(fn, arg_name):
  """The default of parameter `arg_name` of function or class `fn`, or _UNKNOWN."""
  if inspect.isclass(fn):  # Its constructor's signature (a metaclass may hide it from `fn`'s).
    fn = next((c.__dict__['__init__'] for c in fn.__mro__ if '__init__' in c.__dict__), None)
  try:
    parameter = inspect.signature(fn).parameters.get(arg_name)
  except (TypeError, ValueError):
    return _UNKNOWN
  if parameter is None or parameter.default is inspect.Parameter.empty:
    return _UNKNOWN
  return parameter.default


def _show(value):
  """A gin value as gin writes it (`@MLP`, `(1, 2)`, `'adam'`)."""
  if not isinstance(value, gin.config.ConfigurableReference) and hasattr(value, 'selector'):
    return f'@{value.selector}{"()" if value.evaluate else ""}'  # an unknown reference
  if callable(value) and hasattr(value, '__name__'):  # a default that is a function or class
    return f'@{value.__name__}'
  return repr(value)


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
    'shipped_configs', 'config_path', 'parse', 'query', 'operative_config', 'reference_name',
    'config_drift', 'RUN_LENGTH_BINDINGS'
]
