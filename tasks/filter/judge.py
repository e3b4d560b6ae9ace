"""The LLM judge's prompt and the strict reading of its answer.

The default rubric is additive (a point per criterion met, 0-5), in the manner of FineWeb-Edu's
annotation prompt, in our own words. The answer must end with a line `Score: N`; anything else is
malformed, counted and left out of training (a lenient parser would turn refusals into labels).
"""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_TEMPLATE = """You are rating web pages as material for teaching a language model. Read the extract \
below and add up points:

- 1 point if it contains some real information on a subject, even mixed with navigation, ads or other clutter.
- A 2nd point if it covers a topic coherently, even if incomplete or not written to teach.
- A 3rd point if a student could learn from it: it explains key ideas clearly, like an introduction \
or a good reference entry.
- A 4th point if it is well organised and focused, with examples or reasoning, and little irrelevant content.
- A 5th point if it is outstanding teaching material: precise, thorough, and easy to follow.

Give no points for spam, adult content, pure listings, or text that is mostly boilerplate.

The extract is written in {language}: judge it as a page in {language}, by the same standard as a page \
in any other language.

Extract:
<<<
{text}
>>>

Justify briefly in at most 60 words, then end with a final line of exactly this form:
Score: <total points, 0 to 5>"""

# The last non-empty line, and nothing but the score on it (markdown emphasis tolerated).
SCORE_LINE = re.compile(r"^[\s*_#>]*(?:educational\s+)?score[\s*_]*:[\s*_]*([0-5])[\s*_.]*$", re.IGNORECASE)


class MalformedAnswer(ValueError):
    """The judge's answer does not end with a `Score: N` line (N in 0..5)."""


def load_template(path: str | None) -> str:
    template = Path(path).read_text() if path else DEFAULT_TEMPLATE
    if "{text}" not in template:
        raise ValueError(f"prompt template {path} has no {{text}} placeholder for the document")
    return template


def language_name(code: str | None) -> str:
    """What the judge is told the page's language is: FineWeb-2's English name for it, else the code."""
    from tasks.languages import language

    if code in (None, "en"):
        return "English"
    return language(code).settings.get("name", code)


def render(template: str, text: str, max_chars: int, lang: str | None = None) -> str:
    # replace, not format: documents are full of braces.
    return template.replace("{language}", language_name(lang)).replace("{text}", text[:max_chars])


def parse_score(answer: str) -> int:
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    match = SCORE_LINE.match(lines[-1].strip()) if lines else None
    if match is None:
        raise MalformedAnswer(f"no final 'Score: N' line in {answer[-120:]!r}")
    return int(match.group(1))
