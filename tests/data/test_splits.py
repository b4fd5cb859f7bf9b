"""Tests for minitrax.data.splits: TFDS split strings, checked against TFDS's ReadInstruction."""

import itertools
import types

import pytest

from minitrax.data import splits
from minitrax.errors import DataError

SIZES = {'train': 60000, 'test': 10000, 'validation': 7}


def _tfds_ranges(spec, sizes):
  """`[(name, start, stop)]` as tensorflow_datasets computes them."""
  tfds = pytest.importorskip('tensorflow_datasets')
  infos = {k: types.SimpleNamespace(num_examples=n, shard_lengths=[n]) for k, n in sizes.items()}
  out = []
  for instruction in tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos):
    n = sizes[instruction.splitname]
    start = instruction.from_ or 0
    stop = n if instruction.to is None else instruction.to
    out.append((instruction.splitname, start, max(start, stop)))
  return out


SPECS = [
    'train', 'test[:80%]', 'test[80%:]', 'train[:1000]', 'train[10%:20%]', 'train+test',
    'train[-1000:]', 'test[:-5%]+train[40%:60%]', 'validation[33%:67%]', 'validation[:50%]',
    'validation[50%:]', 'train[10:20%]', 'test[1_000:2_000]', 'train[12.5%:37.5%]', 'all',
    'test + validation', 'validation[-3:-1]', 'validation[5:2]', 'train[:100%]', 'test[-100%:]'
]


@pytest.mark.parametrize('spec', SPECS)
def test_ranges_equal_tfds(spec):
  assert splits.ranges(spec, SIZES) == _tfds_ranges(spec, SIZES)


def test_percent_rounding_equals_tfds_for_every_size_and_percent():
  # Python's round() sends halves to even numbers: e.g. 5% of 10 -> 0 (0.5), 15% of 10 -> 2.
  for n, pct in itertools.product(range(1, 41), range(0, 101, 5)):
    sizes = {'train': n}
    for spec in (f'train[:{pct}%]', f'train[{pct}%:]', f'train[-{pct}%:]'):
      assert splits.ranges(spec, sizes) == _tfds_ranges(spec, sizes), (spec, n)


def test_slices_cover_a_split_exactly_once():
  for n in range(1, 30):
    (_, a, b), = splits.ranges('test[:80%]', {'test': n})
    (_, c, d), = splits.ranges('test[80%:]', {'test': n})
    assert (a, b, c, d) == (0, int(round(0.8 * n)), int(round(0.8 * n)), n)


def test_split_names_in_order_without_repeats():
  assert splits.split_names('test[:10%]+train+test[50%:]', ['train', 'test']) == ['test', 'train']
  assert splits.split_names('all', ['train', 'test']) == ['train', 'test']


@pytest.mark.parametrize('spec, why', [
    ('train[:70000]', "slice [:70000] of split 'train' does not fit its 60000 examples"),
    ('train[:101%]', 'percent boundaries must lie in [-100%, 100%]'),
    ('train[1shard]', '[1shard] is not a slice [from:to]'),
    ('train[1shard:2shard]', 'slicing by TFDS shard is not supported here; slice by examples or %'),
    ('train[:]', 'cannot read the slice [:]'),
    ('train[1:2:3]', '[1:2:3] is not a slice [from:to]'),
    ('train[1.5:]', "'1.5' is not an example count"),
    ('tra in', "cannot read 'tra in' as name[from:to]"),
    ('all[:10%]', "'all' cannot be sliced"),
    ('dev', "no split 'dev' (splits: train, test, validation)"),
])
def test_errors_say_why_and_show_the_forms(spec, why):
  with pytest.raises(DataError) as info:
    splits.ranges(spec, SIZES)
  assert str(info.value) == f'split {spec!r}: {why}. {splits.SPLITS_HELP}'


def test_tfds_refuses_the_same_specs():
  tfds = pytest.importorskip('tensorflow_datasets')
  for spec in ('train[:70000]', 'train[:101%]', 'train[:]', 'train[1:2:3]', 'train[1.5:]'):
    with pytest.raises((ValueError, NotImplementedError)):
      _tfds_ranges(spec, SIZES)
  del tfds


def test_empty_or_non_string_spec():
  for spec in ('', '  ', None, 3):
    with pytest.raises(DataError, match='expected a non-empty string'):
      splits.parse(spec)


def test_slices_read_the_selected_examples_in_order():
  sources = {'train': [f'a{i}' for i in range(10)], 'test': [f'b{i}' for i in range(5)]}
  data = splits.Slices('test[60%:]+train[:3]+test[:1]', sources)
  assert len(data) == 6
  assert [data[i] for i in range(len(data))] == ['b3', 'b4', 'a0', 'a1', 'a2', 'b0']
  with pytest.raises(IndexError, match=r"example 6 of split 'test\[60%:\]\+train\[:3\]"):
    data[6]
  assert len(splits.Slices('train[5:2]', sources)) == 0
