"""Language budgets: how many of the mixture's tokens each language gets, before domains share them out.

Temperature sampling over the languages' token counts (mT5, XLM-R: p proportional to n^alpha, alpha
0.3) lifts a small language far above its natural share; target shares set them by hand. A language's
up-sampling is capped at `max_epochs` passes over its own tokens: repeated tokens are worth less
than fresh ones (Muennighoff et al. 2023: about 4 epochs are worth nearly as much as new data, 40
little more than 16), and the report says what the repeats are worth. Tokens a capped language
cannot use are not given to the others: the budget is a ceiling, not a promise.
"""

from __future__ import annotations

from typing import Any

from model.sizing import effective_tokens
from tasks.mix.config import LanguageMixConfig

UNDETERMINED = "und"  # documents without a language label


def language_of(doc: dict[str, Any]) -> str:
    return doc.get("lang") or UNDETERMINED


def language_targets(tokens: dict[str, float], cfg: LanguageMixConfig) -> dict[str, float]:
    """Each language's target share of the mixture's tokens."""
    if cfg.shares:
        weights = {lang: cfg.shares.get(lang, 0.0) for lang in tokens}
    else:
        weights = {lang: n**cfg.alpha if n else 0.0 for lang, n in tokens.items()}
    norm = sum(weights.values()) or 1.0
    return {lang: w / norm for lang, w in weights.items()}


def language_budgets(tokens: dict[str, float], budget: float, cfg: LanguageMixConfig) -> dict[str, float]:
    """Tokens each language contributes: its share of the budget, at most `max_epochs` x its own tokens."""
    targets = language_targets(tokens, cfg)
    return {lang: min(targets[lang] * budget, cfg.max_epochs * n) for lang, n in tokens.items()}


def language_table(before: dict[str, float], after: dict[str, float], docs: dict[str, int],
                   targets: dict[str, float]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Per language: tokens and shares before and after, the target share, epochs over its own tokens,
    and what those tokens are worth in fresh ones."""
    total_before, total_after = sum(before.values()) or 1.0, sum(after.values()) or 1.0
    table = {}
    for lang in sorted(before):
        epochs = after.get(lang, 0.0) / before[lang] if before[lang] else 0.0
        table[lang] = {"docs_before": docs[lang], "tokens_before": round(before[lang]),
                       "share_before": before[lang] / total_before, "target_share": targets[lang],
                       "tokens_after": round(after.get(lang, 0.0)), "share_after": after.get(lang, 0.0) / total_after,
                       "epochs": epochs, "fresh_equivalent": round(effective_tokens(before[lang], epochs))
                       if epochs >= 1 else round(after.get(lang, 0.0))}  # fmt: skip
    return table
