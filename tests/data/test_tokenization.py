"""Tests for minitrax.data.tokenization and .subword: byte, subword and SentencePiece vocabularies.

Subword ids equal to real Trax 1.4.1's are checked in test_pipeline.py (cases
'subword*' of trax14_pipeline_outputs.py).
"""

import io
import os
import sys

import numpy as np
import pytest

from minitrax import data
from minitrax.data.subword import SubwordVocab, join_tokens, split_tokens
from minitrax.errors import DataError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pipeline_cases  # noqa: E402


def test_split_tokens_as_trax_documents_it():
  # The example of Trax's tokenizer docstring.
  tokens = split_tokens("Dude - that's so cool.")
  assert tokens == ['Dude', ' - ', 'that', "'", 's', 'so', 'cool', '.']
  assert join_tokens(tokens) == "Dude - that's so cool."
  assert split_tokens(' a b ') == [' ', 'a', 'b', ' '] and split_tokens('') == []


def test_subword_file_lines_lose_trailing_spaces_and_one_pair_of_quotes(tmp_path):
  path = tmp_path / 'mixed.subword'
  path.write_text('\'<pad>_\'\n<EOS>_\n"a_"  \n\'\nb \n\'c\n', encoding='utf-8')
  assert SubwordVocab.from_file(str(path)).subtokens == ['<pad>_', '<EOS>_', 'a_', '', 'b', "'c"]


def test_subword_round_trip_of_text_and_bytes():
  vocab = SubwordVocab.from_file(os.path.join(HERE, pipeline_cases.VOCAB_FILE))
  text = 'Numbers 12345 and émigré_café ☃\\ \n'
  assert vocab.vocab_size == 119 and vocab.decode(vocab.encode(text)) == text
  assert vocab.encode(text.encode('utf-8')) == vocab.encode(text)  # bytes, as TFDS gives text


def test_subword_vocabulary_without_the_escape_characters():
  vocab = SubwordVocab(['a_', 'b'], source='tiny.subword')
  assert vocab.encode('a') == [0]
  with pytest.raises(DataError) as info:
    vocab.encode('ab')
  assert str(
      info.value) == ("subword vocabulary tiny.subword: it has no subtoken for 'a' (in the "
                      "escaped token 'ab_'); a Trax subword vocabulary holds every character "
                      'of its alphabet and \\_u;0123456789')


def test_char_ids_are_bytes_plus_reserved_ids_and_round_trip():
  stream = data.Tokenize(vocab_type='char', n_reserved_ids=2)
  ids = next(stream(iter([b'h\xc3\xa9'])))  # bytes, as TFDS gives text
  assert ids.tolist() == [106, 197, 171] and ids.dtype == np.int64
  assert next(stream(iter(['']))).dtype == np.int64  # Trax: float64 for no ids.
  back = data.Detokenize(keys=[0], vocab_type='char', n_reserved_ids=2)
  assert next(back(iter([(ids, 7)]))) == ('hé', 7)
  assert data.vocab_size('char') == 256
  with pytest.raises(DataError, match=r'^detokenize \(char\): ids \[-2, -1\] are not bytes'):
    data.detokenize([0, 1, 106], vocab_type='char', n_reserved_ids=2)


def test_tokenize_dict_examples_at_keys():
  stream = data.Tokenize(keys=['text'], vocab_type='char')
  out = next(stream(iter([{'text': np.array(b'ab'), 'label': 1}])))
  assert out['text'].tolist() == [97, 98] and out['label'] == 1
  with pytest.raises(DataError) as info:
    next(data.Tokenize(vocab_type='char')(iter([('ab', 1)])))
  assert str(info.value) == ('Tokenize: expected a text (str or bytes), got a int; pass keys= to '
                             'tokenize only the text elements of examples')


def test_missing_vocabulary_file_says_where_trax_gets_it(tmp_path):
  with pytest.raises(DataError) as info:
    data.Tokenize(vocab_file='en_8k.subword', keys=[0])
  assert str(info.value) == (
      "Tokenize: vocabulary file 'en_8k.subword' not found (relative to the working directory); "
      "Trax downloads 'en_8k.subword' from gs://trax-ml/vocabs/: copy it from there to a local "
      'folder and pass vocab_dir=that folder')
  with pytest.raises(
      DataError, match=f"^Tokenize: vocabulary file '{tmp_path}/x.subword' not "
      f"found \\(in vocab_dir '{tmp_path}'\\)"):
    data.vocab_size(vocab_file='x.subword', vocab_dir=str(tmp_path))
  with pytest.raises(
      DataError, match='^Tokenize: minitrax reads local vocabulary files only, not '
      'gs://trax-ml/vocabs/en_8k.subword;'):
    data.Tokenize(vocab_file='en_8k.subword', vocab_dir='gs://trax-ml/vocabs/')


@pytest.mark.parametrize('kwargs, message', [
    (dict(vocab_type='bert', vocab_file='v.txt'), "Tokenize: vocab_type must be one of 'char', "
     "'subword', 'sentencepiece', got 'bert' (BERT vocabularies are not supported)"),
    (dict(vocab_type='words'), "Tokenize: vocab_type must be one of 'char', 'subword', "
     "'sentencepiece', got 'words'"),
    (dict(), "Tokenize: vocab_type='subword' needs vocab_file (the vocabulary file name, e.g. "
     "'en_8k.subword'), got None"),
])
def test_vocabulary_argument_errors(kwargs, message):
  with pytest.raises(DataError) as info:
    data.Tokenize(**kwargs)
  assert str(info.value) == message


def test_sentencepiece_without_the_package(tmp_path, monkeypatch):
  model = tmp_path / 'spm.model'
  model.write_bytes(b'not read')
  monkeypatch.setitem(sys.modules, 'sentencepiece', None)  # `import sentencepiece` fails.
  with pytest.raises(DataError) as info:
    data.Tokenize(vocab_type='sentencepiece', vocab_file='spm.model', vocab_dir=str(tmp_path))
  assert str(info.value) == ("Tokenize: vocab_type='sentencepiece' needs the sentencepiece package "
                             f'to read {model}; `pip install sentencepiece` and run again')


def test_sentencepiece_model_encodes_and_decodes_as_t5_does(tmp_path):
  spm = pytest.importorskip('sentencepiece')
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(pipeline_cases.CORPUS * 4),
                                 model_writer=model, vocab_size=60, model_type='bpe', pad_id=0,
                                 eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
  (tmp_path / 'tiny.model').write_bytes(model.getvalue())
  sp = spm.SentencePieceProcessor()
  sp.Load(str(tmp_path / 'tiny.model'))
  where = dict(vocab_type='sentencepiece', vocab_file='tiny.model', vocab_dir=str(tmp_path))
  ids = next(data.Tokenize(keys=[0], n_reserved_ids=3, **where)(iter([('The quick fox', 0)])))[0]
  assert ids.tolist() == [i + 3 for i in sp.EncodeAsIds('The quick fox')]
  assert data.detokenize(ids, n_reserved_ids=3, **where) == 'The quick fox'
  assert data.vocab_size(n_reserved_ids=3, **where) == 63
  # Decoding stops after the first EOS (id 1); ids past the vocabulary read as unknown.
  tail = sp.EncodeAsIds('dog')
  assert data.detokenize(tail + [1] + tail, **where) == sp.DecodeIds(tail + [1])
  assert data.detokenize(tail + [500], **where) == sp.DecodeIds(tail + [2])
