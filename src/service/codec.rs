//! tonic-prost's codec, except that a request that is not a valid protobuf
//! message is INVALID_ARGUMENT (SPEC §7): `ProstDecoder` answers INTERNAL
//! for every `prost::DecodeError`, as grpc's status-code guide suggests for
//! a server's own data, but here the bytes are the client's.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

use crate::Error;

/// Named by `build.rs` (`codec_path`) for every generated service and
/// client.
#[derive(Debug)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ClientBytes<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ClientBytes(ProstDecoder::default())
    }
}

/// A decoder whose decode failures are the sender's fault.
#[derive(Debug)]
pub struct ClientBytes<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for ClientBytes<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| match e.code() {
            Code::Internal => super::status(Error::invalid_argument(format!(
                "the request is not a valid protobuf message of this method ({}); check that \
                 the client uses qsign.v1's signing.proto",
                e.message()
            ))),
            _ => e,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
