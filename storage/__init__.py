"""Storage: the DuckDB catalog, stage fingerprints and atomic shard IO."""
