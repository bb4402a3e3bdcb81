"""Data in: files, data frames and lists → `Examples`, and what is checked about them.

- `fastbert.data.readers`: files and in-memory inputs → a `Table` of raw columns (CoNLL once);
- `fastbert.data.columns`: which column is the text, the second text, the label;
- `fastbert.data.labels`: values checked one by one, label names ↔ ids;
- `fastbert.data.examples`: `Examples` and `load_examples`, the fingerprint of a data set;
- `fastbert.data.splits`: the stratified dev split;
- `fastbert.data.duplicates` and `fastbert.data.leakage`: near-duplicates in files, and
  between the training and the dev data;
- `fastbert.data.unlabelled`: the texts ``fastbert predict`` reads.
"""

from fastbert.data.duplicates import find_duplicates
from fastbert.data.examples import Examples, data_fingerprint, load_examples, read_label_names
from fastbert.data.splits import stratified_split
from fastbert.errors import DataError

__all__ = [
    "DataError",
    "Examples",
    "data_fingerprint",
    "find_duplicates",
    "load_examples",
    "read_label_names",
    "stratified_split",
]
