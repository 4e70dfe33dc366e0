"""Reads a Parquet lake written by sluice with pyarrow, as an independent reader, and prints JSON.

  read_lake.py mkbucket <endpoint> <key> <secret> <bucket>
  read_lake.py ls <endpoint> <key> <secret> <bucket/prefix>
  read_lake.py read local <dir> <column>
  read_lake.py read s3 <endpoint> <key> <secret> <bucket/prefix> <column>

`read` prints one object per file: path (relative), rows, row groups, column types, the
kafka.* footer metadata, the Hive partition values pyarrow sees, and the values of <column>.
"""
import json
import sys

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def s3fs(endpoint, key, secret):
    scheme, host = endpoint.split("://", 1)
    return pafs.S3FileSystem(endpoint_override=host, scheme=scheme, access_key=key, secret_key=secret,
                             region="us-east-1", allow_bucket_creation=True)


def main():
    cmd = sys.argv[1]
    if cmd == "mkbucket":
        endpoint, key, secret, bucket = sys.argv[2:6]
        fs = s3fs(endpoint, key, secret)
        try:
            fs.create_dir(bucket)
        except OSError:
            if fs.get_file_info(bucket).type != pafs.FileType.Directory:
                raise
        return
    if cmd == "ls":
        endpoint, key, secret, base = sys.argv[2:6]
        try:
            infos = s3fs(endpoint, key, secret).get_file_info(pafs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            infos = []
        print(json.dumps([i.path for i in infos if i.type == pafs.FileType.File]))
        return
    kind = sys.argv[2]
    if kind == "local":
        fs, base, column = pafs.LocalFileSystem(), sys.argv[3], sys.argv[4]
    else:
        endpoint, key, secret, base, column = sys.argv[3:8]
        fs = s3fs(endpoint, key, secret)
    out = []
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except FileNotFoundError:
        infos = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith(".parquet") or "/+tmp/" in info.path:
            continue
        f = pq.ParquetFile(info.path, filesystem=fs)
        table = f.read()
        meta = {k.decode(): v.decode() for k, v in (f.metadata.metadata or {}).items() if k.startswith(b"kafka.")}
        rel = info.path[len(base):].lstrip("/")
        out.append({
            "path": rel,
            "rows": table.num_rows,
            "row_groups": f.num_row_groups,
            "types": {field.name: str(field.type) for field in table.schema},
            "meta": meta,
            "values": table.column(column).to_pylist() if column in table.schema.names else None,
        })
    # The whole lake as one Hive-partitioned dataset, as Spark or Trino would see it.
    hive = None
    if out:
        dataset = ds.dataset(base, filesystem=fs, format="parquet", partitioning="hive",
                             exclude_invalid_files=True, ignore_prefixes=["+tmp", ".", "_"])
        t = dataset.to_table()
        hive = {"rows": t.num_rows, "columns": t.schema.names}
    print(json.dumps({"files": out, "dataset": hive}))


if __name__ == "__main__":
    main()
