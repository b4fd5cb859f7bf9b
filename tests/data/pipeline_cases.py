"""Small generated streams run through Trax 1.4's `trax.data` or `minitrax.data` alike.

`run_cases(data)` returns every case's output as plain Python values (arrays
as `('A', dtype, values)`). The literals in `trax14_pipeline_outputs.py` are
what real Trax 1.4.1 printed for them:

    cd tests/data && TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=. \\
      ~/.cache/minitrax-bench/trax/venv/bin/python -c \\
      'import pprint, pipeline_cases as c; from trax import data; pprint.pprint(c.run_cases(data))'

`pipeline_vocab.subword` was written by Trax's own
`SubwordTextEncoder.build_from_generator(CORPUS, target_size=120)` and
`store_to_file`.
"""

import contextlib
import inspect
import io
import os

import numpy as np

VOCAB_DIR = os.path.dirname(os.path.abspath(__file__))
VOCAB_FILE = 'pipeline_vocab.subword'

CORPUS = [
    'The quick brown fox jumps over the lazy dog.',
    'A stream of examples, shuffled and batched: tokens_with_underscores and back\\slashes.',
    'Numbers 12345 and 3.14159; émigré café naïve — “quotes” 日本語.',
    "Dude - that's so cool. It's a dog's life, isn't it?",
    'the the the dog dog fox fox quick quick brown lazy over jumps',
]

TEXTS = [
    'The quick brown fox.',
    'Dude - that\'s so cool.',
    '  leading spaces and trailing  ',
    'under_score \\ back\\slash',
    'tab\there\nnewline',
    'émigré 日本 Ωmega ☃ snowman',
    '',
    ' ',
    'zzz qqq xyzzy',
    'a1b2 c3',
]


def plain(x):
  """`x` with arrays as `('A', dtype, values)` and NumPy scalars as `('S', dtype, value)`."""
  if isinstance(x, np.ndarray):
    return ('A', x.dtype.str, x.tolist())
  if isinstance(x, (tuple, list)):
    return type(x)(plain(v) for v in x)
  if isinstance(x, dict):
    return {k: plain(v) for k, v in x.items()}
  if isinstance(x, np.generic):
    return ('S', x.dtype.str, x.item())
  return x


def examples():
  """17 examples `(int32 ids (n,), int64 ids (m,))` of lengths 1 to 8."""
  rng = np.random.RandomState(0)
  out = []
  for i in range(17):
    n, m = int(rng.randint(1, 9)), int(rng.randint(1, 9))
    out.append((np.arange(1, n + 1, dtype=np.int32) * (i + 1), np.arange(m, dtype=np.int64) % 3))
  return out


def _shuffled(data, queue_size, seed, stream):
  """`Shuffle` seeded: minitrax's `seed=`, or NumPy's global seed for Trax."""
  if 'seed' in inspect.signature(data.Shuffle).parameters:
    return list(data.Shuffle(queue_size, seed=seed)(stream))
  np.random.seed(seed)
  return list(data.Shuffle(queue_size)(stream))


def _batching(data, ex):
  img = [(np.full((i % 3 + 2, 3), i, np.float32), np.int64(i)) for i in range(8)]
  return {
      'batch3':
          list(data.Batch(3)(iter(ex))),
      'bucket':
          list(data.BucketByLength([3, 6], [2, 2, 1])(iter(ex))),
      'bucket_keys0_strict':
          list(
              data.BucketByLength([3, 6], [3, 2, 1], length_keys=[0],
                                  strict_pad_on_len=True)(iter(ex))),
      'bucket_2d':
          list(data.BucketByLength([5, 8], [2, 2, 1], length_keys=[0])(iter(img))),
      'filter':
          list(data.FilterByLength(max_length=6, min_length=3)(iter(ex))),
      'filter_keys0':
          list(data.FilterByLength(max_length=4, length_keys=[0])(iter(ex))),
  }


def _per_example(data, ex):
  triples = [(a, b, np.full(b.shape, 0.5)) for a, b in ex[:4]]
  return {
      'weights':
          list(data.AddLossWeights(id_to_mask=0)(iter(ex[:4]))),
      'weights3':
          list(data.AddLossWeights(id_to_mask=2)(iter(triples))),
      'weights_none':
          list(data.AddLossWeights()(iter(ex[:2]))),
      'dup':
          list(data.Dup()(iter([(a,) for a, _ in ex[:2]] + [ex[2]]))),
      'pad':
          list(data.PadToLength(len_map={0: 6, 1: 4}, pad_value={0: 0, 1: -1})(iter(ex[:5]))),
      'truncate':
          list(data.TruncateToLength(len_map={0: (3,), 1: (2,)})(iter(ex[:5]))),
      'unicode':
          list(
              data.ConvertToUnicode(keys=[0])(iter([(b'caf\xc3\xa9', b'x'),
                                                    (b'bad\xff\xfeok', 1)]))),
  }


def _mixing(data):
  gens = lambda: [
      lambda: iter(range(1000)), lambda: iter(range(1000, 2000)), lambda: iter(range(2000, 3000))
  ]
  take = lambda fn, n: [next(g) for g in [fn()] for _ in range(n)]
  return {
      'shuffle_finite':
          _shuffled(data, 5, 7, iter(range(23))),
      'shuffle_short':
          _shuffled(data, 8, 3, iter(range(5))),
      'shuffle_endless':
          _shuffled(data, 4, 7, iter(range(30)))[:26],
      'parallel':
          take(data.Parallel(gens(), counters=(2, 1, 3)), 18),
      'parallel_uniform':
          take(data.Parallel(gens()), 9),
      'parallel_reweight':
          take(data.Parallel(gens(), counters=(10, 20, 40), reweight_by_minimum=True), 14),
      'parallel_gradual':
          take(data.Parallel(gens(), counters=(1, 2, 5), gradually_reweight=True), 24),
      'parallel_remainders':
          take(
              data.Parallel(gens(), counters=(2, 5, 11), gradually_reweight=True,
                            use_remainders=True), 40),
      'uniformly_seek':
          list(
              data.UniformlySeek(name='x', host_id=1, n_hosts=3, dataset_size=10)(iter(range(12)))),
  }


def _text(data):
  subword = dict(vocab_file=VOCAB_FILE, vocab_dir=VOCAB_DIR)
  tokenized = [next(data.Tokenize(**subword)(iter([t]))) for t in TEXTS]
  return {
      'char':
          list(
              data.Tokenize(vocab_type='char', keys=[1], n_reserved_ids=2)(iter([(1, 'héllo'),
                                                                                 (2, 'ab')]))),
      'char_detok':
          data.detokenize(np.array([106, 197, 171, 108]), vocab_type='char', n_reserved_ids=2),
      'char_vocab_size':
          data.vocab_size(vocab_type='char', n_reserved_ids=2),
      'subword_size':
          data.vocab_size(**subword),
      'subword': [ids.tolist() for ids in tokenized],  # Trax: float64 for no ids, else int64.
      'subword_decode': [data.detokenize(ids, **subword) for ids in tokenized if len(ids)],
      'subword_decode_odd':
          data.detokenize([5, 9999, 7, 1, 0, 30], **subword),
      'subword_tokenize':
          list(data.Tokenize(keys=[0], n_reserved_ids=3, **subword)(iter([('The fox.', 1)]))),
      'subword_detok':
          data.detokenize([47, 14, 10], n_reserved_ids=3, **subword),
  }


def _logged(data, ex):
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    list(data.Log(n_steps_per_example=2)(iter(ex[:4])))
    list(data.Log(only_shapes=False)(iter([(np.array([1, 2]), 3)])))
  return out.getvalue()


def run_cases(data):
  """Every case's output, as plain values, for the module `data` (trax.data or minitrax.data)."""
  ex = examples()
  serial = data.Serial([data.Dup(), [data.AddLossWeights()]], data.Batch(2))
  results = {
      'examples': ex,
      'serial_empty': data.Serial()() is None,
      'serial_nested': list(serial(iter([(np.array([1, 2]),), (np.array([3]),)]))),
      'log': _logged(data, ex),
  }
  for part in (_batching(data, ex), _per_example(data, ex), _mixing(data), _text(data)):
    results.update(part)
  return plain(results)
