"""The Trax codelab, verbatim, through `import minitrax as trax`: it learns and it copies.

The code blocks of the seed document (../shared/seeds/002_*.txt, kept here as
codelab.md) run unchanged in a subprocess, except the shell lines (`!pip ...`,
`!rm ...`) and `import trax`, which becomes `import minitrax as trax`. HOME is
a fresh folder, so `~/train_dir/` starts empty.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from codelab_source import codelab_code, subprocess_env  # noqa: E402

METRIC = re.compile(r'^Step {3,4}(\d+): (train|eval ) +([a-z_]+) \| ([ -]\d+\.\d{8})$')


def test_codelab_code_is_the_seed():
  code = codelab_code()
  assert 'import minitrax as trax' in code and '\nimport trax' not in code
  assert 'copy_inputs = trax.supervised.Inputs(lambda _: copy_task(16, 32, 10))' in code
  assert 'trainer.train_epoch(train_steps, eval_steps)' in code
  assert 'pip' not in code and 'rm -f' not in code


def test_codelab_runs_unchanged_learns_and_copies(tmp_path):
  script = tmp_path / 'codelab.py'
  script.write_text(codelab_code())
  out = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path),
                       env=subprocess_env(HOME=str(tmp_path)), capture_output=True, text=True,
                       timeout=900)
  assert out.returncode == 0, out.stderr[-4000:]
  lines = out.stdout.splitlines()
  assert re.match(r'Inputs\[0\]:  \[ *0 ', lines[0])
  assert lines[2] == 'Mask[0]:    [0. 0. 0. 0. 1. 1. 1. 1. 1. 1.]'
  step_lines = [line for line in lines if line.startswith('Step')]
  assert len(step_lines) == 3 * 13
  metrics = {}
  for epoch, step in enumerate((500, 1000, 1500)):
    block = step_lines[13 * epoch:13 * (epoch + 1)]
    assert re.fullmatch(rf'Step {step:6d}: Ran 500 train steps in \d+\.\d\d secs', block[0])
    assert block[1] == f'Step {step:6d}: Evaluation'
    assert block[12] == f'Step {step:6d}: Finished evaluation'
    for line in block[2:12]:
      match = METRIC.match(line)
      assert match and int(match.group(1)) == step, line
      metrics[step, match.group(2).strip(), match.group(3)] = float(match.group(4))
    assert [METRIC.match(row).group(3) for row in block[2:7]] == [
        'accuracy', 'loss', 'neg_log_perplexity', 'sequence_accuracy', 'weights_per_batch_per_core'
    ]
  assert metrics[1500, 'eval', 'accuracy'] >= 0.8
  assert metrics[1500, 'eval', 'weights_per_batch_per_core'] == 96.0
  assert metrics[1500, 'eval', 'neg_log_perplexity'] == -metrics[1500, 'eval', 'loss']
  assert lines[-1] == '[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]'  # the decode copies the prefix
  assert os.path.exists(tmp_path / 'train_dir' / 'model.pkl')
