"""acquire's config: where the WARC files come from and how they are fetched."""

from __future__ import annotations

import glob
import os
from typing import Literal

from pydantic import Field, model_validator

from storage.section import Section
from tasks.download import DownloadConfig

CRAWL_ID = r"^CC-MAIN-\d{4}-\d{2}$"


class AcquireConfig(Section):
    source: Literal["sample", "paths", "urls", "commoncrawl"] = "sample"
    paths: list[str] = Field(default_factory=list, description="local WARC paths or globs (source=paths)")
    urls: list[str] = Field(default_factory=list, description="http(s) or any fsspec URLs of WARC files (source=urls)")
    crawl: str | None = Field(None, pattern=CRAWL_ID, description="Common Crawl crawl id, e.g. CC-MAIN-2024-10")
    file_type: Literal["warc", "wet"] = Field("warc", description="Common Crawl WARC (HTML) or WET (text) files")
    select: Literal["first", "random", "list"] = Field("first", description="which files of the crawl")
    count: int = Field(1, ge=1, le=100_000, description="files to take (select=first|random)")
    files: list[str] = Field(default_factory=list, description="paths from the crawl's index (select=list)")
    host: str = Field(
        "https://data.commoncrawl.org/", description="Common Crawl data host, or s3://commoncrawl/ (fsspec)"
    )
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    stream: bool = Field(False, description="extract each file as soon as it is downloaded (urls, commoncrawl)")
    strict: bool = Field(False, description="fail before extract when an input file holds no readable record")
    sample_pages: int = Field(2400, ge=50, le=200_000, description="pages in the embedded sample")
    planted_per_case: int = Field(24, ge=1, le=1000)
    sample_languages: list[str] = Field(
        default_factory=list,
        description="languages whose articles join the embedded sample, each with its own planted near-duplicates, "
        "spam and boilerplate-only pages (planted_per_case / 6 of each); `en` adds English articles made the same "
        "way, the yardstick for same-quality survival. configs/sample-multilingual.yaml sets nine",
    )
    sample_articles: int = Field(60, ge=10, le=10_000, description="articles per language of sample_languages")
    seed: int = 0

    @model_validator(mode="after")
    def _source_is_complete(self) -> AcquireConfig:
        if self.paths and self.source == "sample":
            self.source = "paths"
        if self.source == "paths" and not self.paths:
            raise ValueError("source=paths needs at least one path or glob in acquire.paths")
        missing = [p for p in self.paths if not glob.glob(os.path.expanduser(p))]
        if missing:
            raise ValueError(f"no file matches {missing}")
        if self.source == "urls" and not self.urls:
            raise ValueError("source=urls needs at least one URL in acquire.urls")
        if self.source == "commoncrawl":
            if not self.crawl:
                raise ValueError("source=commoncrawl needs acquire.crawl, e.g. CC-MAIN-2024-10")
            if self.select == "list" and not self.files:
                raise ValueError("select=list needs acquire.files (paths as listed in the crawl's index)")
        if self.sample_languages:
            from tasks.sample.languages import available_languages

            known = available_languages()
            if unknown := [lang for lang in self.sample_languages if lang not in known]:
                raise ValueError(f"sample_languages: no text for {unknown} here; there is for {', '.join(known)}")
        if "://" not in self.host:
            raise ValueError(f"host must be a URL such as https://data.commoncrawl.org/, got {self.host!r}")
        return self
