"""Train -> export -> gate -> evaluate for the small CNNs framesmith ships (train extra).

Entry point: `python -m infer train --config configs/train-upscale.toml` (cli.main).
"""
