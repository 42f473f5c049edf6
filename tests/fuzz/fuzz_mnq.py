"""Fuzz target: .mnq bytes -> reader -> planner -> C net -> one run.
The first input byte decides whether the CRC-32 is recomputed, so that mutations also
reach the parser behind the checksum (a hostile file can carry a valid checksum)."""
import struct
import zlib

from _common import instrument_mnq, main, run_model

if __name__ == "__main__":
    instrument_mnq()

from mnq.errors import ModelFormatError, UnsupportedModelError
from mnq.mnq_format import HEADER_DTYPE, decode

CRC_AT = HEADER_DTYPE.fields["crc32"][1]


def with_valid_crc(data: bytes) -> bytes:
    if len(data) < HEADER_DTYPE.itemsize:
        return data
    b = bytearray(data)
    b[CRC_AT:CRC_AT + 4] = b"\0\0\0\0"
    b[CRC_AT:CRC_AT + 4] = struct.pack("<I", zlib.crc32(b))
    return bytes(b)


def TestOneInput(data: bytes):
    if not data:
        return
    body = bytes(data[1:])
    if data[0] & 1:
        body = with_valid_crc(body)
    try:
        run_model(decode(body, source="fuzz"))
    except (ModelFormatError, UnsupportedModelError):
        pass


if __name__ == "__main__":
    main(TestOneInput)
