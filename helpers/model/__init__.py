"""The language model: load it offline, find its blocks, hook them, capture the residual stream.

Imports nothing from the other sub-packages (model is the bottom of model -> data -> sae -> analysis
-> viz -> exercises)."""
