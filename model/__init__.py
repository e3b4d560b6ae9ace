"""The model: GPT, the Parquet token loader, the training loop and evaluation."""
