"""Loupe: label images fast and keep an image-classification dataset honest."""
