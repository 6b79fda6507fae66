"""Character-level language-modelling data for the LSTM benchmark.

The default corpus is built on every machine without a download: it is the
concatenated source text of a fixed list of Python standard-library modules
(:data:`STDLIB_MODULES`), read from the running interpreter's standard library
directory.  The list is sorted, each file is decoded as UTF-8 and files are
joined with a header line naming the module, so the text is deterministic for
a given Python version (the JSON report records the Python version, the files
that were found and a SHA-256 of the text).  Modules that a distribution has
stripped are skipped and reported.

``--data PATH`` replaces the corpus with any UTF-8 text file.

The vocabulary is the sorted set of characters of the text.  The first 90 % of
the encoded text is the training split, the last 10 % the validation split.
Batches are random windows of ``seq_len + 1`` characters drawn with a seeded
:class:`numpy.random.Generator`; inputs are the first ``seq_len`` characters
and targets the last ``seq_len``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import sysconfig

import numpy as np

#: Standard-library modules whose source forms the default corpus (sorted).
#: Present in every CPython from 3.9 to 3.13; about 4.1 MB of text on 3.11.
STDLIB_MODULES: tuple[str, ...] = tuple(sorted((
    "_pydecimal", "_pyio", "argparse", "ast", "asyncio.base_events", "bisect",
    "calendar", "codecs", "collections", "configparser", "dataclasses",
    "datetime", "difflib", "doctest", "email._header_value_parser",
    "email.message", "enum", "fractions", "functools", "gettext", "heapq",
    "http.client", "http.cookiejar", "http.server", "imaplib",
    "importlib._bootstrap", "importlib._bootstrap_external", "inspect",
    "ipaddress", "json.decoder", "json.encoder", "locale", "logging",
    "logging.handlers", "mailbox", "multiprocessing.managers", "optparse", "os",
    "pathlib", "pdb", "pickle", "pickletools", "platform", "pydoc", "random",
    "shutil", "smtplib", "socket", "ssl", "statistics", "string", "subprocess",
    "tarfile", "textwrap", "threading", "tokenize", "traceback", "typing",
    "unittest.case", "urllib.parse", "urllib.request", "xml.dom.minidom",
    "xml.etree.ElementTree", "xmlrpc.client", "zipfile",
)))

#: Fraction of the encoded text used for training; the rest is validation.
TRAIN_FRACTION = 0.9


class CorpusError(ValueError):
    """Raised for unusable input; ``flag`` names the command-line flag."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"{flag}: {message}")
        self.flag = flag


def _module_path(stdlib: pathlib.Path, module: str) -> pathlib.Path | None:
    """Source file of ``module`` inside ``stdlib`` (a package's __init__.py)."""
    base = stdlib.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def stdlib_text() -> tuple[str, dict]:
    """Concatenated source of :data:`STDLIB_MODULES` and a description of it."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    parts, found, missing = [], [], []
    for module in STDLIB_MODULES:
        path = _module_path(stdlib, module)
        if path is None:
            missing.append(module)
            continue
        found.append(module)
        source = path.read_bytes().decode("utf-8", errors="replace")
        parts.append(f"# ==== {module} ====\n{source}\n")
    text = "".join(parts)
    info = {"source": "python-stdlib", "stdlib_dir": str(stdlib),
            "modules": found, "missing_modules": missing}
    return text, info


def file_text(path: str) -> tuple[str, dict]:
    """Text of a UTF-8 file given by ``--data``, with a one-line error if unusable."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise CorpusError("--data", f"file not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError("--data", f"not valid UTF-8 text: {path} ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise CorpusError("--data", f"cannot read {path}: {e.strerror}") from None
    if not text:
        raise CorpusError("--data", f"file is empty: {path}")
    return text, {"source": "file", "path": str(p.resolve())}


@dataclasses.dataclass
class Corpus:
    """An encoded text split into training and validation token arrays."""

    vocab: list[str]
    train: np.ndarray
    valid: np.ndarray
    info: dict

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, tokens) -> str:
        return "".join(self.vocab[int(t)] for t in tokens)


def encode(text: str) -> tuple[list[str], np.ndarray]:
    """Character vocabulary (sorted) and the text as int32 token ids."""
    codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    chars, ids = np.unique(codepoints, return_inverse=True)
    return [chr(c) for c in chars], ids.astype(np.int32).reshape(-1)


def load_corpus(data: str | None, seq_len: int, max_chars: int | None = None) -> Corpus:
    """Load, encode and split the corpus; validate it holds a window per split.

    Args:
      data: path of a UTF-8 text file, or ``None`` for the standard-library corpus.
      seq_len: window length; each split must hold at least ``seq_len + 1`` tokens.
      max_chars: keep only the first ``max_chars`` characters (``--quick``).
    """
    text, info = stdlib_text() if data is None else file_text(data)
    if max_chars is not None:
        text = text[:max_chars]
    flag = "--data" if data is not None else "--seq-len"
    info["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    info["chars"] = len(text)
    vocab, ids = encode(text)
    n_train = int(len(ids) * TRAIN_FRACTION)
    train, valid = ids[:n_train], ids[n_train:]
    window = seq_len + 1
    if len(valid) < window:
        raise CorpusError(flag, f"corpus of {len(ids)} characters is too short for windows of "
                          f"{window} characters (the 10% validation split has {len(valid)})")
    info["train_tokens"] = int(len(train))
    info["valid_tokens"] = int(len(valid))
    info["vocab_size"] = len(vocab)
    return Corpus(vocab=vocab, train=train, valid=valid, info=info)


class BatchSampler:
    """Random windows from a token array, drawn with a seeded generator."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int):
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rng = np.random.default_rng(seed)
        self._offsets = np.arange(seq_len + 1)

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        """One batch: ``(inputs, targets)``, both int32 of shape [batch, seq_len]."""
        starts = self.rng.integers(0, len(self.tokens) - self.seq_len, size=self.batch_size)
        windows = self.tokens[starts[:, None] + self._offsets]
        return windows[:, :-1], windows[:, 1:]


def fixed_batches(tokens: np.ndarray, batch_size: int, seq_len: int, count: int, seed: int):
    """``count`` batches drawn once (the validation set evaluated at every eval)."""
    sampler = BatchSampler(tokens, batch_size, seq_len, seed)
    return [sampler() for _ in range(count)]
