"""`PredictLength`: what a layer with a predict-mode position limit tells decoders.

A mixin for layers that keep `self._max_len` and `self._mode` (positional
encodings, causal attention with a key/value cache): the `max_len` and
`mode` properties and `predict_capacity()`, which decoding reads to stop
before the cache or position table runs out.
"""


class PredictLength:
  """`max_len`, `mode` and `predict_capacity()` from `self._max_len` and `self._mode`."""

  @property
  def max_len(self):
    """The positions this layer can hold in predict mode."""
    return self._max_len

  @property
  def mode(self):
    """'train', 'eval' or 'predict'."""
    return self._mode

  def predict_capacity(self):
    """`max_len` in predict mode (the positions decodable); None in the other modes."""
    return self._max_len if self._mode == 'predict' else None


__all__ = ['PredictLength']
