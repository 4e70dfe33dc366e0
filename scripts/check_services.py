#!/usr/bin/env python3
"""Smoke-check the services started by scripts/services.sh with independent clients.

Run with the venv's Python after `scripts/services.sh start`:
    . "$(scripts/services.sh env)" && "$SLUICE_PYTHON" scripts/check_services.py [NAMES...]
Reads the env file (or the environment) and checks every service it lists (or NAMES):
kafka, mariadb, redis, s3, opensearch, elasticsearch. Exits 1 if any check fails.
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def load_env():
    env = dict(os.environ)
    path = subprocess.run(["bash", os.path.join(HERE, "services.sh"), "env"],
                          capture_output=True, text=True, check=True).stdout.strip()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    env.setdefault(k, v)
    return env


def check_kafka(env):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    bs = env["KAFKA_BOOTSTRAP"]
    topic = "smoke-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": bs, "enable.idempotence": True})
    p.produce(topic, key=b"k", value=b"hello sluice")
    assert p.flush(10) == 0, "produce not delivered"
    c = Consumer({"bootstrap.servers": bs, "group.id": "smoke-" + topic, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000})
    c.subscribe([topic])
    deadline = time.time() + 30
    try:
        while time.time() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            assert m.error() is None, m.error()
            assert (m.key(), m.value()) == (b"k", b"hello sluice"), (m.key(), m.value())
            return f"topic {topic}: produced+consumed 1 message at offset {m.offset()}"
    finally:
        c.close()
    raise AssertionError("no message consumed within 30 s")


def check_mariadb(env):
    cmd = ["mariadb", "--no-defaults", "-h", env["MYSQL_HOST"], "-P", env["MYSQL_PORT"], "-u", env["MYSQL_USER"],
           "-N", "-e", "SHOW MASTER STATUS; SHOW VARIABLES LIKE 'binlog_format'; "
                       "SHOW VARIABLES LIKE 'binlog_row_image'; SELECT @@server_id, VERSION()"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "MYSQL_PWD": env["MYSQL_PASSWORD"]}).stdout
    assert "ROW" in out and "FULL" in out, out
    return " | ".join(l.strip() for l in out.strip().splitlines())


def check_redis(env):
    import redis
    r = redis.Redis.from_url(env["REDIS_URL"])
    assert r.ping()
    r.set("smoke", "ok")
    assert r.get("smoke") == b"ok"
    return f"PING ok, SET/GET ok, version {r.info()['redis_version']}"


def check_s3(env):
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], aws_access_key_id=env["S3_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"], region_name=env["S3_REGION"],
                      config=Config(s3={"addressing_style": "path"}))
    bucket = "smoke-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello s3")
    body = s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read()
    assert body == b"hello s3", body
    bad = boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], aws_access_key_id="testing",
                       aws_secret_access_key="wrong", region_name=env["S3_REGION"])
    try:
        bad.list_objects_v2(Bucket=bucket)
        raise AssertionError("wrong secret accepted")
    except bad.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
    return f"bucket {bucket}: put/get ok; wrong secret rejected ({code})"


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def check_search(url):
    idx = "smoke-" + uuid.uuid4().hex[:8]
    s, _ = http("PUT", f"{url}/{idx}", {"mappings": {"properties": {"msg": {"type": "keyword"}}}})
    assert s == 200, ("create index", s)
    s, _ = http("PUT", f"{url}/{idx}/_doc/1?refresh=true", {"msg": "hello"})
    assert s in (200, 201), ("put doc", s)
    s, doc = http("GET", f"{url}/{idx}/_doc/1")
    assert s == 200 and doc.get("_source") == {"msg": "hello"}, (s, doc)
    _, root = http("GET", url + "/")
    return f"index {idx}: create/put/get ok ({root['version'].get('distribution', 'elasticsearch')} {root['version']['number']})"


CHECKS = {
    "kafka": ("KAFKA_BOOTSTRAP", check_kafka),
    "mariadb": ("MYSQL_PORT", check_mariadb),
    "redis": ("REDIS_URL", check_redis),
    "s3": ("S3_ENDPOINT", check_s3),
    "opensearch": ("OPENSEARCH_URL", lambda e: check_search(e["OPENSEARCH_URL"])),
    "elasticsearch": ("ELASTICSEARCH_URL", lambda e: check_search(e["ELASTICSEARCH_URL"])),
}


def main(names):
    env = load_env()
    failed = 0
    for name in names or list(CHECKS):
        key, fn = CHECKS[name]
        if key not in env:
            print(f"{name:14s} SKIP (not running: {key} unset)")
            continue
        try:
            print(f"{name:14s} OK   {fn(env)}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"{name:14s} FAIL {type(e).__name__}: {e}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
