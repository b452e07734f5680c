"""Kubelet's ``$(VAR)`` expansion for command, args and env values (a port of
``third_party/forked/golang/expansion``): ``$(NAME)`` is replaced when NAME is known and kept verbatim
otherwise, ``$$`` is an escaped ``$``, and any other ``$`` is copied as is."""

from __future__ import annotations

from collections.abc import Callable, Mapping

Mapping_ = Callable[[str], str]


def mapping_for(*contexts: Mapping[str, str]) -> Mapping_:
    """Look a name up in each context in turn; an unknown name expands to itself, ``$(NAME)``."""

    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"$({name})"

    return lookup


def expand(text: str, mapping: Mapping_) -> str:
    """Expand the references in ``text`` exactly as kubelet does."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_name(text[cursor + 1 :])
            out.append(mapping(read) if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_name(rest: str) -> tuple[str, bool, int]:
    """(what to write, whether it is a variable name, how many characters were consumed)."""
    if rest[0] == "$":
        return "$", False, 1
    if rest[0] == "(":
        close = rest.find(")", 1)
        if close >= 0:
            return rest[1:close], True, close + 1
        return "$(", False, 1
    return "$" + rest[0], False, 1
