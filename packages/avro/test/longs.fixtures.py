"""Writes test/longs.fixtures.json: Avro binary written by Apache Avro for Python (an implementation independent of
avsc), for the longs near 2^52 and 2^53 and the int64 extremes.

Run once, where Debian's python3-avro is installed (CI does not need it: the tests read the JSON):
    apt-get install -y python3-avro && /usr/bin/python3 packages/avro/test/longs.fixtures.py
"""
import io
import json
import os

import avro.io
import avro.schema

SCHEMA = {
    "type": "record",
    "name": "Longs",
    "namespace": "com.example",
    "fields": [
        {"name": "count", "type": "long"},
        {"name": "at_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "at_millis", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
FIELDS = [f["name"] for f in SCHEMA["fields"]]
# the same record with the logical types left out: they do not change the binary encoding, and Avro for Python
# wants datetimes (which cannot hold these values) where they are declared
PLAIN = {**SCHEMA, "fields": [{"name": n, "type": "long"} for n in FIELDS]}

EXACT = [2**52 - 1, 2**52, 2**52 + 1, 2**53 - 1]
REFUSED = [2**53, 2**63 - 1]
VALUES = [s * v for v in EXACT for s in (1, -1)] + [s * v for v in REFUSED for s in (1, -1)] + [-(2**63)]
# every power of two up to 2^63 with its neighbours, both signs, in int64: a sweep of every varint length
SWEEP = sorted(v for v in {s * (2**k + d) for k in range(64) for d in (-1, 0, 1) for s in (1, -1)} if -(2**63) <= v < 2**63)
ONE = {"type": "record", "name": "Long", "namespace": "com.example", "fields": [{"name": "value", "type": "long"}]}


def write(schema, datum):
    out = io.BytesIO()
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(out))
    return out.getvalue()


def read(schema, data):
    return avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data)))


plain = avro.schema.parse(json.dumps(PLAIN))
longs = []
for value in VALUES:
    records = {}
    for field in FIELDS:
        datum = {n: (value if n == field else 0) for n in FIELDS}
        data = write(plain, datum)
        assert read(plain, data) == datum, (value, field)
        records[field] = data.hex()
    longs.append({"value": str(value), "exact": abs(value) <= 2**53 - 1, "records": records})

one = avro.schema.parse(json.dumps(ONE))
sweep = {}
for value in SWEEP:
    data = write(one, {"value": value})
    assert read(one, data) == {"value": value}, value
    sweep[str(value)] = data.hex()

fixture = {
    "$comment": "Written by test/longs.fixtures.py with Apache Avro for Python (Debian python3-avro "
    + avro.__version__
    + "): for each value, the Avro binary of a com.example.Longs record (schema below) holding it in one field, the"
    + " others 0, written with the logical types left out (they do not change the binary encoding).",
    "schema": SCHEMA,
    "longs": longs,
    "$sweep": "The Avro binary of a com.example.Long record (the schema below, one long field) for each value.",
    "sweepSchema": ONE,
    "sweep": sweep,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "longs.fixtures.json")
with open(path, "w") as f:
    # indented JSON, with one line per value of the sweep
    text = json.dumps({k: v for k, v in fixture.items() if k != "sweep"}, indent=2).removesuffix("\n}")
    lines = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in sweep.items())
    f.write(text + ',\n  "sweep": {\n' + lines + "\n  }\n}\n")
