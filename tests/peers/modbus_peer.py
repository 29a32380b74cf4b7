"""A real Modbus peer for Wearline's interop tests, built on pymodbus.

Reads a JSON spec of fields ({"kind", "address", "type", "order", "value"})
on stdin, encodes every value with Python's own `struct` (independently of
Wearline's decoder) into a pymodbus datastore, then serves it over Modbus TCP
(--tcp PORT) or RTU (--rtu DEVICE). Prints "ready" once serving.
"""

import argparse
import asyncio
import json
import struct
import sys

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer

FORMATS = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "u64": ">Q", "i64": ">q", "f32": ">f", "f64": ">d"}
SIZE = 256


def words(dtype, order, value, length=0):
    if dtype == "string":
        raw = value.encode("ascii").ljust(2 * length, b"\0")
        ws = [raw[i:i + 2] for i in range(0, len(raw), 2)]
        return [int.from_bytes(w[::-1] if order in ("BADC", "DCBA") else w, "big") for w in ws]
    raw = struct.pack(FORMATS[dtype], int(value) if dtype[0] in "ui" else float(value))
    ws = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if order in ("BADC", "DCBA"):
        ws = [w[::-1] for w in ws]
    if order in ("CDAB", "DCBA"):
        ws = ws[::-1]
    return [int.from_bytes(w, "big") for w in ws]


def build(spec):
    tables = {k: [0] * SIZE for k in ("coil", "discrete", "holding", "input")}
    for f in spec:
        kind, addr = f["kind"], f["address"]
        if f["type"] == "bool":
            if kind in ("coil", "discrete"):
                tables[kind][addr] = 1 if f["value"] else 0
            else:
                tables[kind][addr] |= (1 if f["value"] else 0) << f.get("bit", 0)
        else:
            for i, w in enumerate(words(f["type"], f.get("order", "ABCD"), f["value"], f.get("length", 0))):
                tables[kind][addr + i] = w
    # The classic datastore maps protocol address 0 to block address 1.
    block = lambda k: ModbusSequentialDataBlock(1, tables[k])
    device = ModbusDeviceContext(co=block("coil"), di=block("discrete"), hr=block("holding"), ir=block("input"))
    return ModbusServerContext(devices=device, single=True)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int)
    p.add_argument("--rtu")
    p.add_argument("--baud", type=int, default=19200)
    args = p.parse_args()
    context = build(json.load(sys.stdin))
    print("ready", flush=True)
    if args.tcp is not None:
        await StartAsyncTcpServer(context=context, address=("127.0.0.1", args.tcp))
    else:
        await StartAsyncSerialServer(context=context, port=args.rtu, framer="rtu", baudrate=args.baud)


asyncio.run(main())
