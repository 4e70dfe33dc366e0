"""Drives a sluice worker with a third-party Kafka Connect REST client from PyPI
(`kafka-connect-py`, written against Confluent's Kafka Connect), unchanged.

Usage: kafka_connect_client.py <base-url> <input-file> <topic>
Prints one line per step; exits non-zero (with the reason) on the first surprise.
"""

import sys
import time

from kafka_connect import KafkaConnect
from requests.exceptions import HTTPError


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def wait(what, fn, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if fn():
                print(f"ok: {what}")
                return
        except HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"FAILED: timed out waiting for {what}")


def main():
    url, input_file, topic = sys.argv[1:4]
    kc = KafkaConnect(url=url)

    info = kc.get_cluster_info()
    check("version" in info and "commit" in info, f"cluster info {info}")

    plugins = kc.list_connector_plugins()
    classes = [p["class"] for p in plugins]
    check("org.apache.kafka.connect.file.FileStreamSourceConnector" in classes, "plugins list the file source")

    config = {"connector.class": "FileStreamSource", "name": "client-src", "file": input_file, "topic": topic, "tasks.max": "1"}
    validated = kc.validate_connector_config("FileStreamSource", config)
    check(validated["error_count"] == 0, f"validate: {validated['error_count']} errors")
    bad = kc.validate_connector_config("FileStreamSource", {"connector.class": "FileStreamSource", "batch.size": "0"})
    check(bad["error_count"] >= 1, "validate reports a bad config")

    created = kc.create_connector({"name": "client-src", "config": config})
    check(created["name"] == "client-src" and created["type"] == "source", f"create {created}")
    try:
        kc.create_connector({"name": "client-src", "config": config})
        raise SystemExit("FAILED: a second create must be refused")
    except HTTPError as e:
        check(e.response.status_code == 409, "a second create is 409")

    check(kc.list_connectors() == ["client-src"], "list")
    expanded = kc.list_connectors(expand="status")
    check(expanded["client-src"]["status"]["connector"]["state"] in ("RUNNING", "UNASSIGNED"), "list expand=status")
    wait("the task RUNNING", lambda: kc.get_connector_status("client-src")["tasks"][0]["state"] == "RUNNING")
    check(kc.get_connector("client-src")["config"]["topic"] == topic, "get connector")
    check(kc.get_connector_config("client-src")["file"] == input_file, "get config")
    tasks = kc.list_connector_tasks("client-src")
    check(tasks[0]["id"] == {"connector": "client-src", "task": 0}, f"tasks {tasks}")
    check(kc.get_connector_task_status("client-src", 0)["state"] == "RUNNING", "task status")
    wait("the topic tracked", lambda: kc.list_connector_topics("client-src")["client-src"]["topics"] == [topic])

    updated = kc.update_connector("client-src", dict(config, **{"batch.size": "7"}))
    check(updated["config"]["batch.size"] == "7", "update config")

    kc.pause_connector("client-src")
    wait("PAUSED", lambda: kc.get_connector_status("client-src")["connector"]["state"] == "PAUSED")
    kc.resume_connector("client-src")
    wait("RUNNING again", lambda: kc.get_connector_status("client-src")["connector"]["state"] == "RUNNING")
    kc.restart_connector("client-src")
    body = kc.restart_connector("client-src", include_tasks=True, only_failed=False)
    check(body is not None and body["name"] == "client-src", f"restart with includeTasks answers the status: {body}")
    kc.restart_connector_task("client-src", 0)
    wait("RUNNING after the restarts", lambda: kc.get_connector_status("client-src")["tasks"][0]["state"] == "RUNNING")
    kc.reset_connector_topics("client-src")
    print("ok: topics reset")

    kc.stop_connector("client-src")
    wait("STOPPED", lambda: kc.get_connector_status("client-src")["connector"]["state"] == "STOPPED")
    kc.delete_connector("client-src")
    check(kc.list_connectors() == [], "delete")
    try:
        kc.get_connector("client-src")
        raise SystemExit("FAILED: a deleted connector must be 404")
    except HTTPError as e:
        check(e.response.status_code == 404, "a deleted connector is 404")
    print("ALL OK")


if __name__ == "__main__":
    main()
