"""A fastText topic classifier, trained from user-labelled examples, that refines URL-rule domains."""

from __future__ import annotations

import json
from pathlib import Path

from storage.fingerprint import unit_interval
from tasks.fasttext_training import train_and_save

PREFIX = "__label__"


def _line(text: str, max_words: int = 300) -> str:
    return " ".join(text.lower().split()[:max_words])


def train_topic_model(examples_path: str, out_path: Path, seed: int = 0) -> dict[str, int]:
    """Train on JSONL {"text", "domain"} rows; return examples per domain."""
    rows = [json.loads(line) for line in Path(examples_path).read_text().splitlines() if line.strip()]
    bad = [i for i, r in enumerate(rows) if not r.get("text") or not r.get("domain")]
    if bad or not rows:
        raise ValueError(f"{examples_path}: every line needs non-empty 'text' and 'domain' (bad lines: {bad[:5]})")
    rows.sort(key=lambda r: unit_interval(seed, "topic", r["text"]))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    train_file = out_path.with_suffix(".train.txt")
    train_file.write_text("".join(f"{PREFIX}{r['domain'].replace(' ', '_')} {_line(r['text'])}\n" for r in rows))
    train_and_save(train_file, out_path, 0.5, epoch=25, wordNgrams=2, dim=32, minCount=1, bucket=1 << 17, seed=seed)
    train_file.unlink()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["domain"]] = counts.get(r["domain"], 0) + 1
    return counts


class TopicModel:
    def __init__(self, path: Path):
        import fasttext

        self.model = fasttext.load_model(str(path))

    def predict(self, text: str) -> tuple[str, float]:
        labels, probs = self.model.predict(_line(text), k=1)
        return labels[0].removeprefix(PREFIX), float(probs[0])
