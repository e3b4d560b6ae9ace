"""Page rendering for the embedded sample: an article wrapped in realistic boilerplate."""

from __future__ import annotations

import html
import random

from tasks.sample.planted import Page


def boilerplate(rng: random.Random, host: str) -> dict[str, str]:
    site = host.split(".")[-2].replace("-", " ").title()
    sections = rng.sample(
        [
            "Home",
            "Docs",
            "Blog",
            "Downloads",
            "Community",
            "About",
            "Pricing",
            "Support",
            "News",
            "Careers",
            "Events",
            "Contact",
        ],
        6,
    )
    nav = "".join(f'<li><a href="/{s.lower()}/">{s}</a></li>' for s in sections)
    related = "".join(
        f'<li><a href="/page/{rng.randrange(10**6)}">{w}</a></li>'
        for w in rng.sample(
            [
                "Getting started",
                "Tutorial",
                "FAQ",
                "Release notes",
                "Changelog",
                "Installation",
                "Reference",
                "Glossary",
                "Examples",
                "Roadmap",
            ],
            5,
        )
    )
    return {
        "header": f'<header><div class="logo">{site}</div><nav><ul>{nav}</ul></nav>'
        f'<form class="search"><input name="q" placeholder="Search {site}"></form></header>',
        "cookie": '<div class="cookie-banner" id="cookies">We use cookies to improve your experience. '
        'By continuing to browse you agree to our <a href="/privacy">cookie policy</a>. '
        "<button>Accept all</button> <button>Reject</button></div>",
        "sidebar": f'<aside class="sidebar"><h3>Related</h3><ul>{related}</ul>'
        '<div class="ad">Sponsored: upgrade to Pro today</div></aside>',
        "footer": f"<footer><p>&copy; {2010 + rng.randrange(16)} {site}. All rights reserved.</p>"
        '<ul><li><a href="/privacy">Privacy</a></li><li><a href="/terms">Terms of use</a></li>'
        '<li><a href="/imprint">Imprint</a></li></ul></footer>',
    }


def paragraph_html(p: str) -> str:
    text = html.escape(p)
    # Indented or prompt-led blocks are code in docstrings and READMEs.
    if p.startswith((">>>", "$ ", "    ", "pip ", "import ", "from ")):
        return f"<pre><code>{text}</code></pre>"
    return f"<p>{text}</p>"


def render(page: Page, rng: random.Random, with_content: bool = True) -> str:
    bp = boilerplate(rng, page.host)
    body = "".join(paragraph_html(p) for p in page.paragraphs) if with_content else ""
    article = f"<main><article><h1>{html.escape(page.title)}</h1>{body}</article></main>" if with_content else ""
    lang = (page.lang or "en") if page.case != "non_english" else "und"
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="{page.charset}">'
        f"<title>{html.escape(page.title)}</title>"
        '<link rel="stylesheet" href="/static/site.css"><script>window.dataLayer=[];</script></head>'
        f"<body>{bp['cookie']}{bp['header']}{article}{bp['sidebar']}{bp['footer']}</body></html>"
    )


# --- planting ----------------------------------------------------------------------------------
