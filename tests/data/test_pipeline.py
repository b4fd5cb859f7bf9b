"""Tests for minitrax.data's Trax 1.4 stream combinators: outputs of real Trax, resume, Inputs."""

import os
import sys

import numpy as np
import pytest

from minitrax import data, lr
from minitrax.data import Seekable
from minitrax.data.padded_batches import pad_to_max_dims
from minitrax.data.shuffling import shuffle
from minitrax.errors import DataError
from minitrax.layers.combinators import Serial
from minitrax.layers.core import Dense, Embedding, LogSoftmax
from minitrax.layers.metrics import CrossEntropyLoss
from minitrax.optimizers import Adam
from minitrax.supervised.trainer import Trainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_cases  # noqa: E402
from trax14_pipeline_outputs import OUTPUTS  # noqa: E402


@pytest.fixture(scope='module')
def minitrax_outputs():
  return pipeline_cases.run_cases(data)


@pytest.mark.parametrize('case', sorted(OUTPUTS))
def test_outputs_equal_real_trax_1_4_1(minitrax_outputs, case):
  assert minitrax_outputs[case] == OUTPUTS[case]


def _counting_source(length=None, labels=True):
  """A random-access source of examples `(ids, label)` or `(ids,)`; `reads` lists positions read."""
  reads = []

  def example(p):
    reads.append(p)
    ids = np.arange(p % 5 + 1, dtype=np.int32) + p
    return (ids, np.int64(p % 3)) if labels else (ids,)

  return reads, lambda _=None: Seekable(example, length)


def _same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y)
      assert x.dtype == y.dtype


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_random_access_pipeline_resumes_without_reading_the_skipped_examples():
  reads, source = _counting_source(labels=False)
  pipeline = data.Serial(source, data.Dup(), data.Shuffle(8, seed=1),
                         data.PadToLength(len_map={0: 6, 1: 6}), data.Batch(4),
                         data.AddLossWeights(id_to_mask=0))
  assert isinstance(pipeline(), Seekable)
  stream = data.PipelineStream(pipeline)
  full = _take(stream(1), 60)
  del reads[:]
  _same(_take(stream(1, start=50), 10), full[50:])
  assert len(reads) == 40  # The 10 batches of 4 examples, nothing before them.
  _same([stream.batch(57)], [full[57]])
  x, y, w = full[0]
  assert x.shape == y.shape == w.shape == (4, 6) and w.dtype == np.float32
  np.testing.assert_array_equal(w, (y != 0).astype(np.float32))


@pytest.mark.parametrize('length, queue_size', [(10, 3), (3, 5), (5, 5), (40, 1), (None, 7)])
def test_shuffle_plans_on_positions_exactly_as_it_shuffles_an_iterator(length, queue_size):
  n = 50 if length is None else length
  plain = list(shuffle(iter(range(n if length else 10**6)), queue_size, seed=4))[:n]
  seekable = shuffle(Seekable(lambda p: p, length), queue_size, seed=4)
  assert [seekable.at(p) for p in range(n)] == plain
  assert [seekable.at(p) for p in reversed(range(n))] == plain[::-1]  # Moving back replans.
  if length:
    assert sorted(plain) == list(range(n))


def test_sequential_pipeline_resumes_exactly_by_reading_again():
  _, source = _counting_source()
  pipeline = data.Serial(source, data.Shuffle(16, seed=2),
                         data.FilterByLength(max_length=4, length_keys=[0]),
                         data.BucketByLength([2, 3], [4, 2, 1], length_keys=[0]),
                         data.AddLossWeights())
  assert not isinstance(pipeline(), Seekable)
  stream = data.PipelineStream(pipeline)
  full = _take(stream(1), 30)
  _same(_take(stream(1, start=23), 7), full[23:])
  assert {x.shape for x, _, _ in full} == {(4, 2), (2, 3), (1, 4)}


@pytest.mark.parametrize('random_access', [True, False])
def test_pipeline_stream_builds_an_ended_pipeline_again(random_access):
  ex = pipeline_cases.examples()  # 17 examples: 3 batches of 5 per pass.
  source = (lambda _: Seekable(ex.__getitem__, 17)) if random_access else (lambda _: iter(ex))
  stream = data.PipelineStream(data.Serial(source, data.Batch(5)))
  full = _take(stream(1), 7)
  _same(full[3:6], full[:3])
  _same(_take(stream(1, start=4), 3), full[4:7])
  empty = data.PipelineStream(data.Serial(lambda _: iter([])), name='empty')
  with pytest.raises(DataError, match='^empty: the pipeline yields no batches$'):
    next(empty(1, start=2))


def test_make_inputs_trains_a_language_model_with_the_trainer(tmp_path):
  texts = [f'{"ab" * (i % 4 + 1)} {i}' for i in range(64)]
  lm = [
      lambda _: Seekable(texts.__getitem__, len(texts)),
      data.Tokenize(vocab_type='char', n_reserved_ids=1),
      data.Shuffle(16),
      lambda g: map(lambda x: (x, x), g),
      data.BucketByLength(boundaries=[4, 8], batch_sizes=[8, 4, 2]),
      data.AddLossWeights(id_to_mask=0),
  ]
  inputs = data.make_inputs(train_stream=lm, eval_stream=lm[:1] + lm[1:2] + lm[3:])
  assert inputs.exact_resume and inputs.input_dtype == np.int32  # int64 ids narrowed for JAX.
  x, y, w = next(inputs.eval_stream(1))
  assert x.shape in ((8, 4), (4, 8), (2, 9), (2, 10)) and w.dtype == np.float32
  model = lambda mode='train': Serial(Embedding(257, 8), Dense(257), LogSoftmax())
  trainer = Trainer(model, CrossEntropyLoss, Adam, lr.MultifactorSchedule, inputs, str(tmp_path),
                    has_weights=True)
  trainer.train_epoch(3, 1)
  assert trainer.step == 3


def test_make_inputs_takes_a_pipeline_function_or_an_iterator():
  batches = data.Serial(lambda _: iter(pipeline_cases.examples()), data.Batch(2))
  assert data.make_inputs(batches).input_shape == (6,
                                                  )  # Examples 0 and 1: (5,), (8,) and (6,), (1,).
  assert data.make_inputs(batches()).target_shape == (8,)
  with pytest.raises(
      DataError, match='^make_inputs: train_stream must be a list of stream '
      'functions, a stream function or an iterator of batches, got a int$'):
    data.make_inputs(3)


def test_log_over_random_access_input_counts_positions(capsys):
  logged = data.Log(n_steps_per_example=3, only_shapes=False)(Seekable(lambda p: p * 10))
  assert next(logged.seek(5)) == 50
  assert [next(logged) for _ in range(3)] == [60, 70, 80]
  assert capsys.readouterr().out == '60\n'


def test_uniformly_seek_moves_a_random_access_input_without_reading():
  reads, source = _counting_source(length=40)
  seek = data.UniformlySeek(name='d', host_id=2, n_hosts=4, dataset_size=40)
  moved = seek(source())
  assert isinstance(moved, Seekable) and moved.length == 20 and not reads
  assert next(moved)[1] == np.int64(20 % 3) and reads == [20]


def test_minitrax_semantics_where_trax_1_4_1_fails_or_misbehaves():
  x = np.arange(1, 6)
  # Trax pads by the remainder (5 -> 6) and needs pad_value as a dict.
  padded = next(data.PadToLength(len_map={0: 4}, pad_value=9, multiple=True)(iter([(x,)])))
  assert padded[0].tolist() == [1, 2, 3, 4, 5, 9, 9, 9]
  # Trax unpacks an array example into its rows.
  assert [a.tolist() for a in next(data.Dup()(iter([x])))] == [x.tolist()] * 2
  cut = next(data.TruncateToLength(len_map={0: 2})(iter([(np.ones((4, 3)),)])))
  assert cut[0].shape == (2, 3)  # Trax resizes to (2,), flattening.
  assert pad_to_max_dims([np.zeros(0), np.zeros(0)], boundary=4).shape == (2, 0)
  assert next(data.ConvertToUnicode()(iter(['already text']))) == 'already text'


def test_filter_empty_examples_and_parallel_ending():
  ex = [(np.zeros(0), np.ones(2)), (np.ones(1), np.zeros(0)), (np.ones(1), np.ones(1))]
  assert len(list(data.FilterEmptyExamples()(iter(ex)))) == 1
  assert len(list(data.FilterEmptyExamples(axes=[0])(iter(ex)))) == 2
  mixed = data.Parallel([lambda: iter('ab'), lambda: iter('xyz')])()
  assert list(mixed) == ['a', 'x', 'b', 'y']  # Ends with its first stream to end.


@pytest.mark.parametrize('make, message', [
    (lambda: data.Batch(0), 'Batch: batch_size must be an int >= 1, got 0'),
    (lambda: data.Shuffle(0), 'Shuffle: queue_size must be an int >= 1, got 0'),
    (lambda: data.Shuffle(seed=-1), 'Shuffle: seed must be an int >= 0, got -1'),
    (lambda: data.BucketByLength([8, 16], [4, 2]), 'BucketByLength: needs one more batch size '
     'than boundaries, got boundaries [8, 16] and batch_sizes [4, 2]'),
    (lambda: data.BucketByLength([8], [4, 0]),
     'BucketByLength: each batch size must be an int >= 1, got 0'),
    (lambda: data.FilterByLength(None, None),
     'FilterByLength: give max_length or min_length (both are None)'),
    (lambda: data.PadToLength(), 'PadToLength: len_map must be given, e.g. {0: 256, 1: 256}'),
    (lambda: data.PadToLength({0: 4, 1: 4}, pad_value={0: 0}),
     'PadToLength: pad_value has no value for keys [1] of len_map'),
    (lambda: data.UniformlySeek(), 'UniformlySeek: name must be given (it names the dataset in '
     'logs)'),
    (lambda: data.Serial(data.Dup(), [3]), 'Serial: stream function 1 must be callable '
     '(generator -> generator), got a int'),
    (lambda: data.Parallel([data.Dup()], counters=(1, 2)),
     'Parallel: 2 counters for 1 stream functions'),
    (lambda: data.Parallel([data.Dup()], counters=(0,)),
     'Parallel: needs at least one stream function with a non-zero counter'),
    (lambda: data.PipelineStream(3), 'PipelineStream: make_iterator must be callable, got int'),
    (lambda: pad_to_max_dims([np.zeros(2), np.zeros(
        (2, 2))]), 'pad_to_max_dims: arrays of different ranks [(2,), (2, 2)]'),
])
def test_argument_errors(make, message):
  with pytest.raises(DataError) as info:
    make()
  assert str(info.value) == message


ONE, TWO = (np.arange(2),), (np.arange(3), np.int64(1))


@pytest.mark.parametrize('stream, examples, message', [
    (data.AddLossWeights(id_to_mask=0), [ONE], 'AddLossWeights: id_to_mask=0 needs examples '
     '(inputs, targets) or (inputs, targets, weights), got an example of 1'),
    (data.BucketByLength([2], [1, 1]), [TWO], 'length: element 1 has shape (), which has no '
     'axis 0 (length_axis)'),
    (data.FilterByLength(4), [ONE], 'length: the example has no element 1 (length_keys [0, 1])'),
    (data.ConvertToUnicode(), [ONE], 'ConvertToUnicode: expected bytes or str, got ndarray'),
    (data.Batch(2), [ONE, TWO], 'Batch: examples with different numbers of elements [1, 2]'),
])
def test_stream_errors(stream, examples, message):
  with pytest.raises(DataError) as info:
    list(stream(iter(examples)))
  assert str(info.value) == message
