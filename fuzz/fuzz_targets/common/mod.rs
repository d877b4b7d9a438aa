//! What the wire targets share: the decode-then-re-encode oracle and a one-thread runtime.

#![allow(dead_code)]

use rill::rpc::frame::{self, RpcError};
use serde::{de::DeserializeOwned, Serialize};

/// Decodes `bytes` as one `T` with `rill::rpc::frame::decode`, as a receiver does. Arbitrary
/// input may fail to decode (that is the point), but it must never panic, and it must fail
/// only as `Malformed` (or `FrameTooLarge` above `max`). What decodes must survive a round
/// trip: it encodes, the encoding decodes again, and re-encoding that gives the same bytes (not
/// necessarily the input's: a map with repeated or unsorted keys decodes to the canonical map).
pub fn wire<T: Serialize + DeserializeOwned>(bytes: &[u8], max: usize) -> Option<T> {
    match frame::decode::<T>(bytes, max) {
        Ok(value) => {
            round_trip(&value);
            Some(value)
        }
        Err(RpcError::Malformed(_)) => None,
        Err(RpcError::FrameTooLarge { len, max: m }) => {
            assert!(
                len > m,
                "FrameTooLarge for {len} bytes under a limit of {m}"
            );
            None
        }
        Err(e) => panic!("decode failed with an error other than Malformed: {e:?}"),
    }
}

/// The round-trip oracle of [`wire`] on an already decoded value.
pub fn round_trip<T: Serialize + DeserializeOwned>(value: &T) {
    let first = frame::encode(value).expect("a decoded message encodes");
    let again: T = frame::decode(&first, first.len()).unwrap_or_else(|e| {
        panic!(
            "{} re-encoded to {} bytes that do not decode: {e}",
            std::any::type_name::<T>(),
            first.len()
        )
    });
    let second = frame::encode(&again).expect("a decoded message encodes");
    assert_eq!(
        first,
        second,
        "{}: encode(decode(encode(x))) != encode(x)",
        std::any::type_name::<T>()
    );
}

/// A one-thread runtime, made once per fuzzing process (inputs run one after the other).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// With `RILL_FUZZ_SEEDS` set to a directory (`cargo xtask fuzz` sets it to the target's
/// corpus when that is empty), writes `seeds()` there, each a selector byte and a payload:
/// valid messages to start mutating from, so the fuzzer need not discover a job's name or the
/// protocol magic on its own.
pub fn write_seeds(seeds: impl FnOnce() -> Vec<(u8, Vec<u8>)>) {
    let Some(dir) = std::env::var_os("RILL_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::create_dir_all(&dir);
    for (i, (selector, payload)) in seeds().into_iter().enumerate() {
        let mut bytes = vec![selector];
        bytes.extend(payload);
        let _ = std::fs::write(dir.join(format!("seed-{selector}-{i:02}")), bytes);
    }
}

/// `frame::encode`, for seeds.
pub fn enc<T: Serialize>(value: &T) -> Vec<u8> {
    frame::encode(value).expect("a seed encodes")
}

/// A frame as it travels: 4-byte big-endian length, then the payload.
pub fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}
