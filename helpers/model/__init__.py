"""The language model: load it offline, find its blocks, hook them, capture any site (residual stream,
MLP input, MLP neurons) with one engine.

Imports nothing from the other sub-packages (model is the bottom of model -> data -> sae -> analysis
-> viz -> exercises)."""
