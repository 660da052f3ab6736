//! The console's routes against a real broker over real sockets: every page, the
//! security headers, the Host allowlist, CSRF, read-only mode, the XSS corpus, and each
//! page's actions with their effect on the broker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use support::{Running, encode, read_write, start};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The headers every console response carries.
fn assert_security_headers(reply: &support::Reply, what: &str) {
    assert_eq!(reply.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        reply.header("cross-origin-opener-policy"),
        Some("same-origin"),
        "{what}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
    assert!(
        reply.header("access-control-allow-origin").is_none(),
        "{what}: no CORS"
    );
}

async fn create_topic(broker: &Running, name: &str, partitions: &str) {
    let reply = broker
        .post(
            "/ui/topics",
            &[
                ("name", name),
                ("partitions", partitions),
                ("replication_factor", "1"),
                ("configs", ""),
            ],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_with_its_status_and_the_security_headers() {
    let broker = start(read_write()).await;
    create_topic(&broker, "orders", "2").await;
    broker
        .produce("orders", 0, 1_000, Some(b"k"), Some(b"v"), &[])
        .await;
    let mut client = broker.client().await;
    client
        .commit_offsets("billing", "orders", &[(0, 0)])
        .await
        .unwrap();

    let pages: [(&str, u16, &str); 13] = [
        ("/ui/", 200, "<h1>Overview</h1>"),
        ("/ui/topics", 200, "<h1>Topics</h1>"),
        ("/ui/topics?q=ord&sort=size&dir=desc&page=1", 200, "orders"),
        ("/ui/topics/orders", 200, "<h1>Topic orders</h1>"),
        (
            "/ui/topics/orders/messages",
            200,
            "<h1>Messages of orders</h1>",
        ),
        (
            "/ui/topics/orders/messages/record?partition=0&offset=0",
            200,
            "orders partition 0 offset 0",
        ),
        ("/ui/groups", 200, "<h1>Consumer groups</h1>"),
        ("/ui/groups/billing", 200, "<h1>Group billing</h1>"),
        ("/ui/brokers", 200, "<h1>Brokers</h1>"),
        (
            "/ui/transactions",
            200,
            "No transactional producer has registered with this node",
        ),
        ("/ui/topics/nope", 404, "There is no topic named"),
        ("/ui/groups/nope", 404, "There is no group"),
        ("/ui/nothing/here", 404, "There is no page here."),
    ];
    for (path, status, text) in pages {
        let reply = broker.get(path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(
            reply.body.contains(text),
            "{path}: no {text:?} in {}",
            reply.body
        );
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert_security_headers(&reply, path);
    }

    let root = broker.get("/ui").await;
    assert_eq!((root.status, root.header("location")), (303, Some("/ui/")));

    // Static files: at their hashed URLs, cacheable forever, gzipped on request.
    let overview = broker.get("/ui/").await.body;
    for name in [
        "console.css",
        "console.js",
        "htmx.min.js",
        "uPlot.iife.min.js",
    ] {
        let start = overview
            .find(&format!("/{name}\""))
            .and_then(|end| overview[..end].rfind("\"/ui/static/").map(|s| (s + 1, end)))
            .unwrap_or_else(|| panic!("{name} is linked"));
        let url = format!("{}/{name}", &overview[start.0..start.1]);
        let plain = broker.get(&url).await;
        assert_eq!(plain.status, 200, "{url}");
        assert_eq!(
            plain.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        assert_security_headers(&plain, &url);
        let gz = broker
            .request(
                "GET",
                &url,
                &broker.host(),
                &[("Accept-Encoding", "gzip")],
                "",
            )
            .await;
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{url}");
        let wrong = broker.get(&url.replace("/static/", "/static/0")).await;
        assert_eq!(wrong.status, 404, "{url} with another hash");
    }

    // Pages are gzipped for clients that take it.
    let gz = broker
        .request(
            "GET",
            "/ui/topics",
            &broker.host(),
            &[("Accept-Encoding", "gzip, br")],
            "",
        )
        .await;
    assert_eq!(
        (gz.status, gz.header("content-encoding"), gz.header("vary")),
        (200, Some("gzip"), Some("Accept-Encoding"))
    );
    assert!(gz.body.starts_with("\u{1f}\u{fffd}\u{8}"), "gzip magic");

    // Methods a route does not have.
    let put = broker
        .request("PUT", "/ui/topics", &broker.host(), &[], "")
        .await;
    assert_eq!(put.status, 405);
    // Metrics still answer beside the console.
    assert_eq!(broker.get("/metrics").await.status, 200);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_naming_another_host_get_421() {
    let broker = start(support::read_write()).await;
    for host in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1.evil.example",
        "10.0.0.1",
    ] {
        let reply = broker.request("GET", "/ui/", host, &[], "").await;
        assert_eq!(reply.status, 421, "{host}");
        assert!(
            reply.body.starts_with("this console answers to localhost"),
            "{host}"
        );
        assert_security_headers(&reply, host);
    }
    for host in [
        "localhost",
        &format!("localhost:{}", broker.http.port()),
        "[::1]:1",
    ] {
        let reply = broker.request("GET", "/ui/", host, &[], "").await;
        assert_eq!(reply.status, 200, "{host}");
    }
    // The operator endpoints are not the console's and keep answering any host.
    let metrics = broker
        .request("GET", "/health", "evil.example", &[], "")
        .await;
    assert_eq!(metrics.status, 200);
    broker.stop().await;

    let mut config = support::read_write();
    config.extra_hosts = vec!["console.internal".into()];
    let broker = start(config).await;
    let reply = broker
        .request("GET", "/ui/", "console.internal:9644", &[], "")
        .await;
    assert_eq!(reply.status, 200);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_and_posts_without_the_token_change_nothing() {
    let broker = start(read_write()).await;
    let token = broker.token().await;
    let host = broker.host();
    let form = |name: &str, token: &str| {
        format!("_csrf={token}&name={name}&partitions=1&replication_factor=1&configs=")
    };
    let origin_ok = format!("http://{host}");
    /// What is tried, its headers, its form, and the refusal expected.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String, &'a str);
    let cases: [Case; 6] = [
        (
            "cross-site fetch metadata",
            vec![("Sec-Fetch-Site", "cross-site")],
            form("t1", &token),
            "cross-site request refused (Sec-Fetch-Site)\n",
        ),
        (
            "same-site is another origin",
            vec![("Sec-Fetch-Site", "same-site")],
            form("t2", &token),
            "cross-site request refused (Sec-Fetch-Site)\n",
        ),
        (
            "another port is another origin",
            vec![("Origin", "http://127.0.0.1:1")],
            form("t3", &token),
            "cross-origin request refused (Origin)\n",
        ),
        (
            "an opaque origin",
            vec![("Origin", "null")],
            form("t4", &token),
            "cross-origin request refused (Origin)\n",
        ),
        (
            "no token",
            vec![("Sec-Fetch-Site", "same-origin")],
            "name=t5&partitions=1&replication_factor=1".to_string(),
            "the form's token is missing or stale; reload the page and try again\n",
        ),
        (
            "a wrong token",
            vec![("Origin", origin_ok.as_str())],
            form("t6", &"0".repeat(64)),
            "the form's token is missing or stale; reload the page and try again\n",
        ),
    ];
    for (what, headers, body, message) in cases {
        let reply = broker
            .request("POST", "/ui/topics", &host, &headers, &body)
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (403, message),
            "{what}"
        );
        assert_security_headers(&reply, what);
    }
    let topics = broker.get("/ui/topics").await.body;
    for name in ["t1", "t2", "t3", "t4", "t5", "t6"] {
        assert!(
            !topics.contains(&format!(">{name}</a>")),
            "{name} was created"
        );
    }
    // The same form from this origin (by Origin or by fetch metadata) goes through.
    let reply = broker
        .request(
            "POST",
            "/ui/topics",
            &host,
            &[("Origin", origin_ok.as_str())],
            &form("made", &token),
        )
        .await;
    assert_eq!(
        (reply.status, reply.header("location")),
        (303, Some("/ui/topics/made?notice=created"))
    );
    assert!(broker.get("/ui/topics").await.body.contains(">made</a>"));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_refuses_every_change_and_renders_no_form_to_make_one() {
    let writable = start(read_write()).await;
    let token = writable.token().await;
    writable.stop().await;

    let mut config = read_write();
    config.read_only = true;
    let broker = start(config).await;
    let mut client = broker.client().await;
    client
        .create_topic(&sluice_client::NewTopic {
            name: "seeded".into(),
            partitions: Some(1),
            replication_factor: Some(1),
            configs: Vec::new(),
        })
        .await
        .unwrap();
    broker
        .produce("seeded", 0, 1_000, Some(b"k"), Some(b"v"), &[])
        .await;
    client
        .commit_offsets("g", "seeded", &[(0, 0)])
        .await
        .unwrap();
    for path in [
        "/ui/",
        "/ui/topics",
        "/ui/topics/seeded",
        "/ui/topics/seeded/messages",
        "/ui/groups",
        "/ui/groups/g",
        "/ui/transactions",
        "/ui/brokers",
    ] {
        let reply = broker.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(!reply.body.contains("method=\"post\""), "{path} has a form");
        assert!(!reply.body.contains("_csrf"), "{path} has a form token");
        assert!(reply.body.contains(">read-only</span>"), "{path}");
    }
    let posts: [(&str, &str); 5] = [
        ("/ui/topics", "name=x&partitions=1&replication_factor=1"),
        ("/ui/topics/seeded", "action=delete&confirm=seeded"),
        ("/ui/topics/seeded", "action=purge&confirm=yes"),
        ("/ui/topics/seeded/messages", "value=x"),
        ("/ui/groups/g", "action=delete"),
    ];
    for (path, fields) in posts {
        let reply = broker
            .request(
                "POST",
                path,
                &broker.host(),
                &[("Sec-Fetch-Site", "same-origin")],
                &format!("_csrf={token}&{fields}"),
            )
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (403, "the console is read-only (console = read-only)\n"),
            "{path} {fields}"
        );
    }
    // Nothing changed: the topic, its record and the group are all there.
    let messages = broker.get("/ui/topics/seeded/messages?start=oldest").await;
    assert!(messages.body.contains("<p class=\"count\">1 records</p>"));
    assert_eq!(broker.get("/ui/groups/g").await.status, 200);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_supplied_string_is_escaped() {
    let broker = start(read_write()).await;
    create_topic(&broker, "xss", "1").await;
    let script = b"</script><script>alert(1)</script>";
    let img = "<img src=x onerror=alert(1)>";
    broker
        .produce(
            "xss",
            0,
            1_000,
            Some(script),
            Some(img.as_bytes()),
            &[
                ("\"'><svg onload=alert(1)>", Some(b"</script>")),
                ("bin", Some(&[0xff, 0xfe, 0x3c, 0x00])),
            ],
        )
        .await;
    broker
        .produce(
            "xss",
            0,
            2_000,
            Some(&[0xc3, 0x28]),
            Some(&[0x80, 0x3c, 0x62, 0x3e]),
            &[],
        )
        .await;
    let mut client = broker.client().await;
    client.commit_offsets(img, "xss", &[(0, 1)]).await.unwrap();

    let pages = [
        "/ui/topics/xss/messages?start=oldest".to_string(),
        "/ui/topics/xss/messages/record?partition=0&offset=0".to_string(),
        "/ui/topics/xss/messages/record?partition=0&offset=1".to_string(),
        "/ui/topics/xss".to_string(),
        "/ui/groups".to_string(),
        format!("/ui/groups/{}", encode(img)),
        format!(
            "/ui/topics/xss/messages?start=oldest&q={}",
            encode("<script>")
        ),
    ];
    for path in &pages {
        let reply = broker.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        for raw in [
            "<script>alert",
            "<img src=x",
            "<svg onload",
            "</script><script>alert",
        ] {
            assert!(!reply.body.contains(raw), "{path} contains {raw:?}");
        }
    }
    let list = broker
        .get("/ui/topics/xss/messages?start=oldest")
        .await
        .body;
    assert!(list.contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(list.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(list.contains("&quot;'&gt;&lt;svg onload=alert(1)&gt;="));
    // Bytes that are not UTF-8 are shown as hex, never as text.
    assert!(list.contains("0xfffe3c00"), "{list}");
    assert!(list.contains("0xc328"), "{list}");
    assert!(list.contains("0x803c623e"), "{list}");
    let record = broker
        .get("/ui/topics/xss/messages/record?partition=0&offset=1")
        .await
        .body;
    assert!(record.contains("00000000  80 3c 62 3e"), "{record}");
    assert!(
        record.contains("                                      .&lt;b&gt;"),
        "{record}"
    );
    let groups = broker.get("/ui/groups").await.body;
    assert!(groups.contains(&format!(
        "href=\"/ui/groups/{}\">&lt;img src=x onerror=alert(1)&gt;</a>",
        encode(img)
    )));
    // The live tail sends the same escaped rows.
    let (_, events) = broker
        .sse_until(
            "/ui/topics/xss/messages/tail?partition=0&from=0:0",
            "event: rows",
            Duration::from_secs(10),
            async {},
        )
        .await;
    assert!(events.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!events.contains(img));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_listed_searched_sorted_paged_and_managed() {
    let broker = start(read_write()).await;
    for i in 0..105 {
        broker
            .post(
                "/ui/topics",
                &[
                    ("name", &format!("t{i:03}")),
                    ("partitions", "1"),
                    ("replication_factor", "1"),
                ],
            )
            .await;
    }
    let page1 = broker.get("/ui/topics").await.body;
    assert!(page1.contains("<p class=\"count\">105 topics</p>"));
    assert!(page1.contains(">t000</a>") && page1.contains(">t099</a>"));
    assert!(!page1.contains(">t100</a>"));
    assert!(page1.contains("Page 1 of 2"));
    let page2 = broker.get("/ui/topics?page=2").await.body;
    assert!(page2.contains(">t104</a>") && !page2.contains(">t099</a>"));
    let desc = broker.get("/ui/topics?sort=name&dir=desc").await.body;
    assert!(desc.find(">t104</a>").unwrap() < desc.find(">t103</a>").unwrap());
    let search = broker.get("/ui/topics?q=T10").await.body;
    assert!(
        search.contains("<p class=\"count\">5 topics</p>"),
        "{search}"
    );
    // Internal topics only when asked for.
    let mut client = broker.client().await;
    client.commit_offsets("g", "t000", &[(0, 0)]).await.unwrap();
    assert!(
        !broker
            .get("/ui/topics")
            .await
            .body
            .contains(">__consumer_offsets</a>")
    );
    assert!(
        broker
            .get("/ui/topics?internal=1")
            .await
            .body
            .contains(">__consumer_offsets</a>")
    );

    // Create with configs; a bad create says why and keeps what was typed.
    let created = broker
        .post(
            "/ui/topics",
            &[
                ("name", "managed"),
                ("partitions", "2"),
                ("replication_factor", "1"),
                ("configs", "retention.ms=3600000\nsegment.ms=600000"),
            ],
        )
        .await;
    assert_eq!(
        created.header("location"),
        Some("/ui/topics/managed?notice=created")
    );
    let again = broker
        .post(
            "/ui/topics",
            &[
                ("name", "managed"),
                ("partitions", "2"),
                ("replication_factor", "1"),
            ],
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(
        again.body.contains("<p class=\"error\" role=\"alert\">TopicAlreadyExists: Topic 'managed' already exists.</p>"),
        "{}",
        again.body
    );
    let bad = broker
        .post(
            "/ui/topics",
            &[
                ("name", "bad name"),
                ("partitions", "1"),
                ("replication_factor", "1"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("InvalidTopicException"), "{}", bad.body);
    assert!(bad.body.contains("value=\"bad name\""));
    let bad_config = broker
        .post(
            "/ui/topics",
            &[
                ("name", "x"),
                ("partitions", "1"),
                ("replication_factor", "1"),
                ("configs", "retention.ms"),
            ],
        )
        .await;
    assert_eq!(bad_config.status, 400);
    assert!(
        bad_config
            .body
            .contains("<p class=\"error\" role=\"alert\">'retention.ms' is not name=value</p>")
    );

    let detail = broker.get("/ui/topics/managed?notice=created").await.body;
    assert!(detail.contains("Topic created."));
    assert!(detail.contains("<tr class=\"override\"><th scope=\"row\"><code>retention.ms</code></th><td><code>3600000</code></td><td>topic</td>"), "{detail}");

    // Configs: set, then back to the default.
    let set = broker
        .post(
            "/ui/topics/managed",
            &[
                ("action", "set-config"),
                ("name", "retention.ms"),
                ("value", "1000"),
            ],
        )
        .await;
    assert_eq!(
        set.header("location"),
        Some("/ui/topics/managed?notice=config")
    );
    assert!(
        broker
            .get("/ui/topics/managed")
            .await
            .body
            .contains("<code>retention.ms</code></th><td><code>1000</code>")
    );
    let invalid = broker
        .post(
            "/ui/topics/managed",
            &[
                ("action", "set-config"),
                ("name", "retention.ms"),
                ("value", "soon"),
            ],
        )
        .await;
    assert_eq!(invalid.status, 400);
    assert!(invalid.body.contains("InvalidConfig"), "{}", invalid.body);
    broker
        .post(
            "/ui/topics/managed",
            &[("action", "delete-config"), ("name", "retention.ms")],
        )
        .await;
    assert!(
        broker.get("/ui/topics/managed").await.body.contains(
            "<code>retention.ms</code></th><td><code>604800000</code></td><td>default</td>"
        )
    );

    // Partitions grow, never shrink.
    let grown = broker
        .post(
            "/ui/topics/managed",
            &[("action", "add-partitions"), ("count", "4")],
        )
        .await;
    assert_eq!(
        grown.header("location"),
        Some("/ui/topics/managed?notice=partitions")
    );
    let shrink = broker
        .post(
            "/ui/topics/managed",
            &[("action", "add-partitions"), ("count", "2")],
        )
        .await;
    assert_eq!(shrink.status, 400);
    assert!(shrink.body.contains("InvalidPartitions"));
    assert!(
        broker
            .get("/ui/topics/managed")
            .await
            .body
            .contains("<dt>Partitions</dt><dd>4</dd>")
    );

    // Purge empties every partition up to its high watermark.
    for p in 0..4 {
        broker
            .produce("managed", p, 1_000, None, Some(b"x"), &[])
            .await;
    }
    let unconfirmed = broker
        .post("/ui/topics/managed", &[("action", "purge")])
        .await;
    assert_eq!(unconfirmed.status, 400);
    let purged = broker
        .post(
            "/ui/topics/managed",
            &[("action", "purge"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(
        purged.header("location"),
        Some("/ui/topics/managed?notice=purged")
    );
    let messages = broker
        .get("/ui/topics/managed/messages?start=oldest")
        .await
        .body;
    assert!(
        messages.contains("<p class=\"count\">0 records</p>"),
        "{messages}"
    );

    // Delete needs the name typed.
    let wrong = broker
        .post(
            "/ui/topics/managed",
            &[("action", "delete"), ("confirm", "managed2")],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong
            .body
            .contains("The name typed does not match the topic's: nothing was deleted.")
    );
    assert_eq!(broker.get("/ui/topics/managed").await.status, 200);
    let deleted = broker
        .post(
            "/ui/topics/managed",
            &[("action", "delete"), ("confirm", "managed")],
        )
        .await;
    assert_eq!(
        deleted.header("location"),
        Some("/ui/topics?notice=deleted")
    );
    assert_eq!(broker.get("/ui/topics/managed").await.status, 404);
    let internal = broker
        .post(
            "/ui/topics/__consumer_offsets",
            &[("action", "delete"), ("confirm", "__consumer_offsets")],
        )
        .await;
    assert_eq!(internal.status, 400);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_start_where_asked_filter_export_produce_and_tail() {
    let broker = start(read_write()).await;
    create_topic(&broker, "m", "2").await;
    for i in 0..10i64 {
        let value = format!("{{\"n\":{i},\"user\":{{\"id\":{}}}}}", i % 3);
        broker
            .produce(
                "m",
                i32::try_from(i % 2).unwrap(),
                1_000_000 + i * 1000,
                Some(format!("k{i}").as_bytes()),
                Some(value.as_bytes()),
                &[("h", Some(format!("v{i}").as_bytes()))],
            )
            .await;
    }
    let offsets_of = |body: &str| -> Vec<String> {
        body.match_indices("<tr class=\"")
            .map(|(at, _)| &body[at..])
            .filter_map(|row| {
                let cells = &row[row.find('>').unwrap() + 1..];
                cells.strip_prefix("<td class=\"num\">")
            })
            .map(|rest| {
                let partition = &rest[..rest.find('<').unwrap()];
                let rest = &rest[rest.find("<td class=\"num\">").unwrap() + 16..];
                format!("{partition}:{}", &rest[..rest.find('<').unwrap()])
            })
            .collect()
    };
    let newest = broker.get("/ui/topics/m/messages?n=3").await.body;
    assert_eq!(offsets_of(&newest), ["1:4", "0:4", "1:3"]);
    let oldest = broker
        .get("/ui/topics/m/messages?start=oldest&n=3")
        .await
        .body;
    assert_eq!(offsets_of(&oldest), ["0:0", "1:0", "0:1"]);
    let at_offset = broker
        .get("/ui/topics/m/messages?partition=1&start=offset&offset=3&n=5")
        .await
        .body;
    assert_eq!(offsets_of(&at_offset), ["1:3", "1:4"]);
    let at_time = broker
        .get("/ui/topics/m/messages?start=timestamp&ts=1970-01-01T00:16:47Z&n=2")
        .await
        .body;
    assert_eq!(offsets_of(&at_time), ["1:3", "0:4"]);
    let bad = broker.get("/ui/topics/m/messages?partition=7").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("'7' is not a partition of this topic (0 to 1)")
    );

    // Filters: key, value, header, JSON field.
    let cases = [
        ("field=key&op=eq&q=k7", vec!["1:3"]),
        ("field=value&op=contains&q=%22n%22%3A5", vec!["1:2"]),
        ("field=header&name=h&op=eq&q=v2", vec!["0:1"]),
        (
            "field=json&name=%2Fuser%2Fid&op=eq&q=1",
            vec!["1:0", "0:2", "1:3"],
        ),
        ("field=json&name=%2Fn&op=gt&q=7", vec!["1:4", "0:4"]),
    ];
    for (filter, expected) in cases {
        let body = broker
            .get(&format!("/ui/topics/m/messages?start=oldest&{filter}"))
            .await
            .body;
        let mut found = offsets_of(&body);
        found.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(found, want, "{filter}");
        assert!(
            body.contains(&format!("{} matches in 10 records", want.len())),
            "{filter}: {body}"
        );
    }
    // The search stream reports progress and its end.
    let (reply, events) = broker
        .sse_until(
            "/ui/topics/m/messages/search?start=oldest&field=key&op=eq&q=k7",
            "event: done",
            Duration::from_secs(10),
            async {},
        )
        .await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert!(events.contains("event: rows"));
    assert!(events.contains("\"matches\":1"), "{events}");
    assert!(events.contains("\"records\":10"), "{events}");

    // Export: NDJSON and CSV of what the query selects.
    let ndjson = broker
        .get("/ui/topics/m/messages/export?partition=0&start=oldest&format=ndjson")
        .await;
    assert_eq!(ndjson.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        ndjson.header("content-disposition"),
        Some("attachment; filename=\"m.ndjson\"")
    );
    assert_eq!(ndjson.body.lines().count(), 5);
    assert!(ndjson.body.starts_with("{\"headers\":[{\"name\":\"h\",\"value\":\"v0\"}],\"key\":\"k0\",\"offset\":0,\"partition\":0,\"timestamp\":1000000,"));
    let csv = broker
        .get("/ui/topics/m/messages/export?start=oldest&format=csv&field=key&op=eq&q=k3")
        .await;
    assert_eq!(
        csv.body,
        "partition,offset,timestamp,key,value,headers\n1,1,1970-01-01T00:16:43.000Z,\"k3\",\"{\"\"n\"\":3,\"\"user\"\":{\"\"id\"\":0}}\",\"{\"\"h\"\":\"\"v3\"\"}\"\n"
    );

    // Produce: lands where the form says (or where the key hashes), and shows there.
    let produced = broker
        .post(
            "/ui/topics/m/messages",
            &[
                ("partition", "1"),
                ("key", "pk"),
                ("value", "hello"),
                ("headers", "a: 1\nb: two"),
            ],
        )
        .await;
    assert_eq!(
        produced.header("location"),
        Some("/ui/topics/m/messages?partition=1&start=offset&offset=5&notice=produced")
    );
    let shown = broker
        .get("/ui/topics/m/messages?partition=1&start=offset&offset=5&notice=produced")
        .await
        .body;
    assert!(shown.contains("Record produced."));
    assert!(
        shown.contains("<tr class=\"highlight\"><td class=\"num\">1</td><td class=\"num\">5</td>"),
        "{shown}"
    );
    assert!(shown.contains("<span class=\"header\">a=<span class=\"text\">1</span></span>"));
    let keyed = broker
        .post(
            "/ui/topics/m/messages",
            &[("partition", ""), ("key", "pk"), ("value", "again")],
        )
        .await;
    let expected_partition = sluice_client::partitioner::partition_for_key(b"pk", 2);
    assert!(
        keyed
            .header("location")
            .unwrap()
            .contains(&format!("partition={expected_partition}&"))
    );
    let refused = broker
        .post(
            "/ui/topics/m/messages",
            &[("partition", "9"), ("value", "x")],
        )
        .await;
    assert_eq!(refused.status, 400);

    // The tail: a record produced after it opened arrives as a row.
    let (_, events) = broker
        .sse_until(
            "/ui/topics/m/messages/tail?partition=all",
            "tail-me",
            Duration::from_secs(10),
            broker.produce("m", 0, 5_000_000, None, Some(b"tail-me"), &[]),
        )
        .await;
    assert!(
        events.contains(
            "event: rows\ndata: <tr class=\"\"><td class=\"num\">0</td><td class=\"num\">"
        ),
        "{events}"
    );
    assert!(events.contains("id: 0:"), "{events}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_show_lag_and_reset_after_a_preview_and_are_deleted() {
    let broker = start(read_write()).await;
    create_topic(&broker, "g", "2").await;
    for i in 0..6i64 {
        broker
            .produce(
                "g",
                i32::try_from(i % 2).unwrap(),
                1_000 * (i + 1),
                None,
                Some(b"x"),
                &[],
            )
            .await;
    }
    let mut client = broker.client().await;
    client
        .commit_offsets("app", "g", &[(0, 1), (1, 3)])
        .await
        .unwrap();
    let list = broker.get("/ui/groups").await.body;
    assert!(list.contains("<a href=\"/ui/groups/app\">app</a></th><td>Empty</td><td>offsets only</td><td class=\"num\">0</td><td>g</td><td class=\"num\">2</td>"), "{list}");
    let topics = broker.get("/ui/topics").await.body;
    assert!(
        topics.contains("<td class=\"num\">1</td><td class=\"num\">2</td></tr>"),
        "groups and max lag in the topic list: {topics}"
    );
    let detail = broker.get("/ui/groups/app").await.body;
    assert!(detail.contains("<a href=\"/ui/topics/g\">g</a></th><td class=\"num\">0</td><td class=\"num\">1</td><td class=\"num\">3</td><td class=\"num\">2</td>"), "{detail}");
    assert!(detail.contains("hx-trigger=\"every 5s\""));
    let fragment = broker
        .request(
            "GET",
            "/ui/groups/app?fragment=partitions",
            &broker.host(),
            &[("HX-Request", "true")],
            "",
        )
        .await
        .body;
    assert!(
        fragment.starts_with("<div id=\"group-partitions\""),
        "{fragment}"
    );

    // A preview changes nothing.
    let preview = broker
        .post(
            "/ui/groups/app",
            &[
                ("action", "preview"),
                ("topic", "g"),
                ("target", "earliest"),
                ("value", ""),
            ],
        )
        .await;
    assert_eq!(preview.status, 200);
    assert!(preview.body.contains("Preview: nothing is changed yet"));
    assert!(preview.body.contains("<th scope=\"row\">g</th><td class=\"num\">1</td><td class=\"num\">3</td><td class=\"num\">0</td>"), "{}", preview.body);
    let committed = client.committed_offsets("app", None).await.unwrap();
    assert_eq!(
        committed.iter().map(|c| c.offset).collect::<Vec<_>>(),
        [1, 3]
    );

    // Applied: to a time, then shifted, then to the latest.
    let cases: [(&str, &str, [i64; 2]); 4] = [
        ("timestamp", "1970-01-01T00:00:03Z", [1, 1]),
        ("shift", "1", [2, 2]),
        ("offset", "0", [0, 0]),
        ("latest", "", [3, 3]),
    ];
    for (target, value, expected) in cases {
        let applied = broker
            .post(
                "/ui/groups/app",
                &[
                    ("action", "reset"),
                    ("topic", ""),
                    ("target", target),
                    ("value", value),
                ],
            )
            .await;
        assert_eq!(
            applied.header("location"),
            Some("/ui/groups/app?notice=reset"),
            "{target}: {}",
            applied.body
        );
        let committed = client.committed_offsets("app", None).await.unwrap();
        assert_eq!(
            committed.iter().map(|c| c.offset).collect::<Vec<_>>(),
            expected,
            "{target}"
        );
    }
    let nonsense = broker
        .post(
            "/ui/groups/app",
            &[
                ("action", "reset"),
                ("target", "timestamp"),
                ("value", "soon"),
            ],
        )
        .await;
    assert_eq!(nonsense.status, 400);

    // Offsets of a topic, then the group.
    let offsets = broker
        .post(
            "/ui/groups/app",
            &[("action", "delete-offsets"), ("topic", "g")],
        )
        .await;
    assert_eq!(
        offsets.header("location"),
        Some("/ui/groups/app?notice=offsets-deleted")
    );
    client.commit_offsets("app", "g", &[(0, 1)]).await.unwrap();
    let deleted = broker.post("/ui/groups/app", &[("action", "delete")]).await;
    assert_eq!(deleted.header("location"), Some("/ui/groups"));
    assert_eq!(broker.get("/ui/groups/app").await.status, 404);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_get_429_and_charts_start_with_the_hour() {
    let mut config = read_write();
    config.limits.streams = 1;
    let broker = start(config).await;
    create_topic(&broker, "s", "1").await;
    let open = stream_status(&broker, "/ui/series").await;
    assert_eq!(&open.0, b"HTTP/1.1 200");
    let second = broker.get("/ui/topics/s/messages/tail").await;
    assert_eq!(
        (second.status, second.body.as_str()),
        (
            429,
            "too many live streams are open; close another tab and try again\n"
        )
    );
    drop(open);
    // Once the server notices the first stream is gone (its next write fails), its
    // permit is free again. The stream that gets it is the one read: a probe closed
    // before the next request would hold the permit until the server notices that too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        let (status, stream) = stream_status(&broker, "/ui/series").await;
        if &status == b"HTTP/1.1 200" {
            break stream;
        }
        drop(stream);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the permit was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let events = read_until(&mut stream, "data: {\"t\":[", deadline).await;
    assert!(events.contains("event: init"), "{events}");
    broker.stop().await;
}

/// Reads `stream` until its text holds `needle`; panics at `deadline`.
async fn read_until(
    stream: &mut tokio::net::TcpStream,
    needle: &str,
    deadline: tokio::time::Instant,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if text.contains(needle) {
            return text;
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no '{needle}' in the stream: {text}"))
            .unwrap();
        assert!(n > 0, "stream closed before '{needle}': {text}");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Opens a stream and reads its status line's start; the connection stays open while
/// the returned stream lives.
async fn stream_status(broker: &Running, path: &str) -> ([u8; 12], tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(broker.http).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", broker.host());
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).await.unwrap();
    (status, stream)
}
