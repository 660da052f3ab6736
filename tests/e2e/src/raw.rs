//! Raw Kafka wire access for tests that send hand-built (often malformed) frames.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Request, StrBytes, encode_request_header_into_buffer};

/// How long a raw connection waits for a response or for the broker to close it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Encodes `header + body` for `R` at `version` (the frame body, without the length prefix).
pub fn encode_request<R: Request>(version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-e2e-raw")));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).expect("encode request header");
    body.encode(&mut buf, version).expect("encode request body");
    buf.to_vec()
}

/// A classic (v1, non-flexible) request header for any api key, including unknown ones.
pub fn header_v1(api_key: i16, api_version: i16, correlation_id: i32, client_id: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_i16(api_key);
    b.put_i16(api_version);
    b.put_i32(correlation_id);
    b.put_i16(i16::try_from(client_id.len()).expect("short client id"));
    b.put_slice(client_id.as_bytes());
    b
}

/// `body` with its i32 length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.put_i32(i32::try_from(body.len()).expect("frame fits i32"));
    b.put_slice(body);
    b
}

/// A plain TCP connection to the broker.
pub struct RawConn {
    pub stream: TcpStream,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to broker");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConn { stream }
    }

    /// A connection to a SASL_PLAINTEXT listener at `addr`, logged in as `user` with
    /// PLAIN (SaslHandshake v1, SaslAuthenticate v2, correlation ids 1 and 2).
    pub fn plain_login(addr: SocketAddr, user: &str, password: &str) -> RawConn {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        let mut conn = RawConn::connect(addr);
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        let r = conn.roundtrip(1, 1, &handshake);
        assert_eq!(r.error_code, 0, "PLAIN handshake for {user}");
        let token = format!("\0{user}\0{password}").into_bytes();
        let r = conn.roundtrip(
            2,
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(token.into()),
        );
        assert_eq!(r.error_code, 0, "{user} logs in: {:?}", r.error_message);
        conn
    }

    /// Writes raw bytes; errors are returned (the broker may already have closed).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Closes our sending side (the broker sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Sends a well-formed request and returns its correlation id.
    pub fn send_request<R: Request>(&mut self, version: i16, correlation_id: i32, body: &R) {
        let b = frame(&encode_request(version, correlation_id, body));
        self.send(&b).expect("send request");
    }

    /// Reads one response frame. `Ok(None)` when the broker closed the connection.
    pub fn read_frame(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        if !read_exact_or_closed(&mut self.stream, &mut len)? {
            return Ok(None);
        }
        let len = i32::from_be_bytes(len);
        assert!(
            (0..=64 << 20).contains(&len),
            "response frame length {len} out of range"
        );
        let mut body = vec![0u8; usize::try_from(len).expect("non-negative")];
        assert!(
            read_exact_or_closed(&mut self.stream, &mut body)?,
            "broker closed the connection in the middle of a response"
        );
        Ok(Some(body))
    }

    /// Reads and decodes the response to a request of type `R` sent at `version`.
    pub fn read_response<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let body = self
            .read_frame()
            .expect("read response")
            .expect("broker closed the connection instead of answering");
        let mut buf = Bytes::from(body);
        let api_key = ApiKey::try_from(R::KEY).expect("known api key");
        let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
            .expect("decode response header");
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        let resp = R::Response::decode(&mut buf, version).expect("decode response body");
        assert_eq!(buf.remaining(), 0, "trailing bytes after response body");
        resp
    }

    /// Sends a request and decodes its response.
    pub fn roundtrip<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) -> R::Response {
        self.send_request(version, correlation_id, body);
        self.read_response::<R>(version, correlation_id)
    }

    /// Asserts that the broker closes this connection (EOF or reset) without sending
    /// anything, within [`READ_TIMEOUT`].
    pub fn expect_closed(&mut self, what: &str) {
        let mut buf = [0u8; 256];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "{what}: expected the broker to close the connection, got {n} bytes: {:02x?}",
                &buf[..n]
            ),
            Err(e) if is_closed(&e) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => panic!(
                "{what}: the broker neither answered nor closed the connection within {READ_TIMEOUT:?}"
            ),
            Err(e) => panic!("{what}: unexpected read error {e}"),
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
}

/// Fills `buf`; `Ok(false)` when the peer closed before the first byte.
fn read_exact_or_closed(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        match s.read(&mut buf[done..]) {
            Ok(0) if done == 0 => return Ok(false),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if done == 0 && is_closed(&e) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Record batches (magic 2)
// ---------------------------------------------------------------------------------------------

fn put_varint(b: &mut Vec<u8>, v: i64) {
    // zig-zag, then unsigned LEB128
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        b.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
    b.push(u as u8);
}

fn put_bytes_varint(b: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varint(b, -1),
        Some(v) => {
            put_varint(b, i64::try_from(v.len()).expect("len"));
            b.extend_from_slice(v);
        }
    }
}

/// One record of a hand-built batch.
#[derive(Debug, Clone, Default)]
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_delta: i64,
}

/// Builder for an uncompressed magic-2 record batch, with knobs to break it.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    pub base_timestamp: i64,
    pub records: Vec<RawRecord>,
    /// Replace the records count field (default: the number of records).
    pub count_override: Option<i32>,
    /// Replace the last offset delta field (default: records - 1).
    pub last_offset_delta_override: Option<i32>,
    /// XOR the correct CRC with this (non-zero breaks it).
    pub crc_xor: u32,
}

impl BatchBuilder {
    pub fn new(base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            base_timestamp,
            records: vec![],
            count_override: None,
            last_offset_delta_override: None,
            crc_xor: 0,
        }
    }

    pub fn record(mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> BatchBuilder {
        let delta = i64::try_from(self.records.len()).expect("len");
        self.records.push(RawRecord {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: vec![],
            timestamp_delta: delta,
        });
        self
    }

    /// The encoded batch.
    pub fn build(&self) -> Bytes {
        let mut recs = Vec::new();
        let mut max_delta = 0;
        for (i, r) in self.records.iter().enumerate() {
            let mut body = Vec::new();
            body.push(0u8); // attributes
            put_varint(&mut body, r.timestamp_delta);
            put_varint(&mut body, i64::try_from(i).expect("index"));
            put_bytes_varint(&mut body, r.key.as_deref());
            put_bytes_varint(&mut body, r.value.as_deref());
            put_varint(&mut body, i64::try_from(r.headers.len()).expect("len"));
            for (k, v) in &r.headers {
                put_bytes_varint(&mut body, Some(k.as_bytes()));
                put_bytes_varint(&mut body, v.as_deref());
            }
            put_varint(&mut recs, i64::try_from(body.len()).expect("len"));
            recs.extend_from_slice(&body);
            max_delta = max_delta.max(r.timestamp_delta);
        }
        let n = i32::try_from(self.records.len()).expect("count");
        // Everything covered by the CRC: attributes .. records.
        let mut tail = Vec::new();
        tail.put_i16(0); // attributes: no compression, CreateTime
        tail.put_i32(self.last_offset_delta_override.unwrap_or(n - 1));
        tail.put_i64(self.base_timestamp);
        tail.put_i64(self.base_timestamp + max_delta);
        tail.put_i64(-1); // producer id
        tail.put_i16(-1); // producer epoch
        tail.put_i32(-1); // base sequence
        tail.put_i32(self.count_override.unwrap_or(n));
        tail.extend_from_slice(&recs);
        let crc = crc32c::crc32c(&tail) ^ self.crc_xor;

        let mut b = Vec::new();
        b.put_i64(0); // base offset
        // batch length counts from partition leader epoch to the end
        b.put_i32(i32::try_from(4 + 1 + 4 + tail.len()).expect("batch length"));
        b.put_i32(-1); // partition leader epoch
        b.put_i8(2); // magic
        b.put_u32(crc);
        b.extend_from_slice(&tail);
        Bytes::from(b)
    }
}

/// The header of one stored record batch as returned by Fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub magic: i8,
    pub attributes: i16,
    pub records: i32,
    /// The CRC-32C in the header matches the batch content.
    pub crc_ok: bool,
}

impl BatchHeader {
    /// Compression codec bits: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn codec(&self) -> i16 {
        self.attributes & 0x7
    }
}

/// Splits a records blob into batch headers (a trailing partial batch is ignored).
pub fn parse_batches(mut b: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    while b.len() >= 61 {
        let base_offset = (&b[0..8]).get_i64();
        let len = (&b[8..12]).get_i32();
        let total = 12 + usize::try_from(len).expect("batch length >= 0");
        if b.len() < total {
            break;
        }
        let magic = b[16] as i8;
        let crc = (&b[17..21]).get_u32();
        out.push(BatchHeader {
            base_offset,
            last_offset_delta: (&b[23..27]).get_i32(),
            magic,
            attributes: (&b[21..23]).get_i16(),
            records: (&b[57..61]).get_i32(),
            crc_ok: crc32c::crc32c(&b[21..total]) == crc,
        });
        b = &b[total..];
    }
    out
}

/// One Fetch (v11, max wait 0) of one partition; returns that partition's data.
pub fn fetch(
    conn: &mut RawConn,
    correlation_id: i32,
    topic: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    use kafka_protocol::messages::FetchRequest;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(64 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(kafka_protocol::messages::TopicName(StrBytes::from_string(
                    topic.to_string(),
                )))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(partition_max_bytes),
                ]),
        ]);
    let mut resp = conn.roundtrip(11, correlation_id, &req);
    assert_eq!(resp.error_code, 0, "fetch error");
    assert_eq!(resp.responses.len(), 1, "one topic in the fetch response");
    let mut t = resp.responses.remove(0);
    assert_eq!(t.topic.0.as_str(), topic);
    assert_eq!(t.partitions.len(), 1, "one partition in the fetch response");
    let p = t.partitions.remove(0);
    assert_eq!(p.partition_index, partition);
    p
}

/// Fetches partition `partition` of `topic` from offset 0 up to its high watermark and
/// returns the header of every batch.
pub fn fetch_batch_headers(addr: SocketAddr, topic: &str, partition: i32) -> Vec<BatchHeader> {
    let mut conn = RawConn::connect(addr);
    let mut out: Vec<BatchHeader> = Vec::new();
    let mut offset = 0i64;
    for corr in 0.. {
        let p = fetch(&mut conn, corr, topic, partition, offset, 8 << 20);
        assert_eq!(p.error_code, 0, "fetch partition error");
        if offset >= p.high_watermark {
            return out;
        }
        let records = p.records.as_ref().expect("records are never null");
        let batches = parse_batches(records);
        assert!(
            !batches.is_empty(),
            "fetch at {offset} below the high watermark returned no batch"
        );
        for h in batches {
            let end = h.base_offset + i64::from(h.last_offset_delta) + 1;
            if end > offset {
                offset = end;
                out.push(h);
            }
        }
    }
    out
}

/// A Produce request of `batch` to one partition with `acks` (timeout 10 s), for any version.
pub fn produce_request(
    topic: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                    topic.to_string(),
                )))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ])
}

/// One Produce (v9) of `batch` to one partition with `acks`; returns that partition's answer.
pub fn produce(
    conn: &mut RawConn,
    correlation_id: i32,
    topic: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    let req = produce_request(topic, partition, acks, batch);
    let mut resp = conn.roundtrip(9, correlation_id, &req);
    assert_eq!(resp.responses.len(), 1, "one topic in the produce response");
    let mut t = resp.responses.remove(0);
    assert_eq!(
        t.partition_responses.len(),
        1,
        "one partition in the produce response"
    );
    t.partition_responses.remove(0)
}
