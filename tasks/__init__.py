"""Pipeline stages: one package per stage (stage.py, config.py, helpers); `registry` lists them."""
