"""examples/intro.ipynb is the codelab, and it runs (executed with nbclient)."""

import os
import re
import sys

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from codelab_source import as_minitrax, code_blocks, subprocess_env  # noqa: E402

NOTEBOOK = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'intro.ipynb')


def _notebook():
  return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_code_is_the_codelab_then_the_curves():
  cells = [cell.source for cell in _notebook().cells if cell.cell_type == 'code']
  assert cells[:-1] == [as_minitrax(block, keep_shell=True) for block in code_blocks()]
  assert 'trax.supervised.plot_history(trainer.history' in cells[-1]


def test_notebook_runs(tmp_path, monkeypatch):
  """Runs the notebook with 3 epochs of 60 steps instead of 500 (the codelab test learns)."""
  nb = _notebook()
  for cell in nb.cells:
    cell.source = cell.source.replace('train_steps = 500', 'train_steps = 60')
  for name, value in subprocess_env(HOME=str(tmp_path)).items():
    monkeypatch.setenv(name, value)
  NotebookClient(nb, timeout=600, kernel_name='python3',
                 resources={'metadata': {'path': str(tmp_path)}}).execute()
  outputs = [
      ''.join(o.get('text', '')
              for o in cell.outputs)
      for cell in nb.cells
      if cell.cell_type == 'code'
  ]
  assert re.match(r'Inputs\[0\]:  \[ *0 ', outputs[1])
  assert re.search(r'^Step    180: eval  weights_per_batch_per_core \|  96\.00000000$', outputs[3],
                   flags=re.M)
  assert outputs[3].rstrip().endswith('Step    180: Finished evaluation')
  decoded = eval(outputs[5])  # pylint: disable=eval-used
  assert decoded[:5] == [0, 1, 2, 3, 4] and len(decoded) == 10
  assert os.path.exists(tmp_path / 'train_dir' / 'model.pkl')
  curves = nb.cells[-1].outputs
  try:
    import matplotlib  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    assert [o.get('output_type') for o in curves] == ['display_data']
    assert 'image/png' in curves[0]['data'] and (tmp_path / 'curves.png').exists()
  except ImportError:
    assert outputs[-1].startswith('plot_history needs matplotlib'), outputs[-1]
