"""Exports: stage outputs written in the formats other tools read (documents, tokens, the model).

Not a pipeline stage: it reads finished stage outputs and writes a directory of its own, listed in
`export.json` (written last) and in the catalog with lineage to the output it came from. Formats are
registered in `tasks/export/formats.py`.
"""
