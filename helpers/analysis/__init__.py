"""Reading an SAE: feature indices and dashboards' data, automatic labels, clustering, steering.

Imports ``helpers.model``, ``helpers.data`` and ``helpers.sae``; never ``viz`` or ``exercises``."""
