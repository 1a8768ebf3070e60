"""Helpers for the Brain Surgery workbook: small typed modules the notebooks call."""

from helpers.malloc import keep_freed_memory

keep_freed_memory()  # faster large tensors on glibc, same numbers (see helpers.malloc)
