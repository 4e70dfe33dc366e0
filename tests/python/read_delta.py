"""Reads a Delta table written by sluice with delta-rs' Python binding (`deltalake`), as an
independent reader, and prints JSON.

  read_delta.py <table uri> <column> <app id>... [--s3 <endpoint> <key> <secret>]

Prints the table version, its partition columns, the Arrow type of every column, the values of
<column> (in no particular order), the distinct partition values, the number of data files, the
`txn` version of every given app id and the last operations. With <column> `-`, only the
version. Prints {"exists": false} when there is no table yet.
"""
import json
import sys

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError


def main():
    args = sys.argv[1:]
    opts = {}
    if "--s3" in args:
        i = args.index("--s3")
        endpoint, key, secret = args[i + 1:i + 4]
        args = args[:i]
        opts = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        }
    uri, column, app_ids = args[0], args[1], args[2:]
    try:
        dt = DeltaTable(uri, storage_options=opts)
    except TableNotFoundError:
        print(json.dumps({"exists": False}))
        return
    if column == "-":
        print(json.dumps({"exists": True, "version": dt.version()}))
        return
    table = dt.to_pyarrow_table()
    parts = dt.metadata().partition_columns
    distinct = sorted({tuple(str(v) for v in row.values()) for row in table.select(parts).to_pylist()}) if parts else []
    print(json.dumps({
        "exists": True,
        "version": dt.version(),
        "partition_columns": parts,
        "types": {f.name: str(f.type) for f in table.schema},
        "rows": table.num_rows,
        "values": table.column(column).to_pylist() if column in table.schema.names else None,
        "partitions": distinct,
        "files": len(dt.file_uris()),
        "txn": {a: dt.transaction_version(a) for a in app_ids},
        "history": [h.get("operation") for h in dt.history(5)],
    }))


if __name__ == "__main__":
    main()
