"""How the object-store adapter reads a notification stream; the stream itself, from
a real MinIO, is in tests/integration/test_listing_stores.py."""

from __future__ import annotations

from freshet.objectstore import stream_lines


class Chunks:
    """A streamed body as the network delivers it: in pieces that ignore lines."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.reads = 0

    def read1(self, amt: int) -> bytes:
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""


def test_lines_split_across_reads_come_out_whole_and_in_order() -> None:
    body = Chunks(b'{"a":', b'1}\n{"b":2}\n \n{"c"', b":3}\n", b'{"d":4}')
    assert list(stream_lines(body)) == [b'{"a":1}', b'{"b":2}', b" ", b'{"c":3}', b'{"d":4}']  # type: ignore[arg-type]


def test_a_line_is_handed_on_as_soon_as_its_read_ends_it() -> None:
    body = Chunks(b'{"a":1}\n{"b"', b":2}\n")
    lines = stream_lines(body)  # type: ignore[arg-type]  # a fake response
    assert next(lines) == b'{"a":1}'
    assert body.reads == 1  # not waiting for more of the stream
