"""Learning-rate schedules: exact values per factor, host and traced steps."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitrax import lr
from minitrax.errors import OptimizerError

# (factors, keyword arguments, {step: value}), values worked out by hand.
FACTOR_CASES = {
    'constant': ('constant', {'constant': 0.3}, {0: 0.3, 7: 0.3, 10**6: 0.3}),
    'linear_warmup': ('linear_warmup', {'warmup_steps': 10}, {0: 0.0, 5: 0.5, 10: 1.0, 20: 1.0}),
    'rsqrt_decay': ('rsqrt_decay', {'warmup_steps': 4}, {0: 0.5, 4: 0.5, 16: 0.25, 100: 0.1}),
    'rsqrt_normalized_decay':
        ('rsqrt_normalized_decay', {'warmup_steps': 4}, {0: 1.0, 4: 1.0, 16: 0.5, 64: 0.25}),
    'decay_every': ('decay_every', {'decay_factor': 0.5, 'steps_per_decay': 10},
                    {0: 1.0, 9: 1.0, 10: 0.5, 25: 0.25, 30: 0.125}),
    'cosine_decay': ('cosine_decay', {'warmup_steps': 10, 'steps_per_cycle': 100}, {
        0: 1.0, 10: 1.0, 35: 0.5 * (1 + math.cos(math.pi / 4)), 60: 0.5,
        109: 0.5 * (1 + math.cos(0.99 * math.pi)), 110: 1.0
    }),
    'trax_default': ('constant * linear_warmup * rsqrt_decay', {},
                     {0: 0.0, 100: 0.1 * 0.25 / 20, 400: 0.005, 1600: 0.1 / 40}),
    'minimum': ('constant * decay_every',
                {'constant': 1.0, 'decay_factor': 0.1, 'steps_per_decay': 1,
                 'minimum': 1e-3}, {0: 1.0, 1: 0.1, 5: 1e-3}),
}


def _check(schedule, expected):
  """Host steps give float32 values; one jit over all steps gives the same."""
  steps = list(expected)
  want = np.array([expected[s] for s in steps], np.float32)
  host = [schedule(s) for s in steps]
  assert all(isinstance(v, np.float32) for v in host)
  np.testing.assert_allclose(host, want, rtol=1e-7, atol=1e-12)
  traced = jax.jit(schedule)(jnp.array(steps, jnp.int32))
  assert traced.dtype == jnp.float32
  np.testing.assert_allclose(traced, want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize('case', list(FACTOR_CASES))
def test_multifactor_values(case):
  factors, kwargs, expected = FACTOR_CASES[case]
  _check(lr.multifactor(factors, **kwargs), expected)


# Real Trax 1.4.1's values (trax.supervised.lr_schedules) at these steps, printed by it.
TRAX_STEPS = [0, 1, 2, 5, 9, 10, 11, 24, 25, 26, 100, 1000]
TRAX_141 = {
    'constant(0.3)': (lr.constant(0.3), [0.0] + [0.3] * 11),
    'warmup(9, 0.01)':
        (lr.warmup(9, 0.01),
         [0.0, 0.001, 0.002, 0.005, 0.009000000000000001, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01,
          0.01]),
    'warmup_and_rsqrt_decay(24, 0.25)': (lr.warmup_and_rsqrt_decay(24, 0.25), [
        0.0, 0.01, 0.02, 0.05, 0.09, 0.1, 0.11, 0.24, 0.25, 0.24514516892273006, 0.125,
        0.03952847075210474
    ]),
    'multifactor two_constants': (lr.multifactor('constant * two_constants', constant=0.5,
                                                 second_constant=0.1,
                                                 second_constant_step=10), [0.25] * 5 + [0.05] * 7),
}


@pytest.mark.parametrize('name', list(TRAX_141))
def test_step_functions_give_trax_141_numbers(name):
  schedule, expected = TRAX_141[name]
  np.testing.assert_allclose([schedule(s) for s in TRAX_STEPS], expected, rtol=1e-6)
  traced = jax.jit(jax.vmap(schedule))(jnp.asarray(TRAX_STEPS, jnp.int32))
  np.testing.assert_allclose(traced, expected, rtol=1e-6)


def test_the_issues_two_numbers():
  assert lr.warmup(9, .01)(1) == np.float32(0.001)
  assert lr.warmup_and_rsqrt_decay(24, .25)(25) == np.float32(0.25)


def test_multifactor_schedule_trax_form():
  schedule = lr.MultifactorSchedule()
  assert schedule(400) == {'learning_rate': np.float32(0.005)}
  traced = jax.jit(schedule)(jnp.int32(400))
  np.testing.assert_allclose(traced['learning_rate'], 0.005, rtol=1e-6)
  decayed = lr.MultifactorSchedule(None, factors='constant * decay_every', constant=1.0,
                                   decay_factor=0.5, steps_per_decay=10)
  assert decayed(25) == {'learning_rate': np.float32(0.25)}


@pytest.mark.parametrize('schedule, expected', [
    (lr.constant(0.1), {0: 0.0, 1: 0.1, 1000: 0.1}),
    (lr.warmup(9, 0.5), {0: 0.0, 5: 0.25, 10: 0.5, 100: 0.5}),
    (lr.warmup_and_rsqrt_decay(99, 0.01), {50: 0.005, 100: 0.01, 400: 0.005, 10000: 0.001}),
    (lr.cosine(10, 1.0, 100), {5: 0.5, 10: 1.0, 60: 0.5, 110: 1.0}),
], ids=['constant', 'warmup', 'warmup_and_rsqrt_decay', 'cosine'])
def test_step_functions(schedule, expected):
  _check(schedule, expected)


def test_unknown_factor_names_it_and_the_valid_ones():
  with pytest.raises(OptimizerError) as e:
    lr.MultifactorSchedule(factors='constant * linear_warmpu')
  assert str(e.value) == ("MultifactorSchedule: unknown factor 'linear_warmpu' in "
                          "factors='constant * linear_warmpu'; valid factors are: constant, "
                          'linear_warmup, rsqrt_decay, rsqrt_normalized_decay, decay_every, '
                          'cosine_decay, two_constants')


@pytest.mark.parametrize('kwargs, message', [
    ({'factors': ''}, "unknown factor ''"),
    ({'factors': ['constant']}, 'factors must be a string'),
    ({'warmup_steps': 0}, 'multifactor: rsqrt_decay divides by sqrt'),
    ({'steps_per_decay': 0}, 'steps_per_decay must be an int >= 1, got 0'),
    ({'steps_per_cycle': 0}, 'steps_per_cycle must be > 0'),
    ({'constant': 'big'}, "constant must be a finite real number, got 'big'"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(OptimizerError, match=message):
    lr.multifactor(**kwargs)


class FakeHistory:
  """The one method of History that schedules use."""

  def __init__(self, values, mode='eval', metric='metrics/accuracy'):
    self._key = (mode, metric)
    self.values = [(100 * i, v) for i, v in enumerate(values)]

  def get(self, mode, metric):
    return self.values if (mode, metric) == self._key else []


def _eval_adjusted_rate(history, **kwargs):
  return float(lr.EvalAdjustingSchedule(history, **kwargs)(400)['learning_rate'])


@pytest.mark.parametrize(
    'values, constant',
    [
        ([], 0.1),
        ([0.5], 0.1),
        ([0.5 * 1.01**i for i in range(30)], 0.1),  # Improving: no change.
        ([0.5] * 21, 0.1),  # 19 comparisons (Trax skips the oldest): no change.
        ([0.5] * 22, 0.1 / 1.5),  # 20 evaluations without improvement.
        ([0.5] * 42, 0.1 / 1.5**2),
    ])
def test_eval_adjusting_schedule(values, constant):
  history = FakeHistory(values)
  before = list(history.values)
  rate = _eval_adjusted_rate(history)
  np.testing.assert_allclose(rate, constant / 20, rtol=1e-6)
  assert history.values == before  # The history is only read.


def test_eval_adjusting_schedule_reads_the_named_metric():
  history = FakeHistory([0.9] * 6, mode='train', metric='metrics/loss')
  np.testing.assert_allclose(_eval_adjusted_rate(history), 0.1 / 20)
  rate = _eval_adjusted_rate(history, history_mode='train', metric='metrics/loss',
                             steps_to_decrease=2, decrease_rate=2.0, constant=1.0)
  np.testing.assert_allclose(rate, 1.0 / 2**2 / 20, rtol=1e-6)
  with pytest.raises(OptimizerError, match='steps_to_decrease must be an int'):
    lr.EvalAdjustingSchedule(history, steps_to_decrease=0)


def test_docstring_examples_run():
  results = doctest.testmod(lr)
  assert results.failed == 0 and results.attempted >= 2


# ------------------------------------------------------------------ bind


def test_bind_none_is_no_schedule():
  assert lr.bind(None, FakeHistory([]))(7) == {}


def test_bind_calls_a_marked_factory_with_the_history():
  seen = []

  @lr.takes_history
  def halving(history, constant=0.4):
    seen.append(history)
    return lambda step: {'learning_rate': constant / 2**len(history.values)}

  history = FakeHistory([0.5, 0.6])
  schedule = lr.bind(halving, history)
  assert seen == [history]
  assert schedule(3) == {'learning_rate': np.float32(0.1)}
  assert isinstance(schedule(3)['learning_rate'], np.float32)


def test_bind_marks_the_trax_1_2_factories():
  history = FakeHistory([0.5] * 22)
  assert lr.bind(lr.MultifactorSchedule, history)(400) == {'learning_rate': np.float32(0.005)}
  rate = lr.bind(lr.EvalAdjustingSchedule, history)(400)['learning_rate']
  np.testing.assert_allclose(rate, 0.1 / 1.5 / 20, rtol=1e-6)


@pytest.mark.parametrize(
    'schedule, expected',
    [
        (lambda step: 0.5, {'learning_rate': 0.5}),  # a bare value
        (lr.warmup(9, 0.5), {'learning_rate': 0.25}),
        (
            lambda step: {'learning_rate': 0.5, 'weight_decay_rate': 1e-3},  # a dict is kept
            {'learning_rate': 0.5, 'weight_decay_rate': 1e-3}),
    ])
def test_bind_step_functions(schedule, expected):
  values = lr.bind(schedule, FakeHistory([]))(5)
  assert values == {k: np.float32(v) for k, v in expected.items()}
  assert all(isinstance(v, np.float32) for v in values.values())


def test_bind_keeps_traced_steps_traced():
  values = jax.jit(lr.bind(lr.warmup(9, 0.5), None))(jnp.int32(5))
  assert values['learning_rate'].dtype == jnp.float32
  np.testing.assert_allclose(values['learning_rate'], 0.25)


def test_bind_names_an_unmarked_factory_of_the_history():

  def my_schedule(history):
    return lambda step: 0.1

  with pytest.raises(
      OptimizerError, match=r'bind: lr_schedule my_schedule returned a function '
      r'for step 0.*mark it with @minitrax\.lr\.takes_history'):
    lr.bind(my_schedule, FakeHistory([]))(0)


def test_bind_rejects_what_is_not_a_schedule():
  with pytest.raises(OptimizerError, match='bind: lr_schedule must be None, a function'):
    lr.bind(0.1, FakeHistory([]))

  @lr.takes_history
  def bad(history):
    del history
    return 0.1

  with pytest.raises(OptimizerError, match=r'bind: bad\(history\) must be a function step'):
    lr.bind(bad, FakeHistory([]))


def test_gin_wrapping_keeps_the_mark():
  gin = pytest.importorskip('gin')
  with gin.unlock_config():  # another test in this process may have finalized gin's config
    wrapped = gin.external_configurable(lr.MultifactorSchedule, name='MarkedSchedule',
                                        module='test_lr')
  assert wrapped is not lr.MultifactorSchedule
  assert lr.bind(wrapped, FakeHistory([]))(400) == {'learning_rate': np.float32(0.005)}
