"""A line chart's worth of raster drawing, saved as PNG with zlib: no plotting library.

Used by `make demo` (devstack.demo) and bench/adaptation.py. Text is upper-case
5x7 bitmap glyphs; lines are stamped with a square pen.
"""

from __future__ import annotations

import math
import struct
import zlib

FONT = {  # 5x7 glyphs, one byte (5 low bits) per row, top to bottom
    "A": "0e1111111f1111", "B": "1e11111e11111e", "C": "0e11101010110e",
    "D": "1c12111111121c", "E": "1f10101e10101f", "F": "1f10101e101010",
    "G": "0e11101711110f", "H": "1111111f111111", "I": "0e04040404040e",
    "J": "0702020202120c", "K": "11121418141211", "L": "1010101010101f",
    "M": "111b1515111111", "N": "11111915131111", "O": "0e11111111110e",
    "P": "1e11111e101010", "Q": "0e11111115120d", "R": "1e11111e141211",
    "S": "0f10100e01011e", "T": "1f040404040404", "U": "1111111111110e",
    "V": "11111111110a04", "W": "1111111515150a", "X": "11110a040a1111",
    "Y": "1111110a040404", "Z": "1f01020408101f", "0": "0e11131519110e",
    "1": "040c040404040e", "2": "0e11010204081f", "3": "1f02040201110e",
    "4": "02060a121f0202", "5": "1f101e0101110e", "6": "0608101e11110e",
    "7": "1f010204080808", "8": "0e11110e11110e", "9": "0e11110f01020c",
    ".": "00000000000c0c", "-": "0000001f000000", ":": "000c0c000c0c00",
    "(": "02040808080402", ")": "08040202020408", "/": "00010204081000",
    "%": "18190204081303", "=": "00001f001f0000", ",": "000000000c0408",
    "+": "0004041f040400", "_": "0000000000001f",
}  # fmt: skip
Colour = tuple[int, int, int]


class Canvas:
    """An RGB raster with just what a line chart needs, saved as PNG with zlib."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, colour: Colour) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(colour)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: Colour) -> None:
        for y in range(max(y0, 0), min(y1, self.height)):
            for x in range(max(x0, 0), min(x1, self.width)):
                self.dot(x, y, colour)

    def line(
        self,
        a: tuple[float, float],
        b: tuple[float, float],
        colour: Colour,
        width: int = 1,
        dash: int = 0,
    ) -> None:
        """A segment stamped with a square pen; `dash` > 0 draws dash-long dashes."""
        length = math.dist(a, b)
        steps = max(1, int(length * 2))
        half = width // 2
        for k in range(steps + 1):
            t = k / steps
            if dash and int(t * length / dash) % 2:
                continue
            x = round(a[0] + (b[0] - a[0]) * t)
            y = round(a[1] + (b[1] - a[1]) * t)
            self.rect(x - half, y - half, x - half + width, y - half + width, colour)

    def text(self, x: int, y: int, s: str, colour: Colour = (0, 0, 0), scale: int = 2) -> int:
        """Upper-case 5x7 text with its top-left at (x, y); returns the x after it."""
        for ch in s.upper():
            glyph = FONT.get(ch)
            if glyph is not None:
                for row in range(7):
                    bits = int(glyph[2 * row : 2 * row + 2], 16)
                    for col in range(5):
                        if bits & (1 << (4 - col)):
                            self.rect(
                                x + col * scale,
                                y + row * scale,
                                x + (col + 1) * scale,
                                y + (row + 1) * scale,
                                colour,
                            )
            x += 6 * scale
        return x

    @staticmethod
    def text_width(s: str, scale: int = 2) -> int:
        return len(s) * 6 * scale - scale

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            )

        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )
