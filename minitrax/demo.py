r"""The main job: the codelab's copy task on a Transformer LM, offline, then greedy decodes.

    python -m minitrax.demo [--output_dir=DIR] [--steps=1500]

Trains with the shipped config `transformer_copy` (inputs `0 w 0 w`, w random,
the model learns to repeat w), printing Trax-format logs, then loads
`model.pkl` into a predict-mode model and decodes a few prompts `0 w 0`
greedily. About a minute on a laptop CPU; needs no download.
"""

import os
import tempfile

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string(
    'output_dir', None, 'Folder for checkpoints and summaries; default a new '
    'temporary folder. A folder with a model.pkl resumes from it.')
flags.DEFINE_integer('steps', 1500, 'Training steps.')

VOCAB_SIZE, W_LENGTH = 32, 4


def decode_examples(model_path, n_examples=3, seed=0):
  """Greedy decodes of `n_examples` prompts `0 w 0`: a list of `(w, decoded)` pairs."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from minitrax import config  # pylint: disable=import-outside-toplevel
  from minitrax.shapes import ShapeDtype  # pylint: disable=import-outside-toplevel
  from minitrax.supervised import decoding  # pylint: disable=import-outside-toplevel
  model = config.MODELS['TransformerLM'](mode='predict')
  model.init(ShapeDtype((1, 1), np.int32))
  model.init_from_file(model_path, weights_only=True)
  rng = np.random.default_rng(seed)
  pairs = []
  for _ in range(n_examples):
    w = rng.integers(1, VOCAB_SIZE - 1, size=W_LENGTH).astype(np.int32)
    prompt = np.concatenate([[0], w, [0]])[None, :].astype(np.int32)  # after the start id 0
    decoded = decoding.autoregressive_sample(model, inputs=prompt, temperature=0.0,
                                             max_length=W_LENGTH, eos_id=VOCAB_SIZE - 1)
    pairs.append((w.tolist(), decoded[0].tolist()))
  return pairs


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  from minitrax import config  # pylint: disable=import-outside-toplevel
  from minitrax.supervised.summaries import log  # pylint: disable=import-outside-toplevel
  output_dir = FLAGS.output_dir or tempfile.mkdtemp(prefix='minitrax_demo_')
  log(f'Training TransformerLM on the copy task (0 w 0 w) in {output_dir}')
  config.parse(['transformer_copy'], [f'train.steps = {FLAGS.steps}'])
  config.train(output_dir=output_dir, config_text=config.operative_config)
  log('')
  log('Greedy decoding after the prompt 0 w 0:')
  for w, decoded in decode_examples(os.path.join(output_dir, 'model.pkl')):
    verdict = 'copied' if decoded == w else 'not copied'
    log(f'  w = {w}  ->  {decoded}  ({verdict})')


if __name__ == '__main__':
  app.run(main)
