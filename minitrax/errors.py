"""The one family of minitrax errors.

Every error that minitrax raises on purpose derives from `MinitraxError`, so
`except minitrax.errors.MinitraxError` catches all of them. Each subclass
names one kind of mistake; each message names the layer, file, flag, tree path
or value involved, with the expected and the actual value. Where an error
wraps another exception, the original is kept as `__cause__`.
"""


class MinitraxError(Exception):
  """Base class of every error minitrax raises deliberately."""


class LayerError(MinitraxError):
  """A layer failed in `init`, `pure_fn` or `output_signature`.

  The message names the layer, the method, where the layer was created
  (file:line of user code), the path of enclosing combinators and the input
  shapes and dtypes. The original exception is `__cause__`.

  Fix: read the innermost message (after the shapes); usually an input has the
  wrong shape or dtype for the layer named first.
  """

  def __init__(self, message, layer_path=()):
    super().__init__(message)
    self.layer_path = tuple(layer_path)


class LayerAttributeError(MinitraxError, AttributeError):
  """An attribute that a layer does not have was assigned (a likely typo).

  Fix: use the attribute the message suggests (`weights`, not `weight`), or
  create the attribute in the layer's `__init__`.
  """


class ShapeError(MinitraxError, ValueError):
  """An input signature, shape or dtype is not what a function needs."""


class CheckpointError(MinitraxError, ValueError):
  """A checkpoint file cannot be written or read, or does not fit the model.

  The message names the file and what is wrong: not a minitrax checkpoint,
  truncated, corrupted (checksum), from a newer format version, a disallowed
  type, or the list of tree paths whose saved and expected shapes differ.
  """


class OptimizerError(MinitraxError, ValueError):
  """An optimizer or schedule was given an invalid argument or tree."""


class DataError(MinitraxError, ValueError):
  """An input stream or dataset is malformed, empty or unavailable."""


class ConfigError(MinitraxError, ValueError):
  """A command-line flag, gin binding, model or dataset name is unknown."""


class TrainingError(MinitraxError, RuntimeError):
  """Training cannot go on (for example, the loss became NaN or infinite)."""
