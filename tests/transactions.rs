//! The read_committed view of a topic on the real broker, through sluice's client-side transaction
//! filter: committed transactions and plain records are seen, an aborted transaction and one left
//! open by a producer that a newer one fenced are not (whether or not the broker hides them).

mod common;

use std::time::Duration;

use common::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sluice_runtime::storage::committed::read_committed;

fn transactional(kafka: &str, id: &str) -> BaseProducer {
    let p: BaseProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("transactional.id", id)
        .create()
        .expect("producer");
    p.init_transactions(Duration::from_secs(30)).expect("init_transactions");
    p
}

fn send(p: &BaseProducer, topic: &str, value: &str) {
    p.send(BaseRecord::<str, str>::to(topic).key("k").payload(value)).expect("send");
    p.flush(Duration::from_secs(10)).expect("flush");
}

#[test]
fn only_committed_transactions_are_read() {
    let kafka = Services::load().kafka();
    let topic = unique("txn");
    create_topic(&kafka, &topic);
    let id = unique("txid");
    let p = transactional(&kafka, &id);
    let commit = |p: &BaseProducer, v: &str| {
        p.begin_transaction().expect("begin");
        send(p, &topic, v);
        p.commit_transaction(Duration::from_secs(10)).expect("commit");
    };
    commit(&p, "committed-1");
    p.begin_transaction().expect("begin");
    send(&p, &topic, "aborted");
    p.abort_transaction(Duration::from_secs(10)).expect("abort");
    commit(&p, "committed-2");
    // Left open, then fenced by a new producer with the same transactional.id (a zombie).
    p.begin_transaction().expect("begin");
    send(&p, &topic, "zombie");
    let successor = transactional(&kafka, &id);
    commit(&successor, "committed-3");
    produce(&kafka, &topic, &[("k", Some("plain".to_string()))]);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let records = rt.block_on(read_committed(&kafka, &topic, Duration::from_secs(30))).expect("read");
    let values: Vec<String> =
        records.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()).collect();
    assert_eq!(values, vec!["committed-1", "committed-2", "committed-3", "plain"]);
    drop(p);
}
