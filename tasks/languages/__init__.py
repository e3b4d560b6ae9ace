"""Every text operation per language: `words(text, lang)` and the registry in `registry.py`."""

from tasks.languages.registry import Language, known_languages, language, words

__all__ = ["Language", "known_languages", "language", "words"]
