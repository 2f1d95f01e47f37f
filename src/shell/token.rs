//! Signed ballot links: HMAC-SHA256 over (item, ballot, member, delegate).
//!
//! A token is `base64url(payload).base64url(tag)`, the tag being HMAC-SHA256 truncated to
//! 128 bits, so that a token fits in the local part of a reply address (64 characters).
//! Verification is constant-time and
//! refuses anything malformed, forged or signed with another key. Whether the ballot is
//! still open is for the engine to say, not the token.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest token accepted before any decoding work.
const MAX_TOKEN: usize = 512;
/// Bytes of the HMAC kept in a token.
const TAG: usize = 16;

/// What a ballot link stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotRef {
    pub item: String,
    pub ballot: usize,
    pub member: String,
    pub delegate: usize,
}

impl BallotRef {
    /// The place a link for proposing agenda points takes in a token: no ballot has it, so
    /// such a link never votes, and a ballot link never proposes.
    pub const PROPOSALS: usize = usize::MAX;
    /// Likewise for a link that reads the item's texts, and does nothing else.
    pub const DOCUMENTS: usize = usize::MAX - 1;
    /// And for a link that proposes amendments to the item's text.
    pub const AMENDMENTS: usize = usize::MAX - 2;
    /// And for a link that nominates candidates for an election.
    pub const NOMINATIONS: usize = usize::MAX - 3;
    /// And for a trustee's link to the board of a secret election's key and counts.
    pub const TRUSTEE: usize = usize::MAX - 4;
}

/// The daemon's secret key.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl Key {
    /// Reads the key file, creating it with a fresh random key when it does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<Key> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{}: the key must be 32 bytes in hex",
                        path.display()
                    ))
                })?;
                Ok(Key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                crate::durable::write_file(
                    path,
                    format!("{}\n", hex::encode(key)).as_bytes(),
                    true,
                )?;
                Ok(Key(key))
            }
            Err(e) => Err(e),
        }
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    pub fn sign(&self, r: &BallotRef) -> String {
        let payload = format!("{}\n{}\n{}\n{}", r.item, r.ballot, r.member, r.delegate);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(&tag[..TAG]))
    }

    pub fn verify(&self, token: &str) -> Option<BallotRef> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let (payload, tag) = token.split_once('.')?;
        let payload = B64.decode(payload).ok()?;
        let tag = B64.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(&payload);
        if tag.len() != TAG {
            return None;
        }
        mac.verify_truncated_left(&tag).ok()?;
        let text = String::from_utf8(payload).ok()?;
        let mut parts = text.split('\n');
        let r = BallotRef {
            item: parts.next()?.to_string(),
            ballot: parts.next()?.parse().ok()?,
            member: parts.next()?.to_string(),
            delegate: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_forgeries_do_not() {
        let key = Key::from_bytes([7; 32]);
        let r = BallotRef {
            item: "item-1".into(),
            ballot: 0,
            member: "TUR".into(),
            delegate: 0,
        };
        let token = key.sign(&r);
        assert_eq!(key.verify(&token), Some(r.clone()));
        assert_eq!(Key::from_bytes([8; 32]).verify(&token), None, "another key");
        let (payload, tag) = token.split_once('.').unwrap();
        let other = B64.encode("item-1\n0\nEGY\n0");
        assert_eq!(
            key.verify(&format!("{other}.{tag}")),
            None,
            "payload swapped"
        );
        assert_eq!(key.verify(payload), None);
        for junk in ["", ".", "a.b", "..", "é.é", &"x".repeat(10_000)] {
            assert_eq!(key.verify(junk), None, "{junk}");
        }
    }
}
