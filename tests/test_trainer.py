"""Tests for minitrax/trainer.py, the command line: runs and errors, each in a subprocess."""

import glob
import os
import re
import subprocess
import sys

import pytest

from minitrax import checkpoint

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'supervised'))
from codelab_source import subprocess_env  # noqa: E402


def trainer(*flags, home):
  return subprocess.run([sys.executable, '-m', 'minitrax.trainer', *flags],
                        env=subprocess_env(HOME=str(home)), capture_output=True, text=True,
                        timeout=600)


def test_readme_mlp_command_with_a_default_output_dir(tmp_path):
  """The README's `--dataset=mnist --model=MLP --config="train.train_steps=1000"`, offline."""
  out = trainer('--dataset=random', '--model=MLP', '--config=train.train_steps=3',
                '--config=train.eval_frequency=2', '--config=train.eval_steps=1',
                '--config=random_inputs.input_shape=(16, 28, 28, 1)',
                '--config=random_inputs.output_shape=(16,)', '--random_seed=5', home=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = out.stdout.splitlines()
  assert lines[0] == 'No --output_dir specified'
  match = re.fullmatch(r'Using default output_dir: (.*/minitrax/MLP_random_\d{8}_\d{4})', lines[1])
  assert match and match.group(1).startswith(str(tmp_path))
  assert lines[2:5] == [
      f'No checkpoint in {match.group(1)}; initialising',
      'Step      0: Starting training using 1 devices',
      'Step      0: Total number of trainable weights: 669706'
  ]
  assert lines[-1] == 'Step      3: Training done'
  output_dir = match.group(1)
  assert checkpoint.load(os.path.join(output_dir, 'model.pkl'))['step'] == 3
  config = open(os.path.join(output_dir, 'config.gin'), encoding='utf-8').read()
  assert 'train.train_steps = 3' in config and 'train.random_seed = 5' in config
  assert glob.glob(os.path.join(output_dir, 'train', 'events.out.tfevents.*'))


def test_shipped_config_by_name_and_debug_flags(tmp_path):
  out = trainer('--config_file=mlp_mnist', '--dataset=random', f'--output_dir={tmp_path / "d"}',
                '--config=train.steps=1', '--config=MLP.d_hidden=8',
                '--config=random_inputs.input_shape=(4, 28, 28, 1)',
                '--config=random_inputs.output_shape=(4,)', '--config=train.optimizer=@SGD',
                '--config=train.eval_steps=0', '--disable_jit', '--jax_debug_nans', home=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.splitlines()[0] == f'Using --output_dir {tmp_path / "d"}'
  assert 'Step      1: Training done' in out.stdout
  assert checkpoint.load(str(tmp_path / 'd' / 'model.pkl'))['step'] == 1
  assert "inputs.dataset_name = 'mnist'" not in (tmp_path / 'd' / 'config.gin').read_text()


@pytest.mark.parametrize('flags,message', [
    (['--config=train.no_such_param=1'
     ], r"Configurable 'train' doesn't have a parameter named 'no_such_param'"),
    (['--model=NoSuchNet'], r"unknown model 'NoSuchNet'; known models: .*MLP"),
    (['--model=MLP', '--dataset=no_such_dataset'], r"unknown TFDS dataset 'no_such_dataset'"),
    (['--config_file=no_such_config'], r"config file 'no_such_config' not found"),
    (['--model=GRULM', '--dataset=copy', '--config=train.steps=-5'
     ], r'train: steps must be an int >= 1, got -5$'),
    (['--config=train.steps=('
     ], r"syntax error in binding 'train.steps=\(': an unclosed bracket or string$"),
])
def test_errors_stop_before_any_computation(flags, message, tmp_path):
  """A mistake: one paragraph on stderr, exit status 2, no traceback, nothing written."""
  out = trainer(*flags, f'--output_dir={tmp_path / "out"}', home=tmp_path)
  assert out.returncode == 2
  assert re.search(r'minitrax\.trainer: error: \w+Error: .*' + message, out.stderr.strip(), re.S), \
      out.stderr[-3000:]
  assert 'Traceback' not in out.stderr and 'In call to configurable' not in out.stderr
  assert not os.path.exists(tmp_path / 'out')


def test_bad_flags_and_arguments_exit_2_in_one_line_and_verbose_shows_the_traceback(tmp_path):
  out = trainer('--random_seed=abc', home=tmp_path)
  assert (out.returncode, out.stderr) == (2, "minitrax.trainer: error: flag --random_seed=abc: "
                                          "invalid literal for int() with base 10: 'abc' (see "
                                          "--help)\n")
  out = trainer('extra', home=tmp_path)
  assert (out.returncode, out.stderr) == (2, 'minitrax.trainer: error: ConfigError: unexpected '
                                          'arguments: extra (flags are written --name=value)\n')
  out = trainer('--config=train.steps 3', '--verbose', home=tmp_path)
  assert out.returncode == 2 and 'Traceback (most recent call last)' in out.stderr
  assert out.stderr.splitlines()[-1] == ("minitrax.trainer: error: ConfigError: bad gin "
                                         "configuration: syntax error in binding 'train.steps 3': "
                                         "Couldn't parse statement, expected ':' or '='")


def test_resume_with_a_changed_config_is_refused_unless_allowed(tmp_path):
  """config.gin of a 1-step run (made in-process), then the command line resumes it."""
  from minitrax import config  # pylint: disable=import-outside-toplevel
  out_dir = tmp_path / 'run'
  tiny = [
      '--dataset=random', '--model=MLP', '--config=random_inputs.input_shape=(4, 3)',
      '--config=random_inputs.output_shape=(4,)', '--config=MLP.d_hidden=4',
      '--config=MLP.flatten=False', '--config=train.eval_steps=0', '--config=train.steps=1',
      f'--output_dir={out_dir}'
  ]
  config.parse([], ['train.inputs = @random_inputs', 'train.model = @MLP'] +
               [f[len('--config='):] for f in tiny if f.startswith('--config=')])
  config.train(output_dir=str(out_dir), config_text=config.operative_config)
  saved = (out_dir / 'config.gin').read_text()
  changed = trainer(*tiny, '--config=Adafactor.learning_rate=0.01', '--random_seed=4',
                    home=tmp_path)
  assert changed.returncode == 2, changed.stderr[-3000:]
  assert changed.stderr.splitlines() == [
      f'minitrax.trainer: error: ConfigError: {out_dir}/config.gin: the configuration differs '
      'from the one of the run being resumed (step 1):',
      '  Adafactor.learning_rate: 0.05 (saved) -> 0.01 (now)',
      '  train.random_seed: None (saved) -> 4 (now)',
      'Resume with the saved configuration, or pass --allow_config_change to go on with the new '
      'one (the old file is then kept as config.1.gin).',
  ]
  assert (out_dir / 'config.gin').read_text() == saved
  longer = trainer(*tiny, '--config=train.steps=2', '--allow_config_change',
                   '--config=Adafactor.learning_rate=0.01', home=tmp_path)
  assert longer.returncode == 0, longer.stderr[-3000:]
  assert 'Kept the old configuration as ' + str(out_dir / 'config.1.gin') in longer.stdout
  assert (out_dir / 'config.1.gin').read_text() == saved
  assert 'Adafactor.learning_rate = 0.01' in (out_dir / 'config.gin').read_text()
  assert checkpoint.load(str(out_dir / 'model.pkl'))['step'] == 2


def test_demo_trains_then_decodes(tmp_path):
  """`python -m minitrax.demo` (the README's main job), for 2 steps instead of 1500."""
  out = subprocess.run(
      [sys.executable, '-m', 'minitrax.demo', '--steps=2', f'--output_dir={tmp_path}'],
      env=subprocess_env(HOME=str(tmp_path)), capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = out.stdout.splitlines()
  assert lines[0] == f'Training TransformerLM on the copy task (0 w 0 w) in {tmp_path}'
  assert 'Step      2: Training done' in lines
  config = (tmp_path / 'config.gin').read_text()  # the shipped transformer_copy config
  assert 'train.inputs = @copy_inputs' in config and 'TransformerLM.d_model = 32' in config
  assert lines[-4] == 'Greedy decoding after the prompt 0 w 0:'
  assert all(
      re.fullmatch(r'  w = \[[\d, ]+\]  ->  \[[\d, ]+\]  \((not )?copied\)', line)
      for line in lines[-3:])


SHARED_MNIST = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'mnist')


def test_split_flags_on_a_synthetic_task_are_refused(tmp_path):
  out = trainer('--dataset=copy', '--model=GRULM', '--train_split=train[:10]',
                f'--output_dir={tmp_path / "out"}', home=tmp_path)
  assert out.returncode == 2  # a usage mistake
  assert out.stderr.strip().endswith('ConfigError: --train_split applies to TFDS datasets, not '
                                     'to the synthetic task --dataset=copy')
  assert 'Unable to initialize backend' not in out.stderr
  assert not os.path.exists(tmp_path / 'out')


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason='no ../shared/data/mnist')
def test_mnist_test_files_alone_reach_95_percent(tmp_path):
  """The issue's command: MLP trained on test[:80%], evaluated on test[80%:], offline."""
  out = trainer('--dataset=mnist', '--model=MLP', f'--data_dir={SHARED_MNIST}',
                '--train_split=test[:80%]', '--eval_split=test[80%:]',
                '--config=train.train_steps=1000', f'--output_dir={tmp_path / "out"}',
                home=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stderr == ''  # No library noise.
  accuracy = re.findall(r'Step   1000: eval +accuracy \|  ([\d.]+)', out.stdout)
  assert float(accuracy[0]) >= 0.95, out.stdout[-2000:]
