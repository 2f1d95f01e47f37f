//! The stored form: how values are written as bytes, the one place that encodes and
//! decodes them. Every value starts with a format byte; an item row is a checksum and the
//! item without its votes and voters. `tests/fixtures/store-v1.tar.gz`, a store written
//! before this module existed, must keep reading back byte for byte (see the tests of
//! `store`): a change to an engine type that changes the bytes on disk fails there, not
//! in a council's data folder.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::{Error, Result};
use crate::engine::Item;

/// The first byte of every stored value: the encoding's version.
const FORMAT: u8 = 1;
/// The first byte of an item row of the older, single-row form: a checksum, then the votes
/// each ballot had and the item without votes and voters. Read, no longer written.
const SNAPSHOT: u8 = 2;
/// The first byte of an item's body row and of its end row (see [`ItemRows`]).
const BODY: u8 = 3;
const END: u8 = 4;
pub const CHECKSUM: usize = 16;

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

/// An item's two rows. `body`, in `items`: its state without the ballots' votes and voters
/// (stored in their own rows) and without where its log ends. `end`, in `ends`: where its
/// log ends, the number of votes of each ballot, and the checksum of the body it goes with.
/// A vote changes the end, not the body, so it rewrites a small row, not the whole item.
pub struct ItemRows {
    pub body: Vec<u8>,
    pub end: Vec<u8>,
    /// The body's checksum: equal for equal bodies, so a writer that has already written
    /// a body need not write it again.
    pub sum: [u8; CHECKSUM],
}

/// What an item's `end` row holds.
#[derive(Serialize, Deserialize)]
struct End {
    seq: u64,
    head: String,
    cast: Vec<usize>,
    body: String,
}

pub fn encode_item(item: &Item) -> ItemRows {
    let json = serde_json::to_vec(item).unwrap_or_default();
    let sum = checksum(&json);
    let end = End {
        seq: item.seq,
        head: item.head.clone(),
        cast: item.ballots.iter().map(|b| b.cast()).collect(),
        body: hex::encode(sum),
    };
    ItemRows {
        body: summed(BODY, &json),
        end: summed(END, &serde_json::to_vec(&end).unwrap_or_default()),
        sum,
    }
}

/// An item read back from its rows: the votes each ballot had when they were written, and
/// the item without its votes and voters (the caller puts them back). Rows whose checksums
/// do not match, or that do not go together, are `Corrupt`. A row of the older single-row
/// form (`SNAPSHOT`, no end row) reads back too.
pub fn decode_item(id: &str, body: &[u8], end: Option<&[u8]>) -> Result<(Vec<usize>, Item)> {
    let corrupt = |reason: String| Error::Corrupt {
        key: id.to_string(),
        reason,
    };
    fn parse<T: DeserializeOwned>(id: &str, json: &[u8]) -> Result<T> {
        serde_json::from_slice(json).map_err(|e| Error::Corrupt {
            key: id.to_string(),
            reason: e.to_string(),
        })
    }
    let (format, json, sum) =
        unsummed(body).ok_or_else(|| corrupt("the checksum does not match".into()))?;
    match (format, end) {
        (BODY, Some(end)) => {
            let (END, end, _) = unsummed(end)
                .ok_or_else(|| corrupt("the end row's checksum does not match".into()))?
            else {
                return Err(corrupt("unknown end row format".into()));
            };
            let end: End = parse(id, end)?;
            if end.body != hex::encode(sum) {
                return Err(corrupt("the end row goes with another body".into()));
            }
            let mut item: Item = parse(id, json)?;
            // Read as a sequence of unknown length, the ballots get room for four or more;
            // an item is kept for as long as it is open (a ballot is over 400 bytes).
            item.ballots.shrink_to_fit();
            item.seq = end.seq;
            item.head = end.head;
            Ok((end.cast, item))
        }
        (BODY, None) => Err(corrupt("the item has no end row".into())),
        (SNAPSHOT, _) => {
            #[derive(Deserialize)]
            struct LogEnd {
                seq: u64,
                head: String,
            }
            let (cast, mut item): (Vec<usize>, Item) = parse(id, json)?;
            let (_, log): (Vec<usize>, LogEnd) = parse(id, json)?;
            item.seq = log.seq;
            item.head = log.head;
            Ok((cast, item))
        }
        (v, _) => Err(corrupt(format!("unknown item format {v}"))),
    }
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM] {
    let mut sum = [0; CHECKSUM];
    sum.copy_from_slice(&Sha256::digest(bytes)[..CHECKSUM]);
    sum
}

/// A format byte, the checksum of `body`, and `body`.
fn summed(format: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + CHECKSUM + body.len());
    out.push(format);
    out.extend_from_slice(&checksum(body));
    out.extend_from_slice(body);
    out
}

/// A `summed` row's format, body and checksum, if the checksum matches.
fn unsummed(row: &[u8]) -> Option<(u8, &[u8], [u8; CHECKSUM])> {
    let (&format, rest) = row.split_first()?;
    let (sum, body) = rest.split_at_checked(CHECKSUM)?;
    let actual = checksum(body);
    (actual == *sum).then_some((format, body, actual))
}
