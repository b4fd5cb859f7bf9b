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
* Trax 1.4's stream combinators (`minitrax.data.pipeline`): `Serial`,
  `Parallel`, `TFDS`, `Tokenize`, `Detokenize`, `detokenize`, `vocab_size`,
  `ConvertToUnicode`, `Shuffle`, `Batch`, `BucketByLength`, `FilterByLength`,
  `FilterEmptyExamples`, `AddLossWeights`, `Dup`, `PadToLength`,
  `TruncateToLength`, `Log`, `UniformlySeek` (and the lower-case `shuffle`,
  `batch`, `bucket_by_length`, `add_loss_weights`, `tokenize`), with
  `make_inputs` and `PipelineStream` to train on them.

Importing this package imports neither TensorFlow nor tensorflow_datasets.
"""

from minitrax.data import batching
from minitrax.data import text
from minitrax.data.arrays import array_inputs
from minitrax.data.device import DeviceBatches
from minitrax.data.device import device_prefetch
from minitrax.data.examples import AddLossWeights
from minitrax.data.examples import ConvertToUnicode
from minitrax.data.examples import Dup
from minitrax.data.examples import PadToLength
from minitrax.data.examples import TruncateToLength
from minitrax.data.examples import add_loss_weights
from minitrax.data.files import idx_inputs
from minitrax.data.files import read_idx
from minitrax.data.files import text_inputs
from minitrax.data.files import write_idx
from minitrax.data.inputs import Inputs
from minitrax.data.inputs import Stream
from minitrax.data.padded_batches import Batch
from minitrax.data.padded_batches import BucketByLength
from minitrax.data.padded_batches import batch
from minitrax.data.padded_batches import bucket_by_length
from minitrax.data.pipeline import FilterByLength
from minitrax.data.pipeline import FilterEmptyExamples
from minitrax.data.pipeline import Log
from minitrax.data.pipeline import Parallel
from minitrax.data.pipeline import PipelineStream
from minitrax.data.pipeline import Serial
from minitrax.data.pipeline import UniformlySeek
from minitrax.data.pipeline import make_inputs
from minitrax.data.prefetch import Prefetcher
from minitrax.data.seekable import Seekable
from minitrax.data.shuffling import Shuffle
from minitrax.data.shuffling import shuffle
from minitrax.data.synthetic import SYNTHETIC_TASKS
from minitrax.data.synthetic import addition_inputs
from minitrax.data.synthetic import copy_inputs
from minitrax.data.synthetic import random_inputs
from minitrax.data.synthetic import reverse_inputs
from minitrax.data.synthetic import synthetic_inputs
from minitrax.data.tfds import tfds_inputs
from minitrax.data.tfds_stream import TFDS
from minitrax.data.tokenization import Detokenize
from minitrax.data.tokenization import Tokenize
from minitrax.data.tokenization import detokenize
from minitrax.data.tokenization import tokenize
from minitrax.data.tokenization import vocab_size

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
    # Trax 1.4's stream combinators.
    'Serial',
    'Parallel',
    'TFDS',
    'Tokenize',
    'tokenize',
    'Detokenize',
    'detokenize',
    'vocab_size',
    'ConvertToUnicode',
    'Shuffle',
    'shuffle',
    'Batch',
    'batch',
    'BucketByLength',
    'bucket_by_length',
    'FilterByLength',
    'FilterEmptyExamples',
    'AddLossWeights',
    'add_loss_weights',
    'Dup',
    'PadToLength',
    'TruncateToLength',
    'Log',
    'UniformlySeek',
    'make_inputs',
    'PipelineStream',
    'Seekable',
]
