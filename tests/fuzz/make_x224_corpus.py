#!/usr/bin/env python3
"""Writes the seed corpus of x224_fuzz: real client requests and near misses of each check.
Run from anywhere: python3 tests/fuzz/make_x224_corpus.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "x224")


def pdu(variable, li_delta=0, length_delta=0, code=0xE0):
    body = bytes([0, code, 0, 0, 0, 0, 0]) + variable
    total = 4 + len(body)
    body = bytes([(total - 5 + li_delta) & 0xFF]) + body[1:]
    return struct.pack(">BBH", 3, 0, total + length_delta) + body


NEG = bytes([1, 0, 8, 0, 3, 0, 0, 0])
CORR = bytes([6, 0, 36, 0]) + bytes(range(16)) + bytes(16)
seeds = {
    "xfreerdp_mstshash": pdu(b"Cookie: mstshash=alice\r\n" + NEG),
    "msts_token": pdu(b"Cookie: msts=3f2a9c0d1e5b4a7f8e6d2c1b0a9f8e7d\r\n" + NEG),
    "lb_info_line": pdu(b"tsv://MS Terminal Services Plugin.1.Sessions\r\n"),
    "neg_only": pdu(NEG),
    "bare": pdu(b""),
    "correlation": pdu(b"Cookie: msts=x\r\n" + NEG + CORR),
    "no_crlf": pdu(b"Cookie: msts=abc"),
    "bad_li": pdu(b"Cookie: mstshash=a\r\n" + NEG, li_delta=1),
    "bad_length": pdu(NEG, length_delta=-1),
    "confirm_code": pdu(NEG, code=0xD0),
    "tls_hello": bytes([0x16, 3, 1, 0, 0x2F]) + bytes(0x2F),
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}
os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
