//! The HTTP client against a real ClickHouse (Debian's 18.16, two shards on loopback):
//! https with the cluster's own CA, a user with a password, gzip both ways, the
//! server's version, and what a user is told when one of them is wrong.

#[path = "support/cluster.rs"]
mod cluster;

use cluster::Cluster;
use upshot_clickhouse::http::{ClientOptions, Compression};
use upshot_clickhouse::{insert_events, read_shard_events, schema, ClickHouseError, Node};

const PASSWORD: &str = "upshot-test-password";

fn https_url(node: &Node) -> String {
    format!("https://{}:{}", node.host, node.port + 3)
}

#[test]
fn the_client_speaks_tls_with_a_custom_ca_credentials_and_gzip() {
    let cluster = Cluster::start(18700);
    let ca_pem = std::fs::read(cluster.dir.path().join("tls/ca.crt")).expect("the script made a CA");
    let options = ClientOptions {
        user: Some("upshot_tls".into()),
        password: Some(PASSWORD.into()),
        ca_pem: Some(ca_pem.clone()),
        compression: Compression::Gzip,
        ..ClientOptions::default()
    };
    let nodes: Vec<Node> =
        cluster.nodes.iter().map(|node| Node::parse_with(&https_url(node), &options).expect("an https node")).collect();
    let version = nodes[0].server_version().expect("version() over https");
    assert_eq!(version.major, 18, "Debian's ClickHouse: {version:?}");
    assert_eq!(upshot_clickhouse::figures::Dialect::of(version), upshot_clickhouse::figures::Dialect::Legacy);
    schema::init(&nodes, "upshot_test").expect("init over https");

    // Rows go gzip-compressed, answers come back gzip-compressed, and read the same.
    let events = upshot_gen::generate_events(upshot_gen::GenOptions {
        seed: 3,
        visitors: 40,
        days: 3,
        start_ms: 1_714_521_600_000,
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: false,
        end_ms: None,
    });
    insert_events(&nodes[0], "shop", &events).expect("an insert over https with gzip");
    let stored: usize = nodes.iter().map(|node| read_shard_events(node, "shop").expect("read back").len()).sum();
    assert_eq!(stored, events.len());

    // The same user's password in the URL works too; a wrong one is refused with
    // ClickHouse's reason, and the password shows in no message.
    let in_url = format!("https://upshot_tls:{PASSWORD}@{}:{}", nodes[0].host, nodes[0].port);
    let in_url_options = ClientOptions { ca_pem: Some(ca_pem.clone()), ..ClientOptions::default() };
    Node::parse_with(&in_url, &in_url_options)
        .expect("a node")
        .execute("SELECT 1", b"")
        .expect("credentials in the URL");
    let wrong = ClientOptions { password: Some("not-the-password".into()), ..options.clone() };
    let error = Node::parse_with(&https_url(&cluster.nodes[0]), &wrong)
        .expect("a node")
        .execute("SELECT 1", b"")
        .expect_err("a wrong password is refused");
    assert!(matches!(error, ClickHouseError::Query { .. }), "{error}");
    assert!(error.to_string().contains("password"), "{error}");
    assert!(!error.to_string().contains("not-the-password"), "{error}");

    // Without the CA, the server's certificate is not trusted.
    let untrusted = ClientOptions { ca_pem: None, ..options.clone() };
    let error = Node::parse_with(&https_url(&cluster.nodes[0]), &untrusted)
        .expect("a node")
        .execute("SELECT 1", b"")
        .expect_err("an unknown issuer is refused");
    assert!(matches!(error, ClickHouseError::Unreachable { .. }), "{error}");
    assert!(error.to_string().to_lowercase().contains("certificate"), "{error}");
}

#[test]
fn a_node_that_is_not_listening_is_retried_then_named() {
    // A port nothing listens on (bound then let go).
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port();
    let options = ClientOptions { retries: 2, ..ClientOptions::default() };
    let node = Node::parse_with(&format!("http://127.0.0.1:{port}"), &options).expect("a node");
    let error = node.execute("SELECT 1", b"").expect_err("nothing listens");
    assert!(matches!(error, ClickHouseError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("after 3 attempts"), "{error}");
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")), "{error}");
}
