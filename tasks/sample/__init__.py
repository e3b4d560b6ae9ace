"""The embedded sample: a Common-Crawl-like WARC built offline from text every Python install has.

`sources` finds the text, `planted` cuts it into pages and plants the cases (duplicates, spam, PII,
blocklisted hosts, other languages), `render` wraps each page in boilerplate HTML, and `warc` writes
the records and the ground truth (`ground_truth.jsonl`) that tests and the report score each stage by.
"""
