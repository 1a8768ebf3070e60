"""Hooks on the model: the one place that reads or edits a block's output, or reads a module's input.

A block returns its output hidden state either alone or as the first item of a tuple (depending
on the architecture and the transformers version). :func:`block_output` reads it,
:func:`edit_block` replaces it while a ``with`` block is active and always removes its hook,
:func:`read_input` hands a module's input (an MLP's, its output projection's) to a function,
:func:`read_call` hands a model's call (its positional and keyword arguments) to a function, and
:func:`run_until` runs a forward pass only as far as the last block it needs. Every capture,
generation, CE evaluation and steering path goes through these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from helpers.model.blocks import get_blocks, validate_layer

# an edit gets block L's output h [batch, tokens, d_model]; it returns the new h, or None to leave it
Edit = Callable[[torch.Tensor], torch.Tensor | None]


def block_output(output: Any) -> torch.Tensor:
    """The hidden state a block returned (alone, or first in a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def _with_output(output: Any, new: torch.Tensor) -> Any:
    return (new, *output[1:]) if isinstance(output, tuple) else new


@contextmanager
def edit_block(model: nn.Module, layer: int, edit: Edit) -> Iterator[None]:
    """While active, block ``layer``'s output h becomes ``edit(h)`` (unchanged if it returns None:
    an edit can just record). The hook is removed on exit, also when the body raises."""
    layer = validate_layer(model, layer)

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        new = edit(block_output(output))
        return None if new is None else _with_output(output, new)

    handle = get_blocks(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def read_input(module: nn.Module, fn: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """While active, ``fn(x)`` is called with the first positional input ``x`` of every call of
    ``module`` (a forward pre-hook: ``x`` is read, never changed). Removed on exit, also on raise."""

    def hook(_module: nn.Module, args: tuple) -> None:
        if not args:
            raise ValueError(f"{type(module).__name__} was called without a positional input to read")
        fn(args[0])

    handle = module.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def read_call(model: nn.Module, fn: Callable[[tuple, dict], None]) -> Iterator[None]:
    """While active, ``fn(args, kwargs)`` is called with the arguments of every call of ``model``
    before it runs (a forward pre-hook with keywords: read, never changed): how an edit learns the
    positions of the tokens it sees. Removed on exit, also on raise."""

    def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        fn(args, kwargs)

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


class StopForward(Exception):
    """Raised after the last block a forward pass needs, to end the pass there."""


def _raise_stop(_h: torch.Tensor) -> None:
    raise StopForward


def run_until(
    model: nn.Module,
    last: int,
    inputs: dict[str, torch.Tensor],
    record: dict[int, Callable[[torch.Tensor], None]] | None = None,
    record_inputs: list[tuple[nn.Module, Callable[[torch.Tensor], None]]] | None = None,
) -> None:
    """Forward ``inputs`` through blocks ``0..last`` only, calling ``record[i](h)`` with block i's
    output and ``fn(x)`` with the input of each ``(module, fn)`` of ``record_inputs`` on the way; the
    blocks after ``last`` and the unembedding never run."""
    with ExitStack() as stack:
        for i, fn in sorted((record or {}).items()):
            stack.enter_context(edit_block(model, i, fn))
        for module, fn in record_inputs or []:
            stack.enter_context(read_input(module, fn))
        stack.enter_context(edit_block(model, last, _raise_stop))
        try:
            with torch.inference_mode():
                model(**inputs)
        except StopForward:
            pass
