//! One connection to one broker: framing, correlation ids, ApiVersions negotiation.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, OffsetFetchRequest, ProduceRequest, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request, StrBytes};
use sluice_protocol::frame::{DEFAULT_MAX_FRAME_BYTES, FrameDecoder, frame_size_prefix};
use std::sync::Arc;

use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use rustls_pki_types::ServerName;
use sluice_security::sasl::oauthbearer::OAuthBearerClient;
use sluice_security::sasl::plain::PlainClient;
use sluice_security::sasl::scram::ScramClient;
use sluice_security::sasl::{ClientMechanism, Mechanism};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, KafkaCode, Result};

/// How connections are secured: TLS (with the CA to trust and, for mTLS, a client
/// certificate) and SASL credentials, as Kafka's `security.protocol`.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    /// TLS settings; `None` for PLAINTEXT and SASL_PLAINTEXT.
    pub tls: Option<Arc<sluice_security::rustls::ClientConfig>>,
    /// SASL mechanism and credentials; `None` for PLAINTEXT and SSL.
    pub sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("tls", &self.tls.is_some())
            .field(
                "sasl",
                &self.sasl.as_ref().map(|s| (&s.mechanism, &s.username)),
            )
            .finish()
    }
}

/// SASL credentials.
#[derive(Clone)]
pub struct SaslCredentials {
    /// The mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    pub mechanism: Mechanism,
    /// The user name (for OAUTHBEARER unused).
    pub username: String,
    /// The password (for OAUTHBEARER the token).
    pub password: String,
}

impl SaslCredentials {
    fn client(&self) -> Box<dyn ClientMechanism> {
        match self.mechanism {
            Mechanism::Plain => Box::new(PlainClient::new(&self.username, &self.password)),
            Mechanism::Scram(m) => Box::new(ScramClient::new(m, &self.username, &self.password)),
            Mechanism::OAuthBearer => Box::new(OAuthBearerClient::new(&self.password)),
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent as the request header's client id.
    pub client_id: String,
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long to wait for any one response.
    pub request_timeout: Duration,
    /// Largest response frame accepted.
    pub max_response_bytes: usize,
    /// TLS and SASL.
    pub security: ClientSecurity,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            client_id: "sluice-cli".to_string(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: DEFAULT_MAX_FRAME_BYTES,
            security: ClientSecurity::default(),
        }
    }
}

/// An API the broker advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

/// Highest version of an API this client has code for (requests above it change
/// shape, e.g. topic ids instead of names); below it, kafka-protocol's range.
fn client_max(key: i16, protocol_max: i16) -> i16 {
    let cap = if key == ProduceRequest::KEY || key == FetchRequest::KEY {
        // v13 addresses topics by id only.
        12
    } else if key == OffsetFetchRequest::KEY {
        // v8 batches several groups in a different layout.
        7
    } else {
        protocol_max
    };
    cap.min(protocol_max)
}

/// A connection to one broker with negotiated API versions.
pub struct Connection {
    addr: String,
    stream: Box<dyn Io>,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_correlation_id: i32,
    config: ClientConfig,
    apis: HashMap<i16, ApiRange>,
    features: Vec<(String, i16, i16)>,
    /// True from the moment a request starts being written until its whole response is
    /// read. Still true when the next request starts means the previous one was abandoned
    /// (its future dropped by a `select!` or a timeout, or it failed half-way): the stream
    /// is out of step, and the connection is reopened before it is used again.
    in_flight: bool,
}

impl Connection {
    /// Connects and negotiates versions with ApiVersions.
    pub async fn connect(addr: &str, config: &ClientConfig) -> Result<Connection> {
        let stream = open_stream(addr, config).await?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(config.max_response_bytes),
            next_correlation_id: 1,
            config: config.clone(),
            apis: HashMap::new(),
            features: Vec::new(),
            in_flight: false,
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// Replaces the socket with a fresh one and negotiates again: the response of a request
    /// that was abandoned mid-flight may still be on its way, and nothing can tell how much
    /// of the old stream belongs to it.
    async fn reconnect(&mut self) -> Result<()> {
        self.reopen_stream().await?;
        self.negotiate().await
    }

    /// A new socket with empty buffers, not yet negotiated.
    async fn reopen_stream(&mut self) -> Result<()> {
        self.stream = open_stream(&self.addr, &self.config).await?;
        self.buf.clear();
        self.decoder = FrameDecoder::new(self.config.max_response_bytes);
        self.in_flight = false;
        Ok(())
    }

    /// Reopens the connection when an earlier request was abandoned mid-flight.
    async fn resync(&mut self) -> Result<()> {
        if self.in_flight {
            self.reconnect().await?;
        }
        Ok(())
    }

    async fn negotiate(&mut self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 first; a broker that does not know it answers with a v0 body (KIP-511).
        let timeout = self.config.request_timeout;
        let response = match self.exchange(3, &request, timeout).await {
            Ok(r) if r.error_code == 0 => r,
            Ok(_) | Err(Error::Protocol { .. }) => {
                if self.in_flight {
                    self.reopen_stream().await?;
                }
                self.exchange(0, &ApiVersionsRequest::default(), timeout)
                    .await?
            }
            Err(e) => return Err(e),
        };
        crate::error::check(
            "ApiVersions",
            || self.addr.clone(),
            response.error_code,
            None,
        )?;
        self.record_versions(&response);
        if let Some(sasl) = self.config.security.sasl.clone() {
            self.authenticate(&sasl).await?;
        }
        Ok(())
    }

    /// SaslHandshake v1 and SaslAuthenticate until the mechanism is done.
    async fn authenticate(&mut self, sasl: &SaslCredentials) -> Result<()> {
        let timeout = self.config.request_timeout;
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
        let response = self.exchange(1, &handshake, timeout).await?;
        if response.error_code != 0 {
            let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(self.auth_error(format!(
                "{} is not enabled (the broker offers {}); error {}",
                sasl.mechanism,
                offered.join(", "),
                KafkaCode(response.error_code)
            )));
        }
        let mut client = sasl.client();
        let mut token = client.initial();
        loop {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
            let response = self.exchange(1, &request, timeout).await?;
            if response.error_code != 0 {
                let message = response.error_message.as_deref().unwrap_or("").to_string();
                return Err(
                    self.auth_error(format!("{} ({message})", KafkaCode(response.error_code)))
                );
            }
            match client.step(&response.auth_bytes) {
                Ok(Some(next)) => token = next,
                Ok(None) => return Ok(()),
                Err(reason) => return Err(self.auth_error(reason)),
            }
        }
    }

    fn auth_error(&self, reason: String) -> Error {
        Error::Authentication {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// Keeps the API versions and features ApiVersions reported.
    fn record_versions(&mut self, response: &kafka_protocol::messages::ApiVersionsResponse) {
        self.apis = response
            .api_keys
            .iter()
            .map(|a| {
                (
                    a.api_key,
                    ApiRange {
                        api_key: a.api_key,
                        min_version: a.min_version,
                        max_version: a.max_version,
                    },
                )
            })
            .collect();
        self.features = response
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
            .collect();
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The APIs the broker advertised, by api key.
    pub fn apis(&self) -> Vec<ApiRange> {
        let mut v: Vec<ApiRange> = self.apis.values().copied().collect();
        v.sort_by_key(|a| a.api_key);
        v
    }

    /// Finalized features (name, min level, max level) from ApiVersions v3+.
    pub fn features(&self) -> &[(String, i16, i16)] {
        &self.features
    }

    /// Whether the broker speaks `R` in a version we speak.
    pub fn supports<R: Request>(&self) -> bool {
        self.version::<R>().is_ok()
    }

    /// The highest version of `R` both sides speak.
    pub fn version<R: Request>(&self) -> Result<i16> {
        let unsupported = || Error::Unsupported {
            addr: self.addr.clone(),
            api: ApiKey::try_from(R::KEY)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|()| format!("api key {}", R::KEY)),
        };
        let theirs = self.apis.get(&R::KEY).ok_or_else(unsupported)?;
        let ours = R::VERSIONS;
        let max = client_max(R::KEY, ours.max).min(theirs.max_version);
        let min = ours.min.max(theirs.min_version);
        if max < min {
            return Err(unsupported());
        }
        Ok(max)
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn request<R: Request>(&mut self, request: &R) -> Result<R::Response> {
        let version = self.version::<R>()?;
        self.request_at(version, request).await
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn request_at<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response> {
        let timeout = self.config.request_timeout;
        self.request_within(version, request, timeout).await
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response (for
    /// requests the broker may hold longer than the request timeout, like JoinGroup).
    pub async fn request_within<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.resync().await?;
        self.exchange(version, request, timeout).await
    }

    /// Sends `request` and reads its response on the stream as it is.
    async fn exchange<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let correlation_id = self.send_at(version, request).await?;
        let what = api_name(R::KEY);
        let frame = match tokio::time::timeout(timeout, self.read_frame()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Timeout {
                    addr: self.addr.clone(),
                    what: format!("{what} request"),
                    after: timeout,
                });
            }
        };
        self.in_flight = false;
        let mut frame = frame;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| self.protocol(format!("{what} response header: {e:#}")))?;
        if header.correlation_id != correlation_id {
            // Someone else's response: the stream is out of step.
            self.in_flight = true;
            return Err(self.protocol(format!(
                "{what} response has correlation id {} instead of {correlation_id}",
                header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut frame, version)
            .map_err(|e| self.protocol(format!("{what} v{version} response: {e:#}")))?;
        if frame.has_remaining() && R::KEY != ApiVersionsRequest::KEY {
            return Err(self.protocol(format!(
                "{} bytes after the {what} v{version} response",
                frame.remaining()
            )));
        }
        Ok(response)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_only<R: Request>(&mut self, version: i16, request: &R) -> Result<()> {
        self.resync().await?;
        self.send_at(version, request).await?;
        self.in_flight = false;
        Ok(())
    }

    async fn send_at<R: Request>(&mut self, version: i16, request: &R) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        let what = api_name(R::KEY);
        let body = sluice_protocol::codec::encode_request(
            version,
            correlation_id,
            &self.config.client_id,
            request,
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&frame_size_prefix(body.len()));
        out.extend_from_slice(&body);
        self.in_flight = true;
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, self.stream.write_all(&out)).await {
            Ok(Ok(())) => Ok(correlation_id),
            Ok(Err(source)) => Err(Error::Io {
                addr: self.addr.clone(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                addr: self.addr.clone(),
                what: format!("sending {what}"),
                after: timeout,
            }),
        }
    }

    async fn read_frame(&mut self) -> Result<bytes::Bytes> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                // Nothing was ever understood on this connection: likely not Kafka at all.
                Err(_) if self.apis.is_empty() => {
                    return Err(Error::NotKafka {
                        addr: self.addr.clone(),
                        reply: describe_foreign_reply(&self.buf),
                    });
                }
                Err(e) => return Err(self.protocol(e.to_string())),
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|source| Error::Io {
                    addr: self.addr.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(Error::Io {
                    addr: self.addr.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the broker closed the connection",
                    ),
                });
            }
        }
    }

    fn protocol(&self, reason: String) -> Error {
        Error::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// A byte stream to a broker: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens a connection to `addr` within the connect timeout, with the TLS handshake when
/// the configuration asks for TLS (the host name or IP checked against the certificate).
async fn open_stream(addr: &str, config: &ClientConfig) -> Result<Box<dyn Io>> {
    let tcp = open_tcp(addr, config).await?;
    let Some(tls) = &config.security.tls else {
        return Ok(Box::new(tcp));
    };
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).map_err(|e| Error::Connect {
        addr: addr.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    match tokio::time::timeout(config.connect_timeout, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => Err(Error::Tls {
            addr: addr.to_string(),
            reason: e.to_string(),
        }),
        Err(_) => Err(Error::Tls {
            addr: addr.to_string(),
            reason: format!("no TLS handshake within {:?}", config.connect_timeout),
        }),
    }
}

/// Opens a TCP connection to `addr` within the connect timeout.
async fn open_tcp(addr: &str, config: &ClientConfig) -> Result<TcpStream> {
    let connect_error = |source| Error::Connect {
        addr: addr.to_string(),
        source,
    };
    let stream = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(connect_error(source)),
        Err(_) => {
            return Err(connect_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {:?}", config.connect_timeout),
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// How the start of a reply that is not a Kafka frame reads, for an error message: its
/// printable text, and what protocol it looks like.
fn describe_foreign_reply(bytes: &[u8]) -> String {
    let head = bytes.get(..bytes.len().min(40)).unwrap_or_default();
    let printable = head
        .iter()
        .all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\r' | b'\n' | b'\t'));
    let shown = if printable {
        let text = String::from_utf8_lossy(head);
        let first_line = text.lines().next().unwrap_or_default().to_string();
        format!("its reply starts with {first_line:?}")
    } else {
        let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("its reply starts with the bytes {}", hex.join(" "))
    };
    let lower = head.to_ascii_lowercase();
    let http = lower.starts_with(b"http/")
        || lower.starts_with(b"<!doctype")
        || lower.starts_with(b"<html");
    if http {
        format!("{shown}, which looks like HTTP")
    } else {
        shown
    }
}

/// Kafka's name of an API key (`Metadata`), or its number.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|()| format!("api key {key}"))
}

/// Whether `code` means "ask again elsewhere or later" for a coordinator.
pub(crate) fn is_coordinator_retry(code: KafkaCode) -> bool {
    code == KafkaCode::NOT_COORDINATOR
        || code == KafkaCode::COORDINATOR_NOT_AVAILABLE
        || code == KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::sync::Arc;

    use bytes::BufMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest, MetadataResponse};
    use kafka_protocol::protocol::{Encodable, HeaderVersion};
    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    use super::*;

    /// Encodes a response frame: size, header, body.
    fn response_frame<B: Encodable + HeaderVersion>(
        correlation_id: i32,
        version: i16,
        body: &B,
    ) -> Vec<u8> {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, B::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut out = frame_size_prefix(buf.len()).to_vec();
        out.put_slice(&buf);
        out
    }

    /// A broker that speaks ApiVersions and Metadata; the first Metadata request of the
    /// first connection is answered only once `release` is notified, and each Metadata
    /// response carries the request's correlation id as its cluster id.
    async fn slow_first_metadata_broker(release: Arc<Notify>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut first_connection = true;
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let hold_first = std::mem::take(&mut first_connection);
                let release = release.clone();
                tokio::spawn(async move {
                    let mut held = hold_first;
                    loop {
                        let mut size = [0u8; 4];
                        if socket.read_exact(&mut size).await.is_err() {
                            return;
                        }
                        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                        socket.read_exact(&mut body).await.unwrap();
                        let key = i16::from_be_bytes([body[0], body[1]]);
                        let version = i16::from_be_bytes([body[2], body[3]]);
                        let cid = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                        let reply = if key == ApiVersionsRequest::KEY {
                            let apis = vec![
                                ApiVersion::default()
                                    .with_api_key(ApiVersionsRequest::KEY)
                                    .with_max_version(3),
                                ApiVersion::default()
                                    .with_api_key(MetadataRequest::KEY)
                                    .with_max_version(12),
                            ];
                            let r = ApiVersionsResponse::default().with_api_keys(apis);
                            response_frame(cid, version, &r)
                        } else {
                            if std::mem::take(&mut held) {
                                release.notified().await;
                            }
                            let r = MetadataResponse::default()
                                .with_cluster_id(Some(StrBytes::from_string(cid.to_string())));
                            response_frame(cid, version, &r)
                        };
                        socket.write_all(&reply).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    /// A request whose future is dropped before its response arrives (a `select!` that
    /// took another branch) must not leave its response to be read by the next request.
    #[tokio::test]
    async fn a_request_abandoned_mid_flight_does_not_shift_later_responses() {
        let release = Arc::new(Notify::new());
        let addr = slow_first_metadata_broker(release.clone()).await;
        let mut conn = Connection::connect(&addr, &ClientConfig::default())
            .await
            .unwrap();
        let request = MetadataRequest::default();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(50), conn.request(&request)).await;
        assert!(
            abandoned.is_err(),
            "the first Metadata request is held back"
        );
        // Its response arrives now, after the request was given up.
        release.notify_one();
        for _ in 0..3 {
            // Answered with its own response (the client checks correlation ids).
            let r = conn.request(&request).await.expect("a later request");
            assert!(r.cluster_id.is_some());
        }
    }
}
