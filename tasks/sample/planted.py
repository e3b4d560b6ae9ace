"""The sample's pages and planted cases: which page is which case, and which stage must catch it."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from storage.errors import UserError
from tasks.sample.sources import distribution_readmes, language_reference, stdlib_docstrings, translation_texts

CASES = (
    "exact_duplicate",
    "near_duplicate",
    "spam",
    "boilerplate_only",
    "non_english",
    "pii",
    "blocklisted",
    "non_html",
    "non_200",
)
# The stage meant to remove each planted case (pii pages are kept, with the PII redacted).
EXPECTED_STAGE = {
    "exact_duplicate": "dedup",
    "near_duplicate": "dedup",
    "spam": "filter",
    "boilerplate_only": "extract",
    "non_english": "extract",
    "blocklisted": "filter",
    "non_html": "extract",
    "non_200": "extract",
    "pii": None,
    "original": None,
}
BLOCKED_HOSTS = ("www.casino-bonus.example", "free-pills.example", "m.adult-videos.example")


@dataclass
class Page:
    title: str
    paragraphs: list[str]
    host: str
    path: str
    case: str = "original"
    group: str = ""
    pii: list[str] = field(default_factory=list)
    charset: str = "utf-8"
    lang: str = ""  # set on sample_languages pages; the English sample is English

    @property
    def url(self) -> str:
        return f"https://{self.host}{self.path}"


def chunk_pages(sources: list[tuple[str, list[str]]], min_words: int = 80, max_words: int = 220) -> list[Page]:
    """Split each source into pages of a web-page-like length."""
    pages = []
    for title, paras in sources:
        current: list[str] = []
        words = 0
        part = 1
        for p in paras:
            current.append(p)
            words += len(p.split())
            if words >= min_words and (words >= max_words or len(current) >= 5):
                pages.append(Page(f"{title} (part {part})" if part > 1 else title, current, "", ""))
                current, words, part = [], 0, part + 1
        if words >= min_words // 2 and current:
            pages.append(Page(f"{title} (part {part})" if part > 1 else title, current, "", ""))
    return pages


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "page"


def assign_host(page: Page, kind: str, rng: random.Random) -> None:
    if kind == "reference":
        page.host = "docs.pylib.example"
    elif kind == "stdlib":
        page.host = rng.choice(["docs.pylib.example", "blog.pythontips.example", "forum.pyhelp.example"])
    else:
        page.host = rng.choice(
            [
                "pyindex.example",
                "github-mirror.example",
                "news.devweekly.example",
                "discuss.opensource.example",
                "www.techjournal.example",
            ]
        )
    page.path = f"/{_slug(page.title)}-{rng.randrange(10**6)}.html"


def _mutate(paragraphs: list[str], rng: random.Random) -> list[str]:
    """A near-duplicate: about one word in eighty replaced, the rest untouched."""
    out = [p.split(" ") for p in paragraphs]
    for _ in range(max(2, sum(len(p) for p in out) // 80)):
        para = rng.randrange(len(out))
        if out[para]:
            out[para][rng.randrange(len(out[para]))] = rng.choice(["updated", "revised", "new", "latest", "edited"])
    return [" ".join(p) for p in out]


def _fake_pii(rng: random.Random, words: list[str]) -> tuple[list[str], list[str]]:
    user = f"{rng.choice(words)}.{rng.choice(words)}{rng.randrange(10, 99)}".lower()
    email = f"{user}@{rng.choice(['mailhost', 'example-corp', 'inbox'])}.example.com"
    phone = f"+1 ({rng.randrange(201, 989)}) 555-{rng.randrange(1000, 9999)}"
    ipv4 = f"{rng.randrange(11, 223)}.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}"
    # Short on purpose: a long template shared by every PII page would be a 13-gram they all share,
    # and decontamination would then remove most of them along with the one the eval items use.
    sentences = [f"Contact: {email}.", f"Phone {phone}.", f"Mirror at {ipv4}."]
    return sentences, [email, phone, ipv4]


def build_pages(n_pages: int, planted: int, seed: int, languages: tuple[str, ...] = ()) -> list[Page]:
    """The sample's pages: originals first, then each case planted `planted` times (seeded). Pages of
    `languages` (the run's own, tasks/sample/languages.py) are not among the non-English cases."""
    rng = random.Random(seed)
    base = _source_pages(rng)
    n_originals = n_pages - planted * len(CASES)
    if n_originals < planted * 2 or len(base) < n_originals + planted * 2:
        raise UserError(
            f"sample: {len(base)} source pages available; {n_pages} pages with {planted} planted per case "
            "needs more. Lower acquire.sample_pages or acquire.planted_per_case."
        )
    # Planted pages are built from pages that pass the heuristic filters, so that the stage meant
    # for each case (dedup for duplicates, redaction for PII) is the one that must catch it.
    originals = _clean_first(base[:n_originals])
    spare = _clean_first(base[n_originals:])
    vocab = sorted({w for p in originals[:200] for w in re.findall(r"[A-Za-z]{5,12}", " ".join(p.paragraphs))})
    pages = list(originals)
    # A few originals served in a legacy charset, as many real sites still do.
    for page in originals[: max(1, n_originals // 50)]:
        page.charset = "windows-1252"
    for i in range(planted):
        pages += _planted_round(i, planted, originals, spare, vocab, rng)
    return pages + _non_english_pages(planted, rng, exclude=set(languages))


def _source_pages(rng: random.Random) -> list[Page]:
    pools = [("reference", language_reference()), ("stdlib", stdlib_docstrings()), ("readme", distribution_readmes())]
    base: list[Page] = []
    for kind, sources in pools:
        for page in chunk_pages(sources):
            assign_host(page, kind, rng)
            base.append(page)
    rng.shuffle(base)
    return base


def _planted_round(
    i: int, planted: int, originals: list[Page], spare: list[Page], vocab: list[str], rng: random.Random
) -> list[Page]:
    """Round `i` of the English cases, in a fixed order (the seeded draws depend on it)."""
    src = originals[i]
    exact = Page(src.title, list(src.paragraphs), src.host, src.path.replace(".html", f"-copy{i}.html"),
                 "exact_duplicate", src.url)  # fmt: skip
    src = originals[planted + i]
    mirror = rng.choice(["mirror.pagesync.example", "cache.webarchive-copy.example", "scraper.contentfarm.example"])
    near = Page(src.title, _mutate(src.paragraphs, rng), mirror, src.path, "near_duplicate", src.url)
    keywords = rng.sample(vocab, 6) + ["cheap", "best", "buy", "online"]
    stuffed = [" ".join(rng.choice(keywords) for _ in range(60)) for _ in range(5)]
    spam = Page(f"Best {keywords[0]} deals", stuffed, "deals.bestoffers.example", f"/offer-{i}.html", "spam")
    host = rng.choice(["www.techjournal.example", "pyindex.example"])
    empty = Page("Welcome", [], host, f"/landing-{i}.html", "boilerplate_only")
    sentences, values = _fake_pii(rng, vocab)
    donor = spare[i]
    paras = list(donor.paragraphs)
    paras.insert(1, sentences[0])
    paras.append(" ".join(sentences[1:]))
    pii = Page(donor.title, paras, "people.staffpages.example", f"/profile-{i}.html", "pii", pii=values)
    donor = spare[planted + i]
    blocked = Page(donor.title, list(donor.paragraphs), BLOCKED_HOSTS[i % len(BLOCKED_HOSTS)], f"/p/{i}.html",
                   "blocklisted")  # fmt: skip
    return [exact, near, spam, empty, pii, blocked]


def _non_english_pages(planted: int, rng: random.Random, exclude: set[str]) -> list[Page]:
    """UI messages in other languages; the run's own languages are left out (their pages are articles)."""
    translations = translation_texts()
    languages = sorted(lang for lang in translations if lang.split("_")[0] not in exclude)
    pages = []
    for i in range(planted):
        lang = languages[i % len(languages)]
        messages = translations[lang]
        start = rng.randrange(max(1, len(messages) - 40))
        chosen = messages[start : start + 40]
        paras = [" ".join(chosen[j : j + 5]) for j in range(0, len(chosen), 5)]
        host = f"{lang.lower().replace('_', '-')}.localsite.example"
        pages.append(Page(chosen[0][:60], paras, host, f"/{i}.html", "non_english"))
    return pages


def _clean_first(pages: list[Page]) -> list[Page]:
    # The rules, not the filter stage: the sample depends on the default Gopher thresholds only.
    from tasks.filter.rules.gopher import GopherQuality, GopherQualityConfig, GopherRepetition, GopherRepetitionConfig

    quality, repetition = GopherQuality(GopherQualityConfig()), GopherRepetition(GopherRepetitionConfig())

    def passes(page: Page) -> bool:
        text = "\n\n".join(page.paragraphs)
        return quality.check(text) is None and repetition.check(text) is None

    return sorted(pages, key=lambda p: not passes(p))  # stable: keeps the seeded order otherwise
