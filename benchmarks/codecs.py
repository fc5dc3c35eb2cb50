"""``python -m benchmarks.codecs``: three record codecs, timed and sized side by side.

Each codec encodes and decodes a few thousand records of two classes: the visit
counter's one-field ``Visits`` (:mod:`benchmarks.apps`, 64-byte slots) and
``Game``, an eight-field record with a list and a dict, as the games keep. The
codecs are

- marshal: the hand-written codec jetforce-sesh 0.1 shipped, rebuilt here;
- cattrs + msgpack: ``cattrs.preconf.msgpack``, with the structure hooks our
  records need to come back with the types their fields declare;
- MsgpackCodec: ours, which checks and canonicalises every value both ways.

For each it prints the microseconds per record to encode and to decode (median
and best of ``--repeats`` passes over ``--records`` records) and the encoded
sizes. Then it checks determinism: do equal records encode to equal sizes (and
bytes)? The first case is the one that broke the marshal codec: a list of 12
references to one str against 12 equal strs built apart, as request data builds
them.

Run it from the repository root: ``python -m benchmarks.codecs --repeats 9``.
"""

from __future__ import annotations

import argparse
import marshal
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

import attrs
import cattrs.preconf.msgpack

from benchmarks.apps import Visits
from jetforce_sesh import MsgpackCodec

R = TypeVar("R")

#: The slot sizes MsgpackCodec checks against (encode refuses a larger record).
SLOT_SIZES: dict[type, int] = {Visits: 64}


@attrs.define
class Game:
    """A game-like record: scalars of each kind, a list and a dict."""

    name: str = ""
    level: int = 1
    score: int = 0
    ratio: float = 0.0
    alive: bool = True
    token: bytes = b""
    moves: list[int] = attrs.Factory(list)
    seen: dict[str, int] = attrs.Factory(dict)


@attrs.define
class Log:
    words: list[str] = attrs.Factory(list)


class Encoding(Protocol[R]):
    def encode(self, record: R) -> bytes: ...

    def decode(self, data: bytes) -> R: ...


# -- (a) the marshal codec of 0.1 ---------------------------------------------


class MarshalCodec(Generic[R]):
    """``marshal.dumps({init_name: value})``, no checks: the 0.1 codec."""

    def __init__(self, record_type: type[R]) -> None:
        self._make: Callable[..., R] = record_type
        fields = attrs.fields(cast(Any, record_type))
        self._names = tuple(field.name for field in fields)
        self._aliases = tuple(field.alias or field.name for field in fields)

    def encode(self, record: R) -> bytes:
        return marshal.dumps(
            {
                alias: getattr(record, name)
                for name, alias in zip(self._names, self._aliases, strict=True)
            }
        )

    def decode(self, data: bytes) -> R:
        return self._make(**marshal.loads(data))


# -- (b) cattrs + msgpack -----------------------------------------------------


def _strict(kind: type) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _float(value: Any, _: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise TypeError(f"expected float, got {type(value).__name__}")


def strict_cattrs() -> cattrs.preconf.msgpack.MsgpackConverter:
    """The msgpack preconf converter, made to refuse what our records refuse.

    cattrs structures a primitive by calling its type on the stored value, so
    out of the box it converts where a record must be refused: int(2.7) gives 2
    for an int field, str(3) gives "3" for a str field, bool("no") gives True,
    bytes(3) gives three NUL bytes, and int("4") turns a list of strs into a
    list[int]. Each of int, str, bytes and bool gets an exact-type hook instead,
    and float one that takes an int (as our codec does) but nothing else. The
    hooks apply inside lists and dicts too. cattrs checks nothing on the way
    out (unstructure), so a wrong-typed value is stored and only refused when
    it is next read; detailed validation is left on, as our errors are detailed.
    """
    converter = cattrs.preconf.msgpack.make_converter()
    for kind in (int, str, bytes, bool):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook(float, _float)
    return converter


class CattrsCodec(Generic[R]):
    """cattrs' msgpack converter, strict, for one record class."""

    def __init__(
        self, record_type: type[R], converter: cattrs.preconf.msgpack.MsgpackConverter
    ) -> None:
        self._type = record_type
        self._converter = converter

    def encode(self, record: R) -> bytes:
        return self._converter.dumps(record)

    def decode(self, data: bytes) -> R:
        return self._converter.loads(data, self._type)


# -- records --------------------------------------------------------------------


def visits(count: int, rng: random.Random) -> list[Visits]:
    return [Visits(count=rng.choice([1, 7, 300, 70_000, 2**33])) for _ in range(count)]


def _word(rng: random.Random) -> str:
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 10)))


def games(count: int, rng: random.Random) -> list[Game]:
    return [
        Game(
            name=_word(rng),
            level=rng.randint(1, 9),
            score=rng.randint(0, 100_000),
            ratio=rng.random(),
            alive=rng.random() < 0.8,
            token=rng.randbytes(8),
            moves=[rng.randint(0, 8) for _ in range(rng.randint(0, 9))],
            seen={_word(rng): rng.randint(0, 50) for _ in range(rng.randint(0, 4))},
        )
        for _ in range(count)
    ]


# -- measuring --------------------------------------------------------------------


def _per_record(call: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Microseconds per call of ``call`` over ``items``."""
    started = time.perf_counter()
    for item in items:
        call(item)
    return 1e6 * (time.perf_counter() - started) / len(items)


@attrs.frozen
class Figures:
    encode: list[float]
    decode: list[float]
    sizes: list[int]


def measure(
    codecs: dict[str, Encoding[Any]], records: Sequence[Any], repeats: int
) -> dict[str, Figures]:
    """Each codec's times and sizes; passes alternate between the codecs, so a
    machine that slows down part way slows them all alike."""
    encoded = {
        name: [codec.encode(r) for r in records] for name, codec in codecs.items()
    }
    figures = {}
    for name, codec in codecs.items():
        # A codec that does not round trip would be timed doing something else.
        if [codec.decode(data) for data in encoded[name]] != list(records):
            raise AssertionError(f"{name} does not round trip")
        figures[name] = Figures([], [], [len(data) for data in encoded[name]])
    for _ in range(repeats):
        for name, codec in codecs.items():
            figures[name].encode.append(_per_record(codec.encode, records))
            figures[name].decode.append(_per_record(codec.decode, encoded[name]))
    return figures


def _times(values: Sequence[float]) -> str:
    return f"{statistics.median(values):5.2f} ({min(values):5.2f})"


def _sizes(sizes: Sequence[int]) -> str:
    return f"{statistics.mean(sizes):5.1f} mean, {min(sizes)}-{max(sizes)}"


# -- determinism ----------------------------------------------------------------


@attrs.frozen
class Case:
    """Two equal records, built apart, of class ``record_type``."""

    label: str
    record_type: type
    one: object
    two: object
    #: Compare the bytes, not only the sizes.
    exact: bool


def _cases() -> list[Case]:
    word = "a-twenty-char-word!!"
    return [
        Case(
            "12 shared vs 12 distinct equal strs, size",
            Log,
            Log([word] * 12),
            Log(["".join(list(word)) for _ in range(12)]),
            exact=False,
        ),
        Case(
            "dict built in another order, bytes",
            Game,
            Game(seen={"b": 1, "a": 2}),
            Game(seen={"a": 2, "b": 1}),
            exact=True,
        ),
        Case(
            "int 1 vs 1.0 in a float field, size",
            Game,
            Game(ratio=1),
            Game(ratio=1.0),
            exact=False,
        ),
    ]


def _alike(codec: Encoding[Any], case: Case) -> str:
    """Whether the case's records encode alike, with the sizes."""
    if case.one != case.two:
        raise AssertionError(f"{case.label}: the records are not equal")
    first, second = codec.encode(case.one), codec.encode(case.two)
    if len(first) != len(second):
        return f"no: {len(first)} vs {len(second)} B"
    if case.exact and first != second:
        return f"no: bytes differ ({len(first)} B)"
    return f"yes ({len(first)} B)"


def determinism(makers: dict[str, Callable[[type], Encoding[Any]]]) -> None:
    print("Determinism: do equal records encode alike?")
    print((f"  {'':<42}" + "".join(f"{name:<26}" for name in makers)).rstrip())
    for case in _cases():
        row = "".join(
            f"{_alike(make(case.record_type), case):<26}" for make in makers.values()
        )
        print(f"  {case.label:<42}{row}".rstrip())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.codecs",
        description="Time and size three record codecs on two record classes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=5000, help="Records a pass")
    parser.add_argument("--repeats", type=int, default=7, help="Passes per codec")
    parser.add_argument("--seed", type=int, default=1, help="Seed for the records")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    converter = strict_cattrs()
    makers: dict[str, Callable[[type], Encoding[Any]]] = {
        "marshal (0.1)": MarshalCodec,
        "cattrs + msgpack": lambda record_type: CattrsCodec(record_type, converter),
        "MsgpackCodec": lambda record_type: MsgpackCodec(
            record_type, SLOT_SIZES.get(record_type, 512)
        ),
    }
    samples: list[tuple[str, type, Sequence[Any]]] = [
        ("Visits (1 int field, 64-byte slots)", Visits, visits(args.records, rng)),
        ("Game (8 fields, a list and a dict)", Game, games(args.records, rng)),
    ]
    print(
        f"{args.records} records, {args.repeats} passes;"
        " µs per record, median (best); size in bytes"
    )
    for title, record_type, records in samples:
        codecs = {name: make(record_type) for name, make in makers.items()}
        print(title)
        print(f"  {'codec':<18}{'encode':<16}{'decode':<16}size")
        for name, figures in measure(codecs, records, args.repeats).items():
            print(
                f"  {name:<18}{_times(figures.encode):<16}{_times(figures.decode):<16}"
                f"{_sizes(figures.sizes)}"
            )
    determinism(makers)


if __name__ == "__main__":
    main()
