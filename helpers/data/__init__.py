"""Data: prompts, the layer scan, generation, the activation store and the pipeline that makes it.

Imports only ``helpers.model`` (and the shared ``config`` / ``files``)."""
