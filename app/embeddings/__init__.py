"""Embeddings: one vector per image from a trained model's penultimate layer, and what is built on them."""
