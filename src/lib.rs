//! The wsmschat protocol crate: what every Rust client and the server share.
//!
//! - [`v1`]: the generated `wsmschat.v1` messages and gRPC stubs (from `proto/`).
//! - [`cluster`]: the envelope server nodes exchange (`wsmschat.cluster.v1`).
//! - [`codec`]: the small-buffer protobuf codec the generated stubs use.
//! - [`limits`]: input limits the server enforces and clients should respect.
//! - [`ids`]: the formats of ids and tokens.

/// Generated from `proto/wsmschat/v1/*.proto`; the protos are the documentation.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("wsmschat.v1");
    // serde impls in protobuf's canonical JSON mapping (feature `json`).
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/wsmschat.v1.serde.rs"));

    /// Encoded `FileDescriptorSet` of the protocol, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("wsmschat_descriptor");
}

/// Generated from `proto/wsmschat/cluster/v1/envelope.proto`: the envelope server nodes
/// exchange over the cluster bus (not a client API).
#[allow(clippy::all, missing_docs)]
pub mod cluster {
    pub mod v1 {
        tonic::include_proto!("wsmschat.cluster.v1");
    }
}

pub mod codec {
    //! The protobuf codec every generated client and server uses: prost, with small buffers.
    //!
    //! tonic's default codec reserves an 8 KiB encode buffer per call (and per decoder) and keeps
    //! it as long as the call lives. A support chat holds thousands of mostly idle streams, so
    //! this codec starts its buffers empty and lets each message reserve what it needs: an idle
    //! stream costs nothing here, and a 200-byte message allocates about 200 bytes.

    use std::marker::PhantomData;

    use prost::Message;
    use tonic::codec::{BufferSettings, Codec};
    use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

    /// Buffers start empty; a response stream still yields to the transport every 32 KiB.
    fn settings() -> BufferSettings {
        BufferSettings::new(0, 32 * 1024)
    }

    /// [`tonic_prost::ProstCodec`] with [`settings`].
    #[derive(Debug, Clone, Copy)]
    pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

    impl<T, U> Default for LeanCodec<T, U> {
        fn default() -> Self {
            Self(PhantomData)
        }
    }

    impl<T, U> Codec for LeanCodec<T, U>
    where
        T: Message + Send + 'static,
        U: Message + Default + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = ProstEncoder<T>;
        type Decoder = ProstDecoder<U>;

        fn encoder(&mut self) -> Self::Encoder {
            ProstCodec::<T, U>::raw_encoder(settings())
        }

        fn decoder(&mut self) -> Self::Decoder {
            ProstCodec::<T, U>::raw_decoder(settings())
        }
    }
}

pub mod limits {
    //! Input limits. The server enforces them with clear gRPC statuses; a well-behaved client
    //! checks them before sending.

    /// Default largest message text in bytes (UTF-8). `INVALID_ARGUMENT` beyond.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024;
    /// Largest `client_msg_id` / `request_id` in bytes.
    pub const MAX_CLIENT_ID_BYTES: usize = 64;
    /// Largest decoded gRPC message the server accepts (text + envelope).
    pub const MAX_DECODE_BYTES: usize = 64 * 1024;
    /// Default events per second per token (token bucket refill rate).
    pub const DEFAULT_EVENTS_PER_SECOND: u32 = 20;
    /// Default burst of events per token.
    pub const DEFAULT_EVENTS_BURST: u32 = 40;
    /// Default open streams per token.
    pub const DEFAULT_STREAMS_PER_TOKEN: usize = 8;
    /// Longest display names, emails, topics, URLs.
    pub const MAX_FIELD_BYTES: usize = 512;
}

pub mod ids {
    //! Id and token formats. Ids are opaque strings; the prefixes only help humans reading logs.

    /// Prefix of visitor bearer tokens.
    pub const VISITOR_TOKEN_PREFIX: &str = "wv_";
    /// Prefix of agent session tokens.
    pub const AGENT_TOKEN_PREFIX: &str = "wa_";
    /// Prefix of API key secrets.
    pub const API_KEY_PREFIX: &str = "wk_";

    /// Is `id` an acceptable client-chosen id (`client_msg_id`, `request_id`)?
    pub fn valid_client_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= crate::limits::MAX_CLIENT_ID_BYTES
            && id.bytes().all(|b| b.is_ascii_graphic())
    }
}

pub mod errors {
    //! Machine-readable reasons on refusals, as every gRPC rich-error library reads them:
    //! `grpc-status-details-bin` holds a `google.rpc.Status` whose `details` carry one
    //! `google.rpc.ErrorInfo { reason, domain: "wsmschat.dev", metadata }`. The messages are
    //! declared here by hand (three small messages) so neither the server nor the wasm SDK
    //! pulls in the googleapis protos.

    use prost::Message;

    /// `ErrorInfo.domain` of every wsmschat reason.
    pub const DOMAIN: &str = "wsmschat.dev";
    /// PERMISSION_DENIED: the chat is not available to this visitor (a block). Neutral on
    /// purpose: the widget says "chat unavailable"; do not retry.
    pub const CHAT_UNAVAILABLE: &str = "CHAT_UNAVAILABLE";
    /// RESOURCE_EXHAUSTED: too many new conversations from this address in the last hour;
    /// metadata `retry_after_s`.
    pub const NEW_CONVERSATION_QUOTA: &str = "NEW_CONVERSATION_QUOTA";
    /// RESOURCE_EXHAUSTED: the visitor already has the most unresolved conversations allowed.
    pub const OPEN_CONVERSATION_LIMIT: &str = "OPEN_CONVERSATION_LIMIT";

    const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

    /// `google.rpc.Status`.
    #[derive(Clone, PartialEq, Message)]
    pub struct RpcStatus {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<Any>,
    }

    /// `google.protobuf.Any`.
    #[derive(Clone, PartialEq, Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// `google.rpc.ErrorInfo`. Its `map<string, string> metadata` is read as the repeated
    /// entries it is on the wire (no hash map in the wasm SDK).
    #[derive(Clone, PartialEq, Message)]
    pub struct ErrorInfo {
        #[prost(string, tag = "1")]
        pub reason: String,
        #[prost(string, tag = "2")]
        pub domain: String,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetadataEntry>,
    }

    /// One entry of `ErrorInfo.metadata`.
    #[derive(Clone, PartialEq, Message)]
    pub struct MetadataEntry {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    impl ErrorInfo {
        /// The metadata value of `key`.
        pub fn get(&self, key: &str) -> Option<&str> {
            self.metadata
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
        }
    }

    /// The bytes of `grpc-status-details-bin` for a refusal with `reason`.
    pub fn details(code: i32, message: &str, reason: &str, metadata: &[(&str, String)]) -> Vec<u8> {
        let info = ErrorInfo {
            reason: reason.to_owned(),
            domain: DOMAIN.to_owned(),
            metadata: metadata
                .iter()
                .map(|(k, v)| MetadataEntry {
                    key: (*k).to_owned(),
                    value: v.clone(),
                })
                .collect(),
        };
        RpcStatus {
            code,
            message: message.to_owned(),
            details: vec![Any {
                type_url: ERROR_INFO_TYPE.to_owned(),
                value: info.encode_to_vec(),
            }],
        }
        .encode_to_vec()
    }

    /// The wsmschat `ErrorInfo` in a status's details, if any. Read by a small walker over
    /// the protobuf wire format rather than prost's decoders: in the widget's wasm SDK that is
    /// about 1.3 KB (gzipped) less.
    pub fn error_info(details: &[u8]) -> Option<ErrorInfo> {
        len_fields(details)
            .filter(|(tag, _)| *tag == 3)
            .filter_map(|(_, any)| {
                let mut type_url = None;
                let mut value = None;
                for (tag, bytes) in len_fields(any) {
                    match tag {
                        1 => type_url = Some(bytes),
                        2 => value = Some(bytes),
                        _ => {}
                    }
                }
                (type_url? == ERROR_INFO_TYPE.as_bytes()).then_some(value?)
            })
            .map(|info| {
                let mut out = ErrorInfo::default();
                for (tag, bytes) in len_fields(info) {
                    let text = || std::str::from_utf8(bytes).unwrap_or_default().to_owned();
                    match tag {
                        1 => out.reason = text(),
                        2 => out.domain = text(),
                        3 => {
                            let mut entry = MetadataEntry::default();
                            for (tag, bytes) in len_fields(bytes) {
                                let text =
                                    std::str::from_utf8(bytes).unwrap_or_default().to_owned();
                                match tag {
                                    1 => entry.key = text,
                                    2 => entry.value = text,
                                    _ => {}
                                }
                            }
                            out.metadata.push(entry);
                        }
                        _ => {}
                    }
                }
                out
            })
            .find(|i| i.domain == DOMAIN)
    }

    /// The length-delimited fields of a protobuf message, (field number, bytes); other wire
    /// types are skipped; malformed input ends the walk.
    fn len_fields(mut buf: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
        fn varint(buf: &mut &[u8]) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&b, rest) = buf.split_first()?;
                *buf = rest;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        }
        std::iter::from_fn(move || {
            loop {
                let key = varint(&mut buf)?;
                let skip = match key & 7 {
                    0 => {
                        varint(&mut buf)?;
                        0
                    }
                    1 => 8,
                    5 => 4,
                    2 => {
                        let len = usize::try_from(varint(&mut buf)?).ok()?;
                        if len > buf.len() {
                            return None;
                        }
                        let (field, rest) = buf.split_at(len);
                        buf = rest;
                        return Some((key >> 3, field));
                    }
                    _ => return None,
                };
                if skip > buf.len() {
                    return None;
                }
                buf = &buf[skip..];
            }
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_reason_survives_the_round_trip() {
            let bytes = details(
                8,
                "slow down",
                NEW_CONVERSATION_QUOTA,
                &[("retry_after_s", "60".into())],
            );
            let info = error_info(&bytes).unwrap();
            assert_eq!(info.reason, NEW_CONVERSATION_QUOTA);
            assert_eq!(info.get("retry_after_s"), Some("60"));
            assert!(error_info(b"").is_none());
            assert!(error_info(b"\xff\xff").is_none());
            // The walker reads what prost writes, other fields and truncation included.
            let mut status = RpcStatus::decode(bytes.as_slice()).unwrap();
            status.details.insert(
                0,
                Any {
                    type_url: "x".into(),
                    value: vec![1, 2],
                },
            );
            let longer = status.encode_to_vec();
            assert_eq!(error_info(&longer).unwrap(), info);
            for cut in 0..longer.len() {
                let _ = error_info(&longer[..cut]); // never panics
            }
            // Another domain's ErrorInfo is not ours.
            let foreign = RpcStatus {
                code: 8,
                message: String::new(),
                details: vec![Any {
                    type_url: ERROR_INFO_TYPE.into(),
                    value: ErrorInfo {
                        reason: "X".into(),
                        domain: "other".into(),
                        metadata: vec![],
                    }
                    .encode_to_vec(),
                }],
            };
            assert!(error_info(&foreign.encode_to_vec()).is_none());
        }
    }
}
