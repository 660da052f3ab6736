//! Request headers in, response frames out.
//!
//! Requests are decoded in two steps: the header first (api key, version,
//! correlation id, client id), so the broker can answer ApiVersions even for a
//! version it does not know (KIP-511) and close the connection for anything
//! else it cannot read; then the body, with kafka-protocol's decoders.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Why a request could not be decoded; the broker closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The frame is shorter than the fixed part of a request header.
    #[error("request frame of {0} bytes is too short for a header")]
    TruncatedHeader(usize),
    /// The api key is not one Kafka defines.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The header or body did not decode at the announced version.
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Malformed {
        /// The API of the request.
        api: ApiKey,
        /// The announced version.
        version: i16,
        /// What kafka-protocol reported.
        reason: String,
    },
    /// The response could not be encoded (a broker bug, never peer input).
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        /// The API of the response.
        api: ApiKey,
        /// The response version.
        version: i16,
        /// What kafka-protocol reported.
        reason: String,
    },
}

/// The decoded request header plus the undecoded body.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// Which API the request is for.
    pub api_key: ApiKey,
    /// The request version the client chose.
    pub api_version: i16,
    /// Echoed in the response so the client can match it.
    pub correlation_id: i32,
    /// The client's self-chosen id, used in logs and group membership.
    pub client_id: Option<StrBytes>,
    /// The request body, still encoded.
    pub body: Bytes,
}

/// Reads the api key and version without consuming anything, so an unknown
/// version can still be told apart from garbage.
pub fn peek_api(frame: &[u8]) -> Result<(i16, i16), CodecError> {
    match frame.get(..4) {
        Some(&[k0, k1, v0, v1]) => Ok((i16::from_be_bytes([k0, k1]), i16::from_be_bytes([v0, v1]))),
        _ => Err(CodecError::TruncatedHeader(frame.len())),
    }
}

/// Decodes the request header of a frame; the body stays encoded.
///
/// `header_version_override` lets the caller parse ApiVersions requests of a
/// version it does not support with header v1 (KIP-511): the client id is a
/// classic string in every header version, so v1 parsing always succeeds.
pub fn decode_header(mut frame: Bytes) -> Result<RequestFrame, CodecError> {
    let (key, version) = peek_api(&frame)?;
    let api_key = ApiKey::try_from(key).map_err(|()| CodecError::UnknownApiKey(key))?;
    let header_version = if api_key == ApiKey::ApiVersions {
        // The client id is never compact, and tagged fields are ignorable:
        // reading v1 works for every ApiVersions version, known or not.
        1
    } else {
        api_key.request_header_version(version).max(1)
    };
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| CodecError::Malformed {
            api: api_key,
            version,
            reason: e.to_string(),
        })?;
    if api_key == ApiKey::ApiVersions && version >= 3 {
        // Skip the header's tagged fields (flexible header v2) if present.
        skip_tagged_fields(&mut frame).map_err(|reason| CodecError::Malformed {
            api: api_key,
            version,
            reason,
        })?;
    }
    Ok(RequestFrame {
        api_key,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id,
        body: frame,
    })
}

/// Decodes the body of a request at its version with kafka-protocol.
pub fn decode_body(frame: &RequestFrame) -> Result<RequestKind, CodecError> {
    let mut body = frame.body.clone();
    RequestKind::decode(frame.api_key, &mut body, frame.api_version).map_err(|e| {
        CodecError::Malformed {
            api: frame.api_key,
            version: frame.api_version,
            reason: format!("{e:#}"),
        }
    })
}

/// Encodes a whole response frame: size prefix, response header, body.
///
/// ApiVersions responses always use header v0, whatever the version (KIP-511),
/// so clients can read them before they know which versions we speak.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, CodecError> {
    let encode_err = |e: anyhow::Error| CodecError::Encode {
        api: api_key,
        version,
        reason: format!("{e:#}"),
    };
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    // The size is only a capacity hint: the frame length is what was encoded, so an API
    // the hint does not know still gets a correct frame.
    let hint = 4 + 8 + size_hint(body, version);
    let mut buf = BytesMut::with_capacity(hint);
    buf.put_slice(&[0; 4]);
    header
        .encode(&mut buf, header_version)
        .map_err(encode_err)?;
    body.encode(&mut buf, version).map_err(encode_err)?;
    let prefix = crate::frame::frame_size_prefix(buf.len() - 4);
    if let Some(head) = buf.get_mut(..4) {
        head.copy_from_slice(&prefix);
    }
    Ok(buf.freeze())
}

/// Encodes a request as a client sends it after the 4-byte frame length: the request
/// header (v1 or v2, as the API and version want) and the body.
pub fn encode_request<R: kafka_protocol::protocol::Request>(
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &R,
) -> Result<BytesMut, CodecError> {
    let api = ApiKey::try_from(R::KEY).map_err(|()| CodecError::UnknownApiKey(R::KEY))?;
    let encode_err = |e: anyhow::Error| CodecError::Encode {
        api,
        version,
        reason: format!("{e:#}"),
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::new();
    kafka_protocol::protocol::encode_request_header_into_buffer(&mut buf, &header)
        .map_err(encode_err)?;
    request.encode(&mut buf, version).map_err(encode_err)?;
    Ok(buf)
}

/// Decodes a response to a request of type `R` sent at `version`, from the frame after
/// its 4-byte length: returns its correlation id and body.
pub fn decode_response<R: kafka_protocol::protocol::Request>(
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, R::Response), CodecError> {
    use kafka_protocol::protocol::HeaderVersion;
    let api = ApiKey::try_from(R::KEY).map_err(|()| CodecError::UnknownApiKey(R::KEY))?;
    let malformed = |e: anyhow::Error| CodecError::Malformed {
        api,
        version,
        reason: format!("{e:#}"),
    };
    let header = ResponseHeader::decode(
        &mut frame,
        <R::Response as HeaderVersion>::header_version(version),
    )
    .map_err(malformed)?;
    let response = R::Response::decode(&mut frame, version).map_err(malformed)?;
    Ok((header.correlation_id, response))
}

/// Skips a tagged-field section (unsigned varint count, then tag/size/bytes).
fn skip_tagged_fields(buf: &mut Bytes) -> Result<(), String> {
    let count = read_unsigned_varint(buf)?;
    for _ in 0..count {
        let _tag = read_unsigned_varint(buf)?;
        let size = read_unsigned_varint(buf)? as usize;
        if buf.remaining() < size {
            return Err("tagged field runs past the end of the header".into());
        }
        buf.advance(size);
    }
    Ok(())
}

fn read_unsigned_varint(buf: &mut Bytes) -> Result<u32, String> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return Err("truncated varint".into());
        }
        let byte = buf.get_u8();
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 5 bytes".into())
}

/// The encoded size of a response body, so the frame is allocated once.
/// The encoded size of the responses we send most, to allocate their frame once (0 for
/// the others, whose frames then grow as they are written).
fn size_hint(body: &ResponseKind, version: i16) -> usize {
    // ResponseKind has no compute_size; encoding into a counting sink would
    // cost a second pass, so ask the inner message directly.
    macro_rules! size_of_kinds {
        ($($kind:ident),* $(,)?) => {
            match body {
                $(ResponseKind::$kind(m) => m.compute_size(version).unwrap_or(0),)*
                _ => 0,
            }
        };
    }
    size_of_kinds!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        SaslHandshake,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeConfigs,
        AlterConfigs,
        CreatePartitions,
        DeleteGroups,
        IncrementalAlterConfigs,
        OffsetDelete,
        DescribeCluster,
        DescribeProducers,
        DescribeTransactions,
        ListTransactions,
        SaslAuthenticate,
        DescribeLogDirs,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        CreateAcls,
        DescribeAcls,
        DeleteAcls,
        DescribeClientQuotas,
        AlterClientQuotas,
    )
}
