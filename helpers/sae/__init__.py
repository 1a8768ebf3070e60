"""Sparse autoencoders: the model classes, training, metrics and the model-in-the-loop evaluation.

Imports only ``helpers.model`` and ``helpers.data`` (and the shared ``config`` / ``files``)."""
