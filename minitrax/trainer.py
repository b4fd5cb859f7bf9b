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
"""

import datetime
import os
import sys

from absl import app
from absl import flags

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


def _bindings(config):
  """The gin bindings of the flags, in the order gin should apply them."""
  bindings = list(FLAGS.config or ())
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
  return bindings


def _output_dir(config, log):
  """`--output_dir`, or `~/minitrax/{model}_{dataset}_{YYYYmmdd_HHMM}`."""
  if FLAGS.output_dir:
    log(f'Using --output_dir {FLAGS.output_dir}')
    return os.path.expanduser(FLAGS.output_dir)
  model = FLAGS.model or config.reference_name(config.query('train.model')) or 'model'
  dataset = FLAGS.dataset
  if not dataset:
    inputs = config.reference_name(config.query('train.inputs')) or 'inputs'
    dataset = (config.query('inputs.dataset_name', 'random')
               if inputs == 'inputs' else inputs.replace('_inputs', ''))
  name = f'{model}_{dataset}_{datetime.datetime.now().strftime("%Y%m%d_%H%M")}'
  output_dir = os.path.join(os.path.expanduser('~'), 'minitrax', name.replace('/', '_'))
  log('No --output_dir specified')
  log(f'Using default output_dir: {output_dir}')
  return output_dir


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  import jax  # pylint: disable=import-outside-toplevel
  from minitrax import config  # pylint: disable=import-outside-toplevel
  from minitrax.errors import MinitraxError, TrainingInterrupted  # pylint: disable=import-outside-toplevel
  from minitrax.supervised.summaries import log  # pylint: disable=import-outside-toplevel
  if FLAGS.disable_jit:
    jax.config.update('jax_disable_jit', True)
  if FLAGS.jax_debug_nans:
    jax.config.update('jax_debug_nans', True)
  try:
    config.parse(FLAGS.config_file, _bindings(config))
    output_dir = _output_dir(config, log)
    config.train(output_dir=output_dir, config_text=config.operative_config)
  except TrainingInterrupted as e:  # saved; exit as the signal would have (128 + its number)
    print(f'minitrax.trainer: {e}', file=sys.stderr, flush=True)
    sys.exit(128 + (e.signum or 0))
  except MinitraxError as e:
    sys.exit(f'minitrax.trainer: error: {type(e).__name__}: {e}')


def run():
  """Entry point: parses the flags and trains."""
  app.run(main)


if __name__ == '__main__':
  run()
