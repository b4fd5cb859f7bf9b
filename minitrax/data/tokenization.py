"""`Tokenize`, `Detokenize`, `detokenize` and `vocab_size`: Trax 1.4's text <-> ids, without TF.

Vocabulary types (`vocab_type`):

* `'char'`: the UTF-8 bytes of the text, id = byte + `n_reserved_ids`
  (Trax 1.4's `Tokenize` reserves no ids by default and appends no EOS:
  'hi' -> [104, 105]); 256 ids.
* `'subword'`: a Trax subword vocabulary file (`SubwordTextEncoder`, e.g.
  `en_8k.subword`), read by `minitrax.data.subword`.
* `'sentencepiece'`: a SentencePiece model file, through the `sentencepiece`
  package (decoding as T5's vocabulary: stops after the first EOS, ids past
  the vocabulary read as unknown).

The file is `vocab_dir/vocab_file`, or `vocab_file` itself without
`vocab_dir`. Trax's default `vocab_dir` is its cloud bucket
`gs://trax-ml/vocabs/`; minitrax reads local files only, and says so when a
file is missing.

>>> ids = next(Tokenize(vocab_type='char', keys=[0])(iter([('hi', 1)])))
>>> ids[0].tolist(), ids[1]
([104, 105], 1)
>>> detokenize([104, 105], vocab_type='char')
'hi'
"""

import functools
import os

import numpy as np

from minitrax.data.examples import at_keys, per_example
from minitrax.data.subword import SubwordVocab
from minitrax.errors import DataError

__all__ = ['Tokenize', 'tokenize', 'Detokenize', 'detokenize', 'vocab_size', 'get_vocab']

VOCAB_TYPES = ('char', 'subword', 'sentencepiece')
TRAX_VOCAB_DIR = 'gs://trax-ml/vocabs/'


def _text(value):
  """`value` as str or bytes (a 0-d NumPy array is unwrapped), else a DataError."""
  if isinstance(value, np.ndarray) and value.ndim == 0:
    value = value.item()
  if not isinstance(value, (str, bytes, bytearray)):
    raise DataError(f'Tokenize: expected a text (str or bytes), got a {type(value).__name__}; pass '
                    'keys= to tokenize only the text elements of examples')
  return value


class ByteVocab:
  """Bytes as ids: the UTF-8 bytes of a text (Trax's `ByteTextEncoder` with no reserved ids)."""

  vocab_size = 256

  def encode(self, text):
    if isinstance(text, str):
      text = text.encode('utf-8')
    return list(bytes(text))

  def decode(self, ids):
    bad = [i for i in ids if not 0 <= i < 256]
    if bad:
      raise DataError(f'detokenize (char): ids {bad[:5]} are not bytes 0..255 after removing the '
                      'reserved ids (is n_reserved_ids right?)')
    return bytes(ids).decode('utf-8', errors='replace')


class SentencePieceVocab:
  """A SentencePiece model, decoded as T5's `SentencePieceVocabulary` does."""

  def __init__(self, path):
    try:
      import sentencepiece  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise DataError(f'Tokenize: vocab_type=\'sentencepiece\' needs the sentencepiece package to '
                      f'read {path}; `pip install sentencepiece` and run again') from e
    self._sp = sentencepiece.SentencePieceProcessor()
    try:
      self._sp.Load(path)
    except (OSError, RuntimeError) as e:
      raise DataError(f'Tokenize: {path} is not a SentencePiece model ({e})') from e
    self.vocab_size = self._sp.GetPieceSize()

  def encode(self, text):
    if isinstance(text, (bytes, bytearray)):
      text = bytes(text).decode('utf-8')
    return list(self._sp.EncodeAsIds(text))

  def decode(self, ids):
    unk, eos = self._sp.unk_id(), self._sp.eos_id()
    ids = [unk if i >= self.vocab_size else i for i in ids]
    if eos >= 0 and eos in ids:
      ids = ids[:ids.index(eos) + 1]
    return self._sp.DecodeIds(ids)


def _vocab_path(vocab_type, vocab_file, vocab_dir):
  if not vocab_file:
    raise DataError(f'Tokenize: vocab_type={vocab_type!r} needs vocab_file (the vocabulary file '
                    f'name, e.g. \'en_8k.subword\'), got {vocab_file!r}')
  path = os.path.expanduser(os.path.join(vocab_dir, vocab_file) if vocab_dir else vocab_file)
  if '://' in path:
    raise DataError(f'Tokenize: minitrax reads local vocabulary files only, not {path}; copy the '
                    'file to a local folder and pass vocab_dir')
  if not os.path.isfile(path):
    where = f'in vocab_dir {vocab_dir!r}' if vocab_dir else 'relative to the working directory'
    raise DataError(f'Tokenize: vocabulary file {path!r} not found ({where}); Trax downloads '
                    f'{vocab_file!r} from {TRAX_VOCAB_DIR}: copy it from there to a local folder '
                    'and pass vocab_dir=that folder')
  return os.path.abspath(path)


@functools.lru_cache(maxsize=16)
def _load(vocab_type, path):
  if vocab_type == 'subword':
    try:
      return SubwordVocab.from_file(path)
    except UnicodeDecodeError as e:
      raise DataError(f'Tokenize: {path} is not a subword vocabulary (not UTF-8 text)') from e
  return SentencePieceVocab(path)


def get_vocab(vocab_type='subword', vocab_file=None, vocab_dir=None):
  """The vocabulary object (`encode(text) -> ids`, `decode(ids) -> text`, `vocab_size`)."""
  if vocab_type not in VOCAB_TYPES:
    extra = ' (BERT vocabularies are not supported)' if str(vocab_type).startswith('bert') else ''
    raise DataError(f'Tokenize: vocab_type must be one of {", ".join(map(repr, VOCAB_TYPES))}, '
                    f'got {vocab_type!r}{extra}')
  if vocab_type == 'char':
    return ByteVocab()
  return _load(vocab_type, _vocab_path(vocab_type, vocab_file, vocab_dir))


def Tokenize(  # pylint: disable=invalid-name
    keys=None, vocab_type='subword', vocab_file=None, vocab_dir=None, n_reserved_ids=0):
  """A stream function that turns texts into int64 arrays of ids (+ `n_reserved_ids`).

  Args:
    keys: which elements of tuple (or keys of dict) examples to tokenize; None
      for all (an example that is one text is tokenized whole).
    vocab_type: `'subword'`, `'sentencepiece'` or `'char'` (module docstring).
    vocab_file: the vocabulary file's name (not for `'char'`).
    vocab_dir: the folder holding it; None: `vocab_file` is a path.
    n_reserved_ids: added to every id, keeping ids `0..n_reserved_ids - 1`
      free (e.g. 0 for padding, 1 for EOS).

  Returns:
    `generator -> generator`; random access if the input is. The vocabulary
    is read now, so a missing file is reported here (a `DataError`).
  """
  vocab = get_vocab(vocab_type, vocab_file, vocab_dir)
  encode = lambda text: np.asarray(vocab.encode(_text(text)), np.int64) + n_reserved_ids
  return per_example(at_keys(encode, keys))


def tokenize(stream, keys=None, vocab_type='subword', vocab_file=None, vocab_dir=None,
             n_reserved_ids=0):
  """`Tokenize(...)` applied to `stream`.

  Args:
    stream: an iterable of examples (texts, tuples or dicts of texts).
    keys: which elements to tokenize; None for all.
    vocab_type: `'subword'`, `'sentencepiece'` or `'char'` (module docstring).
    vocab_file: the vocabulary file's name (not for `'char'`).
    vocab_dir: the folder holding it; None: `vocab_file` is a path.
    n_reserved_ids: added to every id.
  """
  return Tokenize(keys, vocab_type, vocab_file, vocab_dir, n_reserved_ids)(stream)


def detokenize(x, vocab_type='subword', vocab_file=None, vocab_dir=None, n_reserved_ids=0):
  """The text of ids `x`, with `n_reserved_ids` taken off first.

  Args:
    x: the ids, a list or array of any shape (read flattened).
    vocab_type: `'subword'`, `'sentencepiece'` or `'char'` (module docstring).
    vocab_file: the vocabulary file's name (not for `'char'`).
    vocab_dir: the folder holding it; None: `vocab_file` is a path.
    n_reserved_ids: subtracted from every id before decoding.
  """
  vocab = get_vocab(vocab_type, vocab_file, vocab_dir)
  ids = (np.asarray(x, np.int64).reshape(-1) - n_reserved_ids).tolist()
  return str(vocab.decode(ids))


def Detokenize(  # pylint: disable=invalid-name
    keys=None, vocab_type='subword', vocab_file=None, vocab_dir=None, n_reserved_ids=0):
  """A stream function that turns the id arrays at `keys` back into texts (a minitrax addition).

  Each element becomes `detokenize(ids, ...)`.

  Args:
    keys: which elements of tuple (or keys of dict) examples to decode; None
      for all.
    vocab_type: `'subword'`, `'sentencepiece'` or `'char'` (module docstring).
    vocab_file: the vocabulary file's name (not for `'char'`).
    vocab_dir: the folder holding it; None: `vocab_file` is a path.
    n_reserved_ids: subtracted from every id before decoding.
  """
  vocab = get_vocab(vocab_type, vocab_file, vocab_dir)
  decode = lambda ids: str(vocab.decode((np.asarray(ids).reshape(-1) - n_reserved_ids).tolist()))
  return per_example(at_keys(decode, keys))


def vocab_size(vocab_type='subword', vocab_file=None, vocab_dir=None, n_reserved_ids=0):
  """The number of ids a model must cover: the vocabulary's size + `n_reserved_ids`.

  Args:
    vocab_type: `'subword'`, `'sentencepiece'` or `'char'` (module docstring).
    vocab_file: the vocabulary file's name (not for `'char'`).
    vocab_dir: the folder holding it; None: `vocab_file` is a path.
    n_reserved_ids: the ids reserved below the vocabulary's.
  """
  return get_vocab(vocab_type, vocab_file, vocab_dir).vocab_size + n_reserved_ids
