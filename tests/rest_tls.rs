//! HTTPS listeners (`listeners=https://…`, Kafka's `ssl.*` keys in PEM) on a real 2-worker
//! distributed cluster: mutual TLS, forwarding from a follower to the leader over TLS, an http
//! and an https listener side by side, and cluster-wide log levels (`scope=cluster`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// One HTTPS request through curl: `Some((status, body))`, `None` when no HTTP answer came (TLS
/// refused). `client_cert`: present the worker certificate.
fn https(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    tls: &(PathBuf, PathBuf),
    client_cert: bool,
) -> Option<(u16, String)> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "60", "-X", method, "-H", "Content-Type: application/json", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(&tls.1);
    if client_cert {
        cmd.arg("--cert").arg(&tls.0);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = cmd.arg(format!("https://127.0.0.1:{port}{path}")).output().expect("run curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_string()))
}

#[test]
fn https_listeners_with_client_certificates_forward_and_share_log_levels() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let tls = tls_certificates(dir.path());
    let group = unique("tls");
    // Each worker: an https listener (advertised, used for forwarding) and an http one.
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let mut workers = Vec::new();
    for (secure, plain) in &ports {
        let props = distributed_properties(dir.path(), &kafka, &group, *plain);
        let text = std::fs::read_to_string(&props).expect("props").replace(
            &format!("listeners=http://127.0.0.1:{plain}"),
            &format!(
                "listeners=http://127.0.0.1:{plain},https://127.0.0.1:{secure}\nrest.advertised.listener=https\n\
                 listeners.https.ssl.keystore.location={}\nssl.truststore.location={}\nssl.client.auth=required",
                tls.0.display(),
                tls.1.display()
            ),
        );
        std::fs::write(&props, text).expect("props");
        workers.push(Sluice::distributed(&props, *plain, &dir.path().join(format!("w{plain}.log"))));
    }

    let plain: Vec<u16> = ports.iter().map(|(_, plain)| *plain).collect();
    let (leader, follower) = leader_and_follower(&plain);
    let cluster: Value =
        serde_json::from_str(&http(ports[follower].1, "GET", "/admin/cluster", None).expect("cluster").1)
            .expect("json");
    assert!(
        cluster.to_string().contains(&format!("https://127.0.0.1:{}", ports[leader].0)),
        "advertised https: {cluster}"
    );

    // The API over TLS, with the client certificate; refused without one, and to plain HTTP.
    let (code, body) = https(ports[follower].0, "GET", "/", None, &tls, true).expect("GET / over TLS");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"version\""), "{body}");
    assert_eq!(https(ports[follower].0, "GET", "/", None, &tls, false), None, "ssl.client.auth=required");
    assert!(http(ports[follower].0, "GET", "/", None).is_none_or(|(code, _)| code != 200), "no plain HTTP on https");

    // A create on the follower's https listener is forwarded to the leader over mutual TLS.
    let topic = format!("{group}-seq");
    let create = format!(
        r#"{{"name":"tls-src","config":{{"connector.class":"VerifiableSource","tasks.max":"1","topic":"{topic}","throughput":"10"}}}}"#
    );
    let (code, body) = https(ports[follower].0, "POST", "/connectors", Some(&create), &tls, true).expect("create");
    assert_eq!(code, 201, "{body}");
    let log = workers[follower].log_text();
    let leader_url = format!("url=https://127.0.0.1:{}/connectors?forward=true", ports[leader].0);
    assert!(
        log.lines().any(|l| l.contains("forwarding a connector change to the leader") && l.contains(&leader_url)),
        "forwarded over https ({leader_url}):\n{log}"
    );
    let (code, _) = https(ports[leader].0, "GET", "/connectors/tls-src", None, &tls, true).expect("get");
    assert_eq!(code, 200);
    let (code, body) =
        https(ports[follower].0, "POST", "/connectors", Some(&create), &tls, true).expect("create again");
    assert_eq!((code, body.contains("already exists")), (409, true), "{body}");

    // scope=cluster: 204, and both workers take the level (through the config topic).
    let (code, body) = https(
        ports[follower].0,
        "PUT",
        "/admin/loggers/sluice_connectors?scope=cluster",
        Some(r#"{"level":"debug"}"#),
        &tls,
        true,
    )
    .expect("cluster level");
    assert_eq!((code, body.as_str()), (204, ""));
    for (_, plain) in &ports {
        wait_until(Duration::from_secs(20), "the cluster-wide level on every worker", || {
            http(*plain, "GET", "/admin/loggers/sluice_connectors", None)
                .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
                .is_some_and(|v| v["level"] == "DEBUG")
        });
    }
    let (code, _) = https(ports[leader].0, "DELETE", "/connectors/tls-src", None, &tls, true).expect("delete");
    assert_eq!(code, 204);
    for w in workers.iter_mut() {
        assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
    }
}

#[test]
fn an_https_listener_without_key_material_is_refused_at_start_naming_the_key() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let text = std::fs::read_to_string(&worker).expect("props").replace("listeners=http://", "listeners=https://");
    for (extra, expected) in [
        ("", "needs ssl.keystore.location"),
        ("ssl.keystore.type=JKS\nssl.keystore.location=/nope.jks", "ssl.keystore.type=JKS is not supported"),
        ("ssl.keystore.location=/no/such/file.pem", "ssl.keystore.location=/no/such/file.pem: cannot read it"),
    ] {
        std::fs::write(&worker, format!("{text}\n{extra}\n")).expect("props");
        let out = Command::new(env!("CARGO_BIN_EXE_sluice")).arg("standalone").arg(&worker).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}
