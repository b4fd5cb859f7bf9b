"""Input pipelines: streams of batches for training and evaluation.

* `Inputs`: the train, eval and train-eval streams of a run (Trax's class,
  also `minitrax.supervised.Inputs`); `Stream`: a random-access stream.
* Built-in sources, all seeded, random access and offline:
  synthetic tasks (`copy_inputs`, `reverse_inputs`, `addition_inputs`,
  `random_inputs`, by name `synthetic_inputs('copy', ...)`), arrays
  (`array_inputs`), IDX files (`idx_inputs`, `read_idx`), text files
  (`text_inputs`) and TFDS datasets (`tfds_inputs`, Trax's `inputs`).
* `Prefetcher` (background thread); `DeviceBatches` and `device_prefetch`
  (batches placed on a device mesh ahead of use, stacked for training).

Importing this package imports neither TensorFlow nor tensorflow_datasets.
"""

from minitrax.data import batching
from minitrax.data import text
from minitrax.data.arrays import array_inputs
from minitrax.data.device import DeviceBatches
from minitrax.data.device import device_prefetch
from minitrax.data.files import idx_inputs
from minitrax.data.files import read_idx
from minitrax.data.files import text_inputs
from minitrax.data.files import write_idx
from minitrax.data.inputs import Inputs
from minitrax.data.inputs import Stream
from minitrax.data.prefetch import Prefetcher
from minitrax.data.synthetic import SYNTHETIC_TASKS
from minitrax.data.synthetic import addition_inputs
from minitrax.data.synthetic import copy_inputs
from minitrax.data.synthetic import random_inputs
from minitrax.data.synthetic import reverse_inputs
from minitrax.data.synthetic import synthetic_inputs
from minitrax.data.tfds import inputs as tfds_inputs

__all__ = [
    'Inputs',
    'Stream',
    'copy_inputs',
    'reverse_inputs',
    'addition_inputs',
    'random_inputs',
    'synthetic_inputs',
    'SYNTHETIC_TASKS',
    'array_inputs',
    'idx_inputs',
    'read_idx',
    'write_idx',
    'text_inputs',
    'tfds_inputs',
    'Prefetcher',
    'DeviceBatches',
    'device_prefetch',
    'batching',
    'text',
]
