"""Compiling the regular expressions a spec gives (guardrail patterns), the same way wherever
they are compiled, so that `validate` accepts exactly the patterns the runtime can build.

`re.compile` fails in more ways than `re.error`: a repetition count past the C limit raises
`OverflowError`, and groups nested a few hundred deep raise `RecursionError` from the parser (how
deep depends on how much of the stack the caller already uses, so it is refused here at a fixed
depth instead)."""

from __future__ import annotations

import re

# Groups nested deeper than this are refused before `re` parses them (its parser recurses about
# twice per group, on Python's 1,000-frame stack).
MAX_GROUP_NESTING = 100


class InvalidRegex(ValueError):
    """A pattern that cannot be compiled; the message says why, for a spec author."""


def group_nesting(pattern: str) -> int:
    """How deeply the pattern's groups nest (parentheses outside character classes, escapes
    skipped)."""
    deepest = depth = 0
    index, end = 0, len(pattern)
    in_class = False
    while index < end:
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # a ']' right after '[' or '[^' is a literal member of the class
            if pattern.startswith("^", index + 1):
                index += 1
            if pattern.startswith("]", index + 1):
                index += 1
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")" and depth:
            depth -= 1
        index += 1
    return deepest


def compile_regex(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """`re.compile(pattern, flags)`, or InvalidRegex saying what is wrong with the pattern."""
    if group_nesting(pattern) > MAX_GROUP_NESTING:
        raise InvalidRegex(f"groups nest more than {MAX_GROUP_NESTING} deep")
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise InvalidRegex(str(exc)) from None
    except OverflowError as exc:  # a repetition count such as a{0,18446744073709551617}
        raise InvalidRegex(str(exc)) from None
    except RecursionError:
        raise InvalidRegex(
            f"the pattern nests too deeply (groups at most {MAX_GROUP_NESTING} deep)"
        ) from None
