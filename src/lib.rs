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
