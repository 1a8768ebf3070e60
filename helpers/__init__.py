"""Helpers for the Brain Surgery workbook: small typed modules the notebooks call."""
