r"""The command-line trainer: absl flags -> gin -> `minitrax.supervised.train`.

    python -m minitrax.trainer --dataset=mnist --model=MLP \
        --config="train.train_steps=1000"
    python -m minitrax.trainer --config_file=transformer_copy \
        --config="train.steps=300" --output_dir=/tmp/copy

`--config_file` takes a path or the name of a config shipped in
`minitrax/configs` (repeatable); `--config` takes gin bindings (repeatable),
applied after the files; `--dataset` and `--model` are shorthands for
bindings. `--dataset` names a synthetic task (copy, reverse, addition,
random: offline) or a TFDS dataset. An unknown binding, model or dataset stops
the run before any computation, with a message naming it.

Every mistake on the command line (a bad flag, binding, value, config file or
data) prints one paragraph on stderr, `minitrax.trainer: error: ...`, and
exits with status 2 (a run that fails, e.g. a NaN loss, exits with 1);
`--verbose` prints the traceback too. A run resumed in an `--output_dir`
whose `config.gin` holds other values (except `train.steps`) lists the
changed bindings and stops, unless `--allow_config_change`: then the old
file is kept as `config.<step>.gin` and `config.gin` gets the new config.
"""

import datetime
import logging
import os
import re
import sys
import traceback

from absl import app
from absl import flags

from minitrax import shortcuts
from minitrax.errors import ConfigError

FLAGS = flags.FLAGS

flags.DEFINE_string(
    'dataset', None, 'Dataset: a synthetic task (copy, reverse, addition, '
    'random) or a TFDS name (mnist, cifar10, lm1b, ...).')
flags.DEFINE_string('model', None, 'Model name, e.g. MLP, TransformerLM, Resnet50.')
flags.DEFINE_string('data_dir', None, 'Folder of TFDS data (default $TFDS_DATA_DIR or '
                    '~/tensorflow_datasets).')
flags.DEFINE_string(
    'output_dir', None, 'Folder for checkpoints and summaries; default '
    '~/minitrax/{model}_{dataset}_{YYYYmmdd_HHMM}.')
flags.DEFINE_multi_string(
    'config_file', None, 'Gin config file: a path or the name of a '
    'shipped config (e.g. mlp_mnist). Repeatable.')
flags.DEFINE_multi_string(
    'config', None, 'Gin binding, e.g. "train.steps=1000". Repeatable; '
    'applied after the config files.')
flags.DEFINE_integer('random_seed', None, 'Seed of all randomness (default 0).')
flags.DEFINE_boolean(
    'disable_jit', False, 'Run every step as plain Python (op by op), for '
    'debugging with print and pdb.')
flags.DEFINE_boolean('jax_debug_nans', False, 'Stop at the first operation that makes a NaN.')
flags.DEFINE_boolean('verbose', False, 'On an error, print the traceback too.')
flags.DEFINE_boolean(
    'allow_config_change', False, 'Resume a run whose config.gin differs from the '
    'configuration given now (the old one is kept as config.<step>.gin).')

USAGE_ERROR = 2  # exit status of a mistake on the command line (as argparse's)
RUN_ERROR = 1  # exit status of a run that could not go on (e.g. a NaN loss)

flags.DEFINE_string(
    'coordinator_address', None, 'host:port of process 0 of a multi-process run (the same '
    'on every process); see minitrax.distributed.')
flags.DEFINE_integer('num_processes', None, 'Processes in a multi-process run.')
flags.DEFINE_integer('process_id', None, 'This process\'s index in a multi-process run.')
flags.DEFINE_boolean(
    'distributed', False, 'Join a multi-process run set up by the cluster '
    '(SLURM, TPU pod slice, MPI); implied by the three flags above.')
flags.DEFINE_enum(
    'sharding', None, ['replicated', 'fsdp'], 'Weights and optimizer slots: a copy '
    'on every device (replicated, the default) or split over them (fsdp).')


def _start_distributed():
  """Joins a multi-process run if a distributed flag is given; `--sharding` as a binding."""
  from minitrax import distributed  # pylint: disable=import-outside-toplevel
  from minitrax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  given = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if FLAGS.distributed or any(flag is not None for flag in given):
    if not FLAGS.output_dir:
      raise ConfigError('a multi-process run needs --output_dir (the default folder is named '
                        'after the time, which the processes may not agree on)')
    distributed.initialize(*given)
  return [f'Trainer.sharding = {FLAGS.sharding!r}'] if FLAGS.sharding else []


flags.DEFINE_string(
    'train_split', None, 'TFDS split string to train on, e.g. train, test[:80%], '
    'train[:1000] (TFDS datasets only; default train).')
flags.DEFINE_string(
    'eval_split', None, 'TFDS split string to evaluate on, e.g. test[80%:] (TFDS '
    'datasets only; default validation, else test).')


def _bindings(config):
  """The gin bindings of the flags, in the order gin should apply them."""
  bindings = []
  if FLAGS.dataset:
    if FLAGS.dataset in config.SYNTHETIC_TASKS:
      bindings.append(f'train.inputs = @{FLAGS.dataset}_inputs')
    else:
      bindings += ['train.inputs = @inputs', f'inputs.dataset_name = {FLAGS.dataset!r}']
  if FLAGS.data_dir:
    bindings.append(f'inputs.data_dir = {os.path.expanduser(FLAGS.data_dir)!r}')
  if FLAGS.model:
    config.registry.get_model(FLAGS.model)  # ConfigError naming the known models.
    bindings.append(f'train.model = @{FLAGS.model}')
  if FLAGS.random_seed is not None:
    bindings.append(f'train.random_seed = {FLAGS.random_seed}')
  return bindings + _split_bindings(config) + list(FLAGS.config or ())  # --config last: it wins


def _split_bindings(config):
  """`inputs.train_split`/`inputs.eval_split` of `--train_split`/`--eval_split`."""
  splits = {'train_split': FLAGS.train_split, 'eval_split': FLAGS.eval_split}
  given = {name: value for name, value in splits.items() if value}
  if given and FLAGS.dataset in config.SYNTHETIC_TASKS:
    raise ConfigError(f'--{next(iter(given))} applies to TFDS datasets, not to the '
                      f'synthetic task --dataset={FLAGS.dataset}')
  return [f'inputs.{name} = {value!r}' for name, value in given.items()]


def _dataset_name(config):
  """The dataset of the parsed configuration: a synthetic task's name or a TFDS name."""
  inputs = config.reference_name(config.query('train.inputs')) or 'inputs'
  if inputs == 'inputs':
    return config.query('inputs.dataset_name', 'random')
  return inputs.replace('_inputs', '')


def _shortcut_defaults(config):
  """The dataset shortcut's bindings for the model (`minitrax.shortcuts`), checked.

  Raises:
    ConfigError: the model cannot train on the dataset (one line, before any computation).
  """
  config.parse(FLAGS.config_file, _bindings(config), finalize=False)
  model = FLAGS.model or config.reference_name(config.query('train.model'))
  return shortcuts.defaults(FLAGS.dataset or _dataset_name(config), model)


def quiet_jax_logs():
  """Keeps JAX's start-up notes (e.g. "Unable to initialize backend 'tpu'") off the output."""
  logging.getLogger('jax').setLevel(logging.WARNING)


def _output_dir(config, log):
  """`--output_dir`, or `~/minitrax/{model}_{dataset}_{YYYYmmdd_HHMM}`."""
  if FLAGS.output_dir:
    log(f'Using --output_dir {FLAGS.output_dir}')
    return os.path.expanduser(FLAGS.output_dir)
  model = FLAGS.model or config.reference_name(config.query('train.model')) or 'model'
  dataset = FLAGS.dataset or _dataset_name(config)
  name = f'{model}_{dataset}_{datetime.datetime.now().strftime("%Y%m%d_%H%M")}'
  output_dir = os.path.join(os.path.expanduser('~'), 'minitrax', name.replace('/', '_'))
  log('No --output_dir specified')
  log(f'Using default output_dir: {output_dir}')
  return output_dir


def _check_config_drift(config, output_dir, log):
  """Compares a resumed run's `config.gin` with the configuration given now.

  Raises:
    ConfigError: bindings differ and `--allow_config_change` is not given;
      the message lists them. With the flag, the old file is moved to
      `config.<step>.gin` (`train` writes the new `config.gin`).
  """
  from minitrax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from minitrax.supervised import run_checkpoint  # pylint: disable=import-outside-toplevel
  path, model_path = (os.path.join(output_dir, f) for f in ('config.gin', 'model.pkl'))
  if not (os.path.isfile(path) and os.path.isfile(model_path)):
    return
  with open(path, encoding='utf-8') as f:
    drift = config.config_drift(f.read())
  if not drift:
    return
  step = run_checkpoint.read(model_path).get('step', 0)
  listing = ''.join(f'\n  {key}: {saved} (saved) -> {now} (now)' for key, saved, now in drift)
  if not FLAGS.allow_config_change:
    raise ConfigError(
        f'{path}: the configuration differs from the one of the run being resumed (step {step}):'
        f'{listing}\nResume with the saved configuration, or pass --allow_config_change to go on '
        f'with the new one (the old file is then kept as config.{step}.gin).')
  kept = _free_name(output_dir, f'config.{step}')
  os.replace(path, kept)
  log(f'Configuration changed on resume at step {step}:{listing}')
  log(f'Kept the old configuration as {kept}')


def _free_name(folder, stem):
  """`folder/<stem>.gin`, or `<stem>.<n>.gin` with the first n >= 1 that is not taken."""
  name, n = os.path.join(folder, f'{stem}.gin'), 0
  while os.path.exists(name):
    n += 1
    name = os.path.join(folder, f'{stem}.{n}.gin')
  return name


def _train(config, log, extra_bindings=()):
  """Parses the configuration, picks the output folder, checks a resume, trains."""
  from minitrax import distributed  # pylint: disable=import-outside-toplevel
  config.parse(FLAGS.config_file,
               _bindings(config) + list(extra_bindings), defaults=_shortcut_defaults(config))
  output_dir = _output_dir(config, log)
  if distributed.is_main():
    _check_config_drift(config, output_dir, log)
  config.train(output_dir=output_dir, config_text=config.operative_config)
  path = os.path.join(output_dir, 'config.gin')
  if distributed.is_main() and not os.path.exists(path):  # changed config, no step left
    with open(path, 'w', encoding='utf-8') as f:
      f.write(config.operative_config())


# What gin adds to a message passing through a configurable: the function's address.
_GIN_CALL_NOTE = re.compile(r"\n  In call to configurable '[^']*' \(<[^>]*>\)")


def error_message(error):
  """`minitrax.trainer: error: <Type>: <message>`, without gin's call notes."""
  message = _GIN_CALL_NOTE.sub('', str(error)).strip()
  return f'minitrax.trainer: error: {type(error).__name__}: {message}'


def _fail(error, status):
  """Prints `error` in one paragraph (after its traceback with --verbose) and exits."""
  if FLAGS.is_parsed() and FLAGS.verbose:
    traceback.print_exception(error)
  from minitrax import distributed  # pylint: disable=import-outside-toplevel
  print(distributed.process_prefix() + error_message(error), file=sys.stderr)
  sys.exit(status)


def main(argv):
  from minitrax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  if len(argv) > 1:
    _fail(
        ConfigError(f'unexpected arguments: {" ".join(argv[1:])} (flags are written '
                    '--name=value)'), USAGE_ERROR)
  import jax  # pylint: disable=import-outside-toplevel
  from minitrax import config, distributed  # pylint: disable=import-outside-toplevel
  from minitrax.errors import (  # pylint: disable=import-outside-toplevel
      MinitraxError, TrainingError, TrainingInterrupted)
  from minitrax.supervised.summaries import log  # pylint: disable=import-outside-toplevel
  quiet_jax_logs()
  if FLAGS.disable_jit:
    jax.config.update('jax_disable_jit', True)
  if FLAGS.jax_debug_nans:
    jax.config.update('jax_debug_nans', True)
  try:
    _train(config, log, _start_distributed())
  except TrainingInterrupted as e:  # saved; exit as the signal would have (128 + its number)
    print(f'{distributed.process_prefix()}minitrax.trainer: {e}', file=sys.stderr, flush=True)
    sys.exit(128 + (e.signum or 0))
  except MinitraxError as e:
    _fail(e, RUN_ERROR if isinstance(e, TrainingError) else USAGE_ERROR)


def parse_flags(argv):
  """absl's flag parsing, a bad flag reported in one paragraph with exit status 2."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    print(f'minitrax.trainer: error: {e} (see --help)', file=sys.stderr)
    sys.exit(USAGE_ERROR)


def run():
  """Entry point: parses the flags and trains."""
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
