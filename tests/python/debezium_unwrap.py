#!/usr/bin/env python3
"""An independent reader of Debezium MySQL change events (stdlib only).

tests/mysql_cdc.rs pipes sluice's Kafka records through this program to prove that its output is
consumable, unchanged, by a consumer written for Debezium: the records are validated strictly as
Debezium 2.x envelopes (as serialized by JsonConverter with schemas.enable=true), flattened with the
semantics of Debezium's ExtractNewRecordState SMT (delete.handling.mode, drop.tombstones,
add.fields), and materialized into one table per topic so the result can be compared with the
database.

Input (stdin): NDJSON, one record a line, in Kafka order per partition:
    {"topic": "<prefix>.<db>.<table>", "key": K, "value": V}
with K and V each {"schema": ..., "payload": ...} or null.
Output (stdout): {"<table>": [row, ...], ...}, rows sorted by their canonical key JSON.
Summary (stderr): record counts per op. Malformed input: message on stderr, exit status 2.

Deletes with --delete-handling-mode none become, as in the SMT, a record with a null value (the
extracted 'after'), applied like a tombstone.
Truncate (op t): Debezium 2.x's SMT itself drops these events (before and after both null); a
consumer of the raw topic sees op t and empties the table, which is what --truncate-handling clear
(the default) does. --truncate-handling drop gives the SMT's exact behaviour.
"""
import argparse
import json
import sys

OPS = {"c", "u", "d", "r", "t"}
SOURCE_REQUIRED = ("db", "table", "ts_ms", "file", "pos")
ENVELOPE_FIELDS = {"op", "ts_ms", "ts_us", "ts_ns"}
TRANSACTION_FIELDS = {"id", "total_order", "data_collection_order"}


class Malformed(Exception):
    """The input is not a well-formed Debezium change event."""


def check(cond, message):
    if not cond:
        raise Malformed(message)


def fields(schema, what):
    """The {name: field schema} of a JsonConverter struct schema."""
    check(isinstance(schema, dict) and schema.get("type") == "struct", f"{what}: schema is not a struct")
    check(isinstance(schema.get("fields"), list), f"{what}: struct schema has no 'fields' list")
    return {f.get("field"): f for f in schema["fields"]}


def base_name(schema, suffix, what):
    name = schema.get("name") or ""
    check(name.endswith(suffix), f"{what}: schema name {name!r} does not end with {suffix!r}")
    return name[: -len(suffix)]


def check_struct(payload, schema, what):
    check(isinstance(payload, dict), f"{what}: payload is not an object")
    check(set(payload) == set(fields(schema, what)),
          f"{what}: payload fields {sorted(payload)} differ from schema fields {sorted(fields(schema, what))}")


def validate(rec):
    """Checks one record; returns its op ('tombstone' for a null value)."""
    check(isinstance(rec, dict) and {"topic", "key", "value"} <= set(rec), "record needs topic, key and value")
    check(isinstance(rec["topic"], str) and rec["topic"], "topic is not a non-empty string")
    key, value = rec["key"], rec["value"]
    key_base = None
    if key is not None:
        check(isinstance(key, dict) and "schema" in key and "payload" in key, "key lacks schema/payload")
        key_base = base_name(key["schema"], ".Key", "key")
        check_struct(key["payload"], key["schema"], "key")
    if value is None:
        check(key is not None, "tombstone without a key")
        return "tombstone"
    check(isinstance(value, dict) and "schema" in value and "payload" in value, "value lacks schema/payload")
    schema, payload = value["schema"], value["payload"]
    env_base = base_name(schema, ".Envelope", "value")
    env = fields(schema, "envelope")
    for name in ("op", "source", "before", "after"):
        check(name in env, f"envelope schema has no {name!r} field")
    check(env["op"].get("type") == "string", "envelope field 'op' is not a string")
    for name in ("before", "after"):
        row = env[name]
        check(row.get("type") == "struct" and row.get("optional") is True, f"{name!r} is not an optional struct")
        check(base_name(row, ".Value", name) == env_base, f"{name!r} schema name does not match the envelope's")
    check(key_base is None or key_base == env_base, "key schema name does not match the envelope's")
    source = fields(env["source"], "source")
    check_struct(payload, schema, "envelope")
    check(isinstance(payload["source"], dict), "source: payload is not an object")
    for name in SOURCE_REQUIRED:
        check(name in source, f"source schema has no {name!r} field")
        check(name in payload["source"], f"source payload has no {name!r} field")
        check(name == "table" or payload["source"][name] is not None, f"source.{name} is null")
    check_struct(payload["source"], env["source"], "source")
    op = payload["op"]
    check(op in OPS, f"unknown op {op!r}")
    if op in ("c", "r", "u"):
        check(payload["after"] is not None, f"op {op!r} without 'after'")
    if op == "d":
        check(payload["before"] is not None, "op 'd' without 'before'")
    for name in ("before", "after"):
        if payload[name] is not None:
            check_struct(payload[name], env[name], name)
    if op != "t":
        check(key is not None, f"op {op!r} without a key: a table without a primary key cannot be materialized")
    return op


def field_ref(spec):
    """Debezium's FieldReference: 'op' -> (None, 'op', '__op'), 'source.ts_ms' -> ('source', ...)."""
    path, _, alias = spec.partition(":")
    struct, _, field = path.rpartition(".")
    if not struct:
        struct = (None if field in ENVELOPE_FIELDS else "transaction" if field in TRANSACTION_FIELDS
                  else "source")
        new = field
    else:
        new = f"{struct}_{field}"
    return struct, field, "__" + (alias or new)


def add_fields(refs, envelope, schema, row):
    """Appends the requested envelope fields (optional copies of their schemas), as add.fields does."""
    env_schema, env = envelope["schema"], envelope["payload"]
    schema, row = dict(schema, fields=list(schema["fields"])), dict(row)
    for struct, field, new in refs:
        parent = fields(env_schema, "envelope")
        if struct is not None:
            check(struct in parent, f"add.fields: envelope has no {struct!r} struct")
            parent = fields(parent[struct], struct)
        if field not in parent:
            continue  # Debezium skips fields its schema does not have
        schema["fields"].append(dict(parent[field], field=new, optional=True))
        holder = env if struct is None else env[struct]
        row[new] = None if holder is None else holder[field]
    return schema, row


def deleted_flag(schema, row, flag):
    """InsertField's static '__deleted' field: an optional string."""
    schema = dict(schema, fields=list(schema["fields"]) + [{"type": "string", "optional": True, "field": "__deleted"}])
    return schema, dict(row, __deleted=flag)


def unwrap(rec, op, opts):
    """ExtractNewRecordState: the transformed record as {topic, key, value} or None when dropped."""
    topic, key, value = rec["topic"], rec["key"], rec["value"]
    if op == "tombstone":
        return None if opts.drop_tombstones else rec
    if op == "t":
        return rec if opts.truncate_handling == "clear" else None
    env, schema = value["payload"], fields(value["schema"], "envelope")
    if op == "d":
        if opts.delete_handling_mode == "drop":
            return None
        if opts.delete_handling_mode == "none":  # ExtractField('after'): a null value, keeping the key
            return {"topic": topic, "key": key, "value": None}
        s, row = add_fields(opts.refs, value, schema["before"], env["before"])
        s, row = deleted_flag(s, row, "true")
    else:
        s, row = add_fields(opts.refs, value, schema["after"], env["after"])
        if opts.delete_handling_mode == "rewrite":
            s, row = deleted_flag(s, row, "false")
    s.pop("field", None)
    return {"topic": topic, "key": key, "value": {"schema": s, "payload": row}}


def run(lines, opts):
    """Validates, unwraps and materializes; returns ({table: [row]}, {op: count})."""
    tables, topics, counts = {}, {}, {}
    extra = {new for _, _, new in opts.refs}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise Malformed(f"line {n}: not JSON: {e}") from None
        try:
            op = validate(rec)
            out = unwrap(rec, op, opts)
        except Malformed as e:
            raise Malformed(f"line {n}: {e}") from None
        counts[op] = counts.get(op, 0) + 1
        table = rec["topic"].rsplit(".", 1)[-1]
        if topics.setdefault(table, rec["topic"]) != rec["topic"]:
            raise Malformed(f"line {n}: topics {topics[table]!r} and {rec['topic']!r} share table name {table!r}")
        rows = tables.setdefault(table, {})
        if out is None:
            counts["dropped"] = counts.get("dropped", 0) + 1
            continue
        value = out["value"]
        if value is not None and value["payload"].get("op") == "t" and value["schema"]["name"].endswith(".Envelope"):
            rows.clear()
            continue
        k = json.dumps(out["key"]["payload"], sort_keys=True, separators=(",", ":"))
        if value is None or value["payload"].get("__deleted") == "true":
            rows.pop(k, None)
        else:
            rows[k] = {c: v for c, v in value["payload"].items() if c != "__deleted" and c not in extra}
    return {t: [rows[k] for k in sorted(rows)] for t, rows in sorted(tables.items())}, counts


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--delete-handling-mode", choices=["drop", "rewrite", "none"], default="rewrite")
    p.add_argument("--drop-tombstones", choices=["true", "false"], default="true")
    p.add_argument("--add-fields", default="", help="comma list, e.g. op,table,source.ts_ms")
    p.add_argument("--truncate-handling", choices=["clear", "drop"], default="clear")
    p.add_argument("--self-test", action="store_true")
    opts = p.parse_args(argv)
    opts.drop_tombstones = opts.drop_tombstones == "true"
    opts.refs = [field_ref(s.strip()) for s in opts.add_fields.split(",") if s.strip()]
    return opts


# Self-test, on Debezium's documented MySQL example (mysql-server-1.inventory.customers).
def _sch(t, field, optional=False, **kw):
    return dict({"type": t, "optional": optional, "field": field}, **kw)


TOPIC = "mysql-server-1.inventory.customers"
COLS = [_sch("int32", "id"), _sch("string", "first_name"), _sch("string", "last_name"), _sch("string", "email")]
SOURCE = [_sch("string", "version"), _sch("string", "connector"), _sch("string", "name"), _sch("int64", "ts_ms"),
          _sch("string", "snapshot", True, name="io.debezium.data.Enum", version=1,
               parameters={"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,"
                                      "incremental"}, default="false"),
          _sch("string", "db"), _sch("string", "sequence", True), _sch("int64", "ts_us", True),
          _sch("int64", "ts_ns", True), _sch("string", "table", True), _sch("int64", "server_id"),
          _sch("string", "gtid", True), _sch("string", "file"), _sch("int64", "pos"), _sch("int32", "row"),
          _sch("int64", "thread", True), _sch("string", "query", True)]
TX = [_sch("string", "id"), _sch("int64", "total_order"), _sch("int64", "data_collection_order")]


def _event(op, before=None, after=None):
    row = {"type": "struct", "fields": COLS, "optional": True, "name": TOPIC + ".Value"}
    schema = {"type": "struct", "optional": False, "name": TOPIC + ".Envelope", "version": 2, "fields": [
        dict(row, field="before"), dict(row, field="after"),
        {"type": "struct", "fields": SOURCE, "optional": False, "name": "io.debezium.connector.mysql.Source",
         "field": "source"},
        {"type": "struct", "fields": TX, "optional": True, "name": "event.block", "version": 1, "field": "transaction"},
        _sch("string", "op"), _sch("int64", "ts_ms", True), _sch("int64", "ts_us", True), _sch("int64", "ts_ns", True)]}
    source = {"version": "2.7.0.Final", "connector": "mysql", "name": "mysql-server-1", "ts_ms": 1465581029100,
              "snapshot": "true" if op == "r" else "false", "db": "inventory", "sequence": None,
              "ts_us": 1465581029100000, "ts_ns": 1465581029100000000, "table": "customers", "server_id": 223344,
              "gtid": None, "file": "mysql-bin.000003", "pos": 484, "row": 0, "thread": 7, "query": None}
    payload = {"before": before, "after": after, "source": source, "transaction": None, "op": op,
               "ts_ms": 1465581029523, "ts_us": 1465581029523758, "ts_ns": 1465581029523758914}
    key_schema = {"type": "struct", "optional": False, "name": TOPIC + ".Key", "fields": [_sch("int32", "id")]}
    key = None if op == "t" else {"schema": key_schema, "payload": {"id": (after or before)["id"]}}
    return {"topic": TOPIC, "key": key, "value": {"schema": schema, "payload": payload}}


def self_test():
    anne = {"id": 1004, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org"}
    sally = {"id": 1001, "first_name": "Sally", "last_name": "Thomas", "email": "sally.thomas@acme.com"}
    anne2 = dict(anne, first_name="Anne Marie")
    dele = _event("d", before=anne2)
    tomb = dict(dele, value=None)
    stream = [_event("r", after=sally), _event("c", after=anne), _event("u", before=anne, after=anne2)]
    lines = lambda recs: [json.dumps(r) for r in recs]  # noqa: E731
    opts = lambda *a: parse_args(list(a))  # noqa: E731

    out, counts = run(lines(stream), opts())
    assert out == {"customers": [sally, anne2]}, out
    assert counts == {"r": 1, "c": 1, "u": 1}, counts
    for mode in ("rewrite", "none"):
        out, counts = run(lines(stream + [dele, tomb]), opts("--delete-handling-mode", mode))
        assert out == {"customers": [sally]}, (mode, out)
    assert counts == {"r": 1, "c": 1, "u": 1, "d": 1, "tombstone": 1, "dropped": 1}, counts
    out, _ = run(lines(stream + [dele]), opts("--delete-handling-mode", "drop"))
    assert out == {"customers": [sally, anne2]}, out  # the delete is dropped, as the SMT does
    out, counts = run(lines(stream + [dele, tomb]),
                      opts("--delete-handling-mode", "drop", "--drop-tombstones", "false"))
    assert out == {"customers": [sally]} and counts["dropped"] == 1, out
    out, _ = run(lines(stream + [_event("t"), _event("c", after=anne), _event("c", after=sally)]), opts())
    assert out == {"customers": [sally, anne]}, out  # truncate clears; rows sorted by key
    out, _ = run(lines(stream + [_event("t")]), opts("--truncate-handling", "drop"))
    assert out == {"customers": [sally, anne2]}, out

    # The unwrapped records themselves, field for field.
    o = opts("--add-fields", "op,table,source.ts_ms,ts_ms:event_ts")
    rec = unwrap(stream[1], validate(stream[1]), o)
    assert rec["value"]["payload"] == dict(anne, __op="c", __table="customers", __source_ts_ms=1465581029100,
                                           __event_ts=1465581029523, __deleted="false"), rec
    s = rec["value"]["schema"]
    assert s["name"] == TOPIC + ".Value" and "field" not in s, s
    assert s["fields"][4:] == [_sch("string", "__op", True), _sch("string", "__table", True),
                               _sch("int64", "__source_ts_ms", True), _sch("int64", "__event_ts", True),
                               _sch("string", "__deleted", True)], s["fields"]
    rec = unwrap(dele, "d", o)
    assert rec["value"]["payload"]["__deleted"] == "true" and rec["value"]["payload"]["__op"] == "d", rec
    assert unwrap(dele, "d", opts("--delete-handling-mode", "none"))["value"] is None

    # Malformed input is rejected, each for the expected reason.
    v = lambda r: r["value"]  # noqa: E731
    env_field = lambda r, name: next(f for f in v(r)["schema"]["fields"] if f["field"] == name)  # noqa: E731
    cases = {
        "value lacks schema/payload": lambda r: r.update(value=v(r)["payload"]),
        "does not end with '.Envelope'": lambda r: v(r)["schema"].update(name=TOPIC),
        "no 'op' field": lambda r: v(r)["schema"]["fields"].remove(env_field(r, "op")),
        "no 'source' field": lambda r: v(r)["schema"]["fields"].remove(env_field(r, "source")),
        "no 'before' field": lambda r: v(r)["schema"]["fields"].remove(env_field(r, "before")),
        "'after' is not an optional struct": lambda r: env_field(r, "after").update(optional=False),
        "does not end with '.Value'": lambda r: env_field(r, "after").update(name=TOPIC + ".Row"),
        "unknown op 'x'": lambda r: v(r)["payload"].update(op="x"),
        "op 'c' without 'after'": lambda r: v(r)["payload"].update(after=None),
        "op 'd' without 'before'": lambda r: v(r)["payload"].update(op="d"),
        "op 'u' without 'after'": lambda r: v(r)["payload"].update(op="u", after=None, before=anne),
        "source payload has no 'pos'": lambda r: v(r)["payload"]["source"].pop("pos"),
        "source schema has no 'db'": lambda r: env_field(r, "source")["fields"].remove(_sch("string", "db")),
        "does not end with '.Key'": lambda r: r["key"]["schema"].update(name=TOPIC + ".Id"),
        "without a key": lambda r: r.update(key=None),
        "after: payload fields": lambda r: v(r)["payload"]["after"].pop("email"),
        "not JSON": None,
    }
    for expected, edit in cases.items():
        rec = json.loads(json.dumps(_event("c", after=anne)))
        edit and edit(rec)
        try:
            run(["{not json" if edit is None else json.dumps(rec)], opts())
            raise AssertionError(f"accepted a malformed record ({expected})")
        except Malformed as e:
            assert str(e).startswith("line 1: ") and expected in str(e), (expected, str(e))
    print(f"self-test passed ({len(cases)} malformed cases rejected)", file=sys.stderr)


def main(argv):
    opts = parse_args(argv)
    if opts.self_test:
        self_test()
        return 0
    try:
        tables, counts = run(sys.stdin, opts)
    except Malformed as e:
        print(f"debezium_unwrap: malformed Debezium record: {e}", file=sys.stderr)
        return 2
    json.dump(tables, sys.stdout)
    sys.stdout.write("\n")
    summary = " ".join(f"{k}={counts.get(k, 0)}" for k in ("r", "c", "u", "d", "t", "tombstone", "dropped"))
    rows = sum(len(r) for r in tables.values())
    print(f"debezium_unwrap: {summary} tables={len(tables)} rows={rows}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
