"""Load a tokenizer.json as tokenizers' own Tokenizer: what the tokenizer step runs, and what clients cut texts with."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from builder.common.errors import UserError


class TokenizerError(UserError):
    """No usable tokenizer.json where one was expected."""


def load_tokenizer(path: Path) -> Tokenizer:
    """A tokenizers.Tokenizer from a tokenizer.json file or a folder holding one, without padding or truncation."""
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise TokenizerError(f"no tokenizer.json at {path}", hint="pass --tokenizer pointing at a tokenizer.json")
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
