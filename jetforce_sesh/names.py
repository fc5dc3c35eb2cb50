"""Making what players type safe to show: echoes in prompts, and display names.

Player text can break two things. A response's meta is one line of at most 1024
bytes, so an echo of bad input must hold no line break and stay short. In gemtext
a line that starts with ``=>``, ``#``, ``*``, ``>`` or a fence is markup, so a
display name must not start with one, nor hold a line break that would start a
new line. Both helpers drop or spell out the characters that could do that.
"""

from __future__ import annotations

import unicodedata

#: The longest display name, in characters.
MAX_NAME = 32

#: How much of a player's bad input a prompt repeats back to them.
ECHO_LIMIT = 24

# Line starts that gemtext reads as markup: links, headings, lists, quotes and
# preformatting fences. A name loses any of these characters at its start.
_MARKUP_START = "=#*>`"


def _invisible(char: str) -> bool:
    """Control, format, surrogate, unassigned and line/paragraph separators.

    Format characters (category Cf) include the bidirectional overrides, which
    could make a name render backwards over its neighbours.
    """
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")


def quoted(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` in quotes for a prompt: invisible characters (and backslashes)
    spelled as escapes, so the player sees what they sent, and cut to about
    ``limit`` characters, never inside an escape."""
    shown = ""
    for char in text:
        if char == "\\" or _invisible(char):
            part = char.encode("unicode_escape").decode("ascii")
        else:
            part = char
        if len(shown) + len(part) > limit:
            return f"'{shown}…'"
        shown += part
    return f"'{shown}'"


# Letters of other scripts that look like Latin ones, after casefold(): enough
# that "Alice" with a Cyrillic A, or "(you)" with a Greek omicron, passes for
# nobody else.
_LOOKALIKES = str.maketrans(
    "аϲԁеһіјκӏоοрϱԛѕτυѵԝхγуζзьвмнктаβεηινρχωαс",
    "acdehijkloopqqstuvwxyyz3bbmhktabeninpxwac",
)


def skeleton(name: str) -> str:
    """What ``name`` looks like, for telling names apart: compatibility forms
    folded (fullwidth letters are letters), case and accents dropped, and
    letters of other scripts that look Latin read as Latin."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return unicodedata.normalize("NFKC", plain).translate(_LOOKALIKES)


def clean_name(text: str) -> str:
    """The display name a player meant by ``text``: compatibility forms folded
    (fullwidth letters become letters), invisible characters become spaces, runs
    of spaces one space, and leading markup is dropped.

    The result may be empty or longer than :data:`MAX_NAME`; the caller decides
    what to tell the player.
    """
    spaced = "".join(
        " " if _invisible(char) else char
        for char in unicodedata.normalize("NFKC", text)
    )
    name = " ".join(spaced.split())
    while name and (name[0] in _MARKUP_START or name[0].isspace()):
        name = name[1:]
    return name
