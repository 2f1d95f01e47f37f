//! The stored form: how values are written as bytes, the one place that encodes and
//! decodes them. Every value starts with a format byte; an item row is a checksum and the
//! item without its votes and voters. `tests/fixtures/store-v1.tar.gz`, a store written
//! before this module existed, must keep reading back byte for byte (see the tests of
//! `store`): a change to an engine type that changes the bytes on disk fails there, not
//! in a council's data folder.

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::{Error, Result};
use crate::engine::Item;

/// The first byte of every stored value: the encoding's version.
const FORMAT: u8 = 1;
/// The first byte of an item row: a checksum, then the item without votes and voters.
const SNAPSHOT: u8 = 2;
const CHECKSUM: usize = 16;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // Serializing our own types to JSON cannot fail: no maps with non-string keys.
    serde_json::to_writer(&mut out, value).unwrap_or_default();
    out
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    let corrupt = |reason: String| Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&FORMAT, body)) => serde_json::from_slice(body).map_err(|e| corrupt(e.to_string())),
        Some((v, _)) => Err(corrupt(format!("unknown format {v}"))),
        None => Err(corrupt("empty value".into())),
    }
}

/// An item's row: its state without the ballots' votes and voters (stored in their own
/// rows), the number of votes of each ballot, and a checksum of all that.
pub fn encode_item(item: &Item) -> Vec<u8> {
    let cast: Vec<usize> = item.ballots.iter().map(|b| b.cast()).collect();
    let body = serde_json::to_vec(&(cast, item)).unwrap_or_default();
    let mut out = Vec::with_capacity(1 + CHECKSUM + body.len());
    out.push(SNAPSHOT);
    out.extend_from_slice(&Sha256::digest(&body)[..CHECKSUM]);
    out.extend_from_slice(&body);
    out
}

/// An item row read back: the votes each ballot had when it was written, and the item
/// without its votes and voters (the caller puts them back). A row whose checksum does not
/// match is `Corrupt`.
pub fn decode_item(id: &str, row: &[u8]) -> Result<(Vec<usize>, Item)> {
    let corrupt = |reason: String| Error::Corrupt {
        key: id.to_string(),
        reason,
    };
    let body = match row.split_first() {
        Some((&SNAPSHOT, rest)) if rest.len() >= CHECKSUM => {
            let (sum, body) = rest.split_at(CHECKSUM);
            if Sha256::digest(body)[..CHECKSUM] != *sum {
                return Err(corrupt("the checksum does not match".into()));
            }
            body
        }
        Some((v, _)) => return Err(corrupt(format!("unknown item format {v}"))),
        None => return Err(corrupt("empty value".into())),
    };
    serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))
}
