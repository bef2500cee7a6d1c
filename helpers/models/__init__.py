"""Plain-torch models: CNNs, transformer segmenters and the foundation-model encoders."""
