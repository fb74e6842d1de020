//! gRPC calls with the message bytes encoded by the caller. Every RPC goes through these two
//! functions, so tonic's client machinery is compiled once instead of once per RPC (the typed
//! generated clients made the wasm about a third bigger).

use bytes::{Buf, BufMut};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Request, Status, Streaming};
use tonic_web_wasm_client::Client;

/// Passes bytes through: the caller encodes and decodes with prost.
pub struct Raw;

pub struct RawEncoder;
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

fn bytes_request<T: Message>(r: Request<T>) -> Request<Vec<u8>> {
    let (meta, ext, msg) = r.into_parts();
    Request::from_parts(meta, ext, msg.encode_to_vec())
}

pub async fn unary_bytes(
    client: Client,
    req: Request<Vec<u8>>,
    path: &'static str,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(client);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    Ok(grpc
        .unary(req, PathAndQuery::from_static(path), Raw)
        .await?
        .into_inner())
}

/// A unary call.
pub async fn unary<Q: Message, R: Message + Default>(
    client: Client,
    req: Request<Q>,
    path: &'static str,
) -> Result<R, Status> {
    let bytes = unary_bytes(client, bytes_request(req), path).await?;
    R::decode(bytes.as_slice()).map_err(|e| Status::internal(format!("undecodable response: {e}")))
}

/// A server-streaming call; decode each item with prost.
pub async fn server_streaming<Q: Message>(
    client: Client,
    req: Request<Q>,
    path: &'static str,
) -> Result<Streaming<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(client);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    Ok(grpc
        .server_streaming(bytes_request(req), PathAndQuery::from_static(path), Raw)
        .await?
        .into_inner())
}
