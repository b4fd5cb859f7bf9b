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
])
def test_errors_stop_before_any_computation(flags, message, tmp_path):
  out = trainer(*flags, f'--output_dir={tmp_path / "out"}', home=tmp_path)
  assert out.returncode == 1
  assert re.search(r'minitrax\.trainer: error: \w+Error: .*' + message, out.stderr, re.S), \
      out.stderr[-3000:]
  assert 'Traceback' not in out.stderr
  assert not os.path.exists(tmp_path / 'out')


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
