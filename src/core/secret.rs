//! The secret ballot's cryptography: exponential ElGamal on Ristretto255, as verifiable
//! elections do it (Helios, Belenios), from curve25519-dalek's group and SHA-512. Nothing
//! here is a new primitive: only the standard constructions, composed.
//!
//! - **Key.** The election key `PK = x·G` is made by the trustees without a dealer (joint
//!   Feldman, Pedersen's DKG): each trustee deals a random polynomial of degree `k - 1`,
//!   publishes its coefficients times `G` ([`Dealing::commitments`]) and gives trustee `j`
//!   the value at `j` ([`Dealing::share_for`]), which `j` checks against them
//!   ([`share_checks`]). Trustee `j`'s key share is the sum of what it was given; nobody
//!   holds `x`, and any `k` trustees can decrypt.
//! - **Ballot.** One ciphertext per choice of the round, encrypting 1 (marked) or 0, each
//!   with a proof that it is 0 or 1, and one proof that the marks add up to what the round
//!   allows (disjunctive Chaum–Pedersen proofs, Fiat–Shamir with SHA-512). A blank ballot
//!   marks the choice `blank`, which counts as all the seats: `marks + seats × blank` is
//!   between 1 and the seats, so a blank ballot marks nothing else.
//! - **Tally.** The ciphertexts of the counted ballots add up, choice by choice, to a
//!   ciphertext of each choice's count; each of `k` trustees gives its share of the
//!   decryption of the sums only, with a proof that it used its key share
//!   ([`PartialDecryption`]); the shares combine by Lagrange interpolation at 0, and the
//!   count is found by trying 0, 1, 2, … up to the electorate.
//!
//! Every proof is bound to its context (the item, the ballot, the member) so that a
//! ballot or a decryption cannot be replayed elsewhere. Pure: randomness comes in as an
//! argument, no I/O.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

/// What a proof is bound to, as bytes: the domain, then the item, ballot and member.
fn challenge(context: &[u8], points: &[RistrettoPoint]) -> Scalar {
    let mut h = Sha512::new();
    h.update(b"councild secret ballot v1");
    h.update((context.len() as u64).to_le_bytes());
    h.update(context);
    for p in points {
        h.update(p.compress().as_bytes());
    }
    Scalar::from_hash(h)
}

fn random_scalar(rng: &mut (impl RngCore + CryptoRng)) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// `m·G`, for a small whole number `m`.
fn times_g(m: u64) -> RistrettoPoint {
    Scalar::from(m) * G
}

/// An exponential ElGamal ciphertext of `m`: `(r·G, m·G + r·PK)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ciphertext {
    #[serde(with = "hex_point")]
    pub alpha: RistrettoPoint,
    #[serde(with = "hex_point")]
    pub beta: RistrettoPoint,
}

impl Ciphertext {
    /// The ciphertext of nothing: the start of a sum.
    pub fn zero() -> Ciphertext {
        Ciphertext {
            alpha: RistrettoPoint::identity(),
            beta: RistrettoPoint::identity(),
        }
    }

    pub fn encrypt(pk: &RistrettoPoint, m: u64, r: &Scalar) -> Ciphertext {
        Ciphertext {
            alpha: r * G,
            beta: times_g(m) + r * pk,
        }
    }

    /// The ciphertext of the sum of the two plaintexts.
    pub fn add(&self, other: &Ciphertext) -> Ciphertext {
        Ciphertext {
            alpha: self.alpha + other.alpha,
            beta: self.beta + other.beta,
        }
    }

    fn times(&self, k: u64) -> Ciphertext {
        let k = Scalar::from(k);
        Ciphertext {
            alpha: k * self.alpha,
            beta: k * self.beta,
        }
    }
}

/// A proof that a ciphertext encrypts one of a set of values, knowing its randomness: one
/// Chaum–Pedersen proof per value, all but the true one simulated, their challenges adding
/// up to the hash of everything (Cramer–Damgård–Schoenmakers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OneOf {
    /// Per value: the commitments `(a, b)`, the challenge and the response.
    pub branches: Vec<Branch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    #[serde(with = "hex_point")]
    pub a: RistrettoPoint,
    #[serde(with = "hex_point")]
    pub b: RistrettoPoint,
    #[serde(with = "hex_scalar")]
    pub challenge: Scalar,
    #[serde(with = "hex_scalar")]
    pub response: Scalar,
}

impl OneOf {
    /// Proves that `c = encrypt(pk, values[real], r)`.
    pub fn prove(
        rng: &mut (impl RngCore + CryptoRng),
        context: &[u8],
        pk: &RistrettoPoint,
        c: &Ciphertext,
        values: &[u64],
        real: usize,
        r: &Scalar,
    ) -> OneOf {
        let w = random_scalar(rng);
        let mut branches: Vec<Branch> = values
            .iter()
            .enumerate()
            .map(|(k, &m)| {
                if k == real {
                    return Branch {
                        a: w * G,
                        b: w * pk,
                        challenge: Scalar::ZERO,
                        response: Scalar::ZERO,
                    };
                }
                let (challenge, response) = (random_scalar(rng), random_scalar(rng));
                Branch {
                    a: response * G - challenge * c.alpha,
                    b: response * pk - challenge * (c.beta - times_g(m)),
                    challenge,
                    response,
                }
            })
            .collect();
        let e = OneOf::hash(context, pk, c, &branches);
        let others: Scalar = branches.iter().map(|b| b.challenge).sum();
        if let Some(b) = branches.get_mut(real) {
            b.challenge = e - others;
            b.response = w + b.challenge * r;
        }
        OneOf { branches }
    }

    fn hash(context: &[u8], pk: &RistrettoPoint, c: &Ciphertext, branches: &[Branch]) -> Scalar {
        let mut points = vec![*pk, c.alpha, c.beta];
        points.extend(branches.iter().flat_map(|b| [b.a, b.b]));
        challenge(context, &points)
    }

    /// Whether this proves that `c` encrypts one of `values` under `pk`.
    pub fn verify(
        &self,
        context: &[u8],
        pk: &RistrettoPoint,
        c: &Ciphertext,
        values: &[u64],
    ) -> bool {
        if self.branches.len() != values.len() {
            return false;
        }
        let each = self.branches.iter().zip(values).all(|(b, &m)| {
            b.response * G == b.a + b.challenge * c.alpha
                && b.response * pk == b.b + b.challenge * (c.beta - times_g(m))
        });
        let sum: Scalar = self.branches.iter().map(|b| b.challenge).sum();
        each && sum == OneOf::hash(context, pk, c, &self.branches)
    }
}

/// What the proof about choice `i` of `n` is bound to: the ballot's context, then the
/// choice's place, so that a ciphertext and its proof cannot move to another choice.
fn choice_context(context: &[u8], i: usize, n: usize) -> Vec<u8> {
    [context, format!("/choice/{i}/{n}").as_bytes()].concat()
}

/// What the proof about the sum of the `n` marks is bound to.
fn overall_context(context: &[u8], n: usize) -> Vec<u8> {
    [context, format!("/overall/{n}").as_bytes()].concat()
}

/// An encrypted ballot of one round: a ciphertext per choice (the candidates, then `blank`
/// when the round offers it), each proved 0 or 1, and the proof that the marks are
/// allowed (`overall`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub choices: Vec<Ciphertext>,
    pub proofs: Vec<OneOf>,
    pub overall: OneOf,
}

/// A ballot's proofs without its ciphertexts: what the log keeps beside a secret vote's
/// choice (the ciphertexts, [`encode_choices`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proofs {
    pub proofs: Vec<OneOf>,
    pub overall: OneOf,
}

impl Ballot {
    pub fn split(self) -> (Vec<Ciphertext>, Proofs) {
        let proofs = Proofs {
            proofs: self.proofs,
            overall: self.overall,
        };
        (self.choices, proofs)
    }

    pub fn join(choices: Vec<Ciphertext>, p: Proofs) -> Ballot {
        Ballot {
            choices,
            proofs: p.proofs,
            overall: p.overall,
        }
    }
}

/// What a round allows a ballot to mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The choices, `blank` included when offered (it is the last).
    pub choices: usize,
    /// Most candidates a ballot marks.
    pub seats: u64,
    pub blank: bool,
}

impl Shape {
    /// The weight of each choice in the overall sum: 1 per candidate, the seats for `blank`.
    fn weights(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.choices).map(|i| match self.blank && i + 1 == self.choices {
            true => self.seats,
            false => 1,
        })
    }

    /// The sums the overall proof allows: 1 to the seats.
    fn sums(&self) -> Vec<u64> {
        (1..=self.seats).collect()
    }

    fn overall(&self, choices: &[Ciphertext]) -> Ciphertext {
        choices
            .iter()
            .zip(self.weights())
            .fold(Ciphertext::zero(), |sum, (c, w)| sum.add(&c.times(w)))
    }
}

impl Ballot {
    /// Encrypts the marks (one per choice, 0 or 1) with their proofs; `None` when the marks
    /// do not fit the shape.
    pub fn encrypt(
        rng: &mut (impl RngCore + CryptoRng),
        context: &[u8],
        pk: &RistrettoPoint,
        shape: &Shape,
        marks: &[bool],
    ) -> Option<Ballot> {
        if marks.len() != shape.choices {
            return None;
        }
        let sum: u64 = marks
            .iter()
            .zip(shape.weights())
            .map(|(&m, w)| u64::from(m) * w)
            .sum();
        let real_sum = shape.sums().iter().position(|&s| s == sum)?;
        let rs: Vec<Scalar> = marks.iter().map(|_| random_scalar(rng)).collect();
        let choices: Vec<Ciphertext> = marks
            .iter()
            .zip(&rs)
            .map(|(&m, r)| Ciphertext::encrypt(pk, u64::from(m), r))
            .collect();
        let n = choices.len();
        let proofs = choices
            .iter()
            .zip(marks.iter().zip(&rs))
            .enumerate()
            .map(|(i, (c, (&m, r)))| {
                let context = choice_context(context, i, n);
                OneOf::prove(rng, &context, pk, c, &[0, 1], usize::from(m), r)
            })
            .collect();
        let r_sum: Scalar = rs
            .iter()
            .zip(shape.weights())
            .map(|(r, w)| r * Scalar::from(w))
            .sum();
        let total = shape.overall(&choices);
        let context = overall_context(context, n);
        let overall = OneOf::prove(rng, &context, pk, &total, &shape.sums(), real_sum, &r_sum);
        Some(Ballot {
            choices,
            proofs,
            overall,
        })
    }

    /// Whether every proof holds: each choice 0 or 1, and the marks allowed.
    pub fn verify(&self, context: &[u8], pk: &RistrettoPoint, shape: &Shape) -> bool {
        let n = shape.choices;
        (1..=100).contains(&shape.seats)
            && self.choices.len() == n
            && self.proofs.len() == n
            && self
                .choices
                .iter()
                .zip(&self.proofs)
                .enumerate()
                .all(|(i, (c, p))| p.verify(&choice_context(context, i, n), pk, c, &[0, 1]))
            && self.overall.verify(
                &overall_context(context, n),
                pk,
                &shape.overall(&self.choices),
                &shape.sums(),
            )
    }

    /// The ballot's tracker: SHA-256 of its ciphertexts, which the voter keeps and finds on
    /// the public list of ballots counted.
    pub fn tracker(&self) -> String {
        tracker(&self.choices)
    }
}

/// A trustee's dealing in the key generation: a random polynomial of degree `k - 1`.
pub struct Dealing {
    coefficients: Vec<Scalar>,
}

impl Dealing {
    pub fn new(rng: &mut (impl RngCore + CryptoRng), k: usize) -> Dealing {
        Dealing {
            coefficients: (0..k.max(1)).map(|_| random_scalar(rng)).collect(),
        }
    }

    /// A dealing kept by its trustee between dealing and checking its shares.
    pub fn from_coefficients(coefficients: Vec<Scalar>) -> Dealing {
        Dealing { coefficients }
    }

    pub fn coefficients(&self) -> &[Scalar] {
        &self.coefficients
    }

    /// What the trustee publishes: each coefficient times `G`.
    pub fn commitments(&self) -> Vec<RistrettoPoint> {
        self.coefficients.iter().map(|a| a * G).collect()
    }

    /// The share for trustee `j` (from 1): the polynomial at `j`.
    pub fn share_for(&self, j: u64) -> Scalar {
        let x = Scalar::from(j);
        self.coefficients
            .iter()
            .rev()
            .fold(Scalar::ZERO, |acc, a| acc * x + a)
    }
}

/// `Σ_l j^l · C_l`: what a share for trustee `j` times `G` must be, by the dealer's
/// commitments.
fn committed_at(commitments: &[RistrettoPoint], j: u64) -> RistrettoPoint {
    let x = Scalar::from(j);
    commitments
        .iter()
        .rev()
        .fold(RistrettoPoint::identity(), |acc, c| acc * x + c)
}

/// Whether a share a dealer gave trustee `j` fits the dealer's commitments.
pub fn share_checks(commitments: &[RistrettoPoint], j: u64, share: &Scalar) -> bool {
    share * G == committed_at(commitments, j)
}

/// The election's public key: the sum of every dealer's constant term.
pub fn election_key(dealings: &[Vec<RistrettoPoint>]) -> RistrettoPoint {
    dealings.iter().filter_map(|c| c.first()).sum()
}

/// Trustee `j`'s public key share, from every dealer's commitments: what its partial
/// decryptions are checked against.
pub fn public_share(dealings: &[Vec<RistrettoPoint>], j: u64) -> RistrettoPoint {
    dealings.iter().map(|c| committed_at(c, j)).sum()
}

/// A trustee's share of the decryption of one ciphertext: `x_j · alpha`, with a proof that
/// it is made with the key share behind `public_share` (Chaum–Pedersen: equal discrete
/// logarithms of `X_j` to `G` and of the share to `alpha`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialDecryption {
    #[serde(with = "hex_point")]
    pub share: RistrettoPoint,
    #[serde(with = "hex_point")]
    pub a: RistrettoPoint,
    #[serde(with = "hex_point")]
    pub b: RistrettoPoint,
    #[serde(with = "hex_scalar")]
    pub response: Scalar,
}

impl PartialDecryption {
    pub fn new(
        rng: &mut (impl RngCore + CryptoRng),
        context: &[u8],
        key_share: &Scalar,
        c: &Ciphertext,
    ) -> PartialDecryption {
        let w = random_scalar(rng);
        let (public, share) = (key_share * G, key_share * c.alpha);
        let (a, b) = (w * G, w * c.alpha);
        let e = challenge(context, &[public, c.alpha, share, a, b]);
        PartialDecryption {
            share,
            a,
            b,
            response: w + e * key_share,
        }
    }

    /// Whether this is the decryption share of `c` by the trustee whose public share is
    /// `public`.
    pub fn verify(&self, context: &[u8], public: &RistrettoPoint, c: &Ciphertext) -> bool {
        let e = challenge(context, &[*public, c.alpha, self.share, self.a, self.b]);
        self.response * G == self.a + e * public
            && self.response * c.alpha == self.b + e * self.share
    }
}

/// The Lagrange coefficient at 0 of trustee `j` among `trustees` (distinct, from 1).
fn lagrange(j: u64, trustees: &[u64]) -> Scalar {
    let (mut num, mut den) = (Scalar::ONE, Scalar::ONE);
    for &m in trustees.iter().filter(|&&m| m != j) {
        num *= Scalar::from(m);
        den *= Scalar::from(m) - Scalar::from(j);
    }
    num * den.invert()
}

/// The plaintext of `c` from the shares of `k` or more trustees (`(j, share)`), when it is
/// at most `most`; `None` otherwise (too few or wrong shares, or a larger value).
pub fn decrypt(c: &Ciphertext, shares: &[(u64, RistrettoPoint)], most: u64) -> Option<u64> {
    let ids: Vec<u64> = shares.iter().map(|(j, _)| *j).collect();
    if ids.contains(&0) || (1..ids.len()).any(|i| ids[..i].contains(&ids[i])) {
        return None;
    }
    let x_alpha: RistrettoPoint = shares.iter().map(|(j, d)| lagrange(*j, &ids) * d).sum();
    let m_g = c.beta - x_alpha;
    let mut acc = RistrettoPoint::identity();
    for m in 0..=most {
        if acc == m_g {
            return Some(m);
        }
        acc += G;
    }
    None
}

/// A point as 64 hex digits (its Ristretto encoding); and back, `None` when not one.
pub fn point_hex(p: &RistrettoPoint) -> String {
    hex::encode(p.compress().as_bytes())
}

pub fn point_from_hex(s: &str) -> Option<RistrettoPoint> {
    let bytes: [u8; 32] = hex::decode(s).ok()?.try_into().ok()?;
    CompressedRistretto(bytes).decompress()
}

/// A scalar as 64 hex digits (32 bytes, little-endian); and back, `None` when not one
/// reduced modulo the group's order.
pub fn scalar_hex(s: &Scalar) -> String {
    hex::encode(s.as_bytes())
}

pub fn scalar_from_hex(s: &str) -> Option<Scalar> {
    let bytes: [u8; 32] = hex::decode(s).ok()?.try_into().ok()?;
    Scalar::from_canonical_bytes(bytes).into()
}

/// What a proof of a ballot in round `ballot` of `item`, cast for `member`, is bound to.
pub fn ballot_context(item: &str, ballot: usize, member: &str) -> Vec<u8> {
    format!("{item}/{ballot}/{member}").into_bytes()
}

/// What trustee `member`'s share of the decryption of a round's tally is bound to.
pub fn decryption_context(item: &str, ballot: usize, member: &str) -> Vec<u8> {
    format!("decryption/{item}/{ballot}/{member}").into_bytes()
}

/// A ballot's ciphertexts as one word (each `alpha` then `beta`, in hex): how a vote row
/// and the log hold a secret vote, and what its tracker is the hash of.
pub fn encode_choices(choices: &[Ciphertext]) -> String {
    choices
        .iter()
        .map(|c| point_hex(&c.alpha) + &point_hex(&c.beta))
        .collect()
}

/// The `n` ciphertexts of a word [`encode_choices`] made; `None` when it is not one.
pub fn decode_choices(word: &str, n: usize) -> Option<Vec<Ciphertext>> {
    if word.len() != n * 128 || !word.is_ascii() {
        return None;
    }
    (0..n)
        .map(|i| {
            Some(Ciphertext {
                alpha: point_from_hex(&word[i * 128..i * 128 + 64])?,
                beta: point_from_hex(&word[i * 128 + 64..i * 128 + 128])?,
            })
        })
        .collect()
}

/// The tracker of the ballot whose ciphertexts are `choices`: see [`Ballot::tracker`].
pub fn tracker(choices: &[Ciphertext]) -> String {
    let mut h = sha2::Sha256::new();
    for c in choices {
        h.update(c.alpha.compress().as_bytes());
        h.update(c.beta.compress().as_bytes());
    }
    hex::encode(h.finalize())
}

/// The sum, choice by choice, of ballots' ciphertexts: each choice's count, encrypted.
pub fn tally<'a>(n: usize, ballots: impl IntoIterator<Item = &'a [Ciphertext]>) -> Vec<Ciphertext> {
    let mut sum = vec![Ciphertext::zero(); n];
    for b in ballots {
        for (s, c) in sum.iter_mut().zip(b) {
            *s = s.add(c);
        }
    }
    sum
}

mod hex_point {
    use super::*;

    pub fn serialize<S: serde::Serializer>(p: &RistrettoPoint, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&point_hex(p))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RistrettoPoint, D::Error> {
        let text = String::deserialize(d)?;
        point_from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("not a Ristretto255 point in 64 hex digits"))
    }
}

mod hex_scalar {
    use super::*;

    pub fn serialize<S: serde::Serializer>(x: &Scalar, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&scalar_hex(x))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        let text = String::deserialize(d)?;
        scalar_from_hex(&text).ok_or_else(|| {
            serde::de::Error::custom("not a scalar in 64 hex digits, reduced, little-endian")
        })
    }
}

/// A fixed stream of bytes (SHA-512 of a counter): the same run gives the same ballots,
/// so that a simulation or a test replays. Not random: never for a real ballot or key.
pub struct Stream(pub u64);

impl RngCore for Stream {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(64) {
            self.0 += 1;
            let block = Sha512::digest(self.0.to_le_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Only so that the simulator and tests can drive the same functions as the daemon.
impl CryptoRng for Stream {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> Stream {
        Stream(7)
    }

    /// Three trustees, any two of which decrypt: their dealings, key shares and the key.
    fn trustees(rng: &mut Stream) -> (Vec<Vec<RistrettoPoint>>, Vec<Scalar>, RistrettoPoint) {
        let dealings: Vec<Dealing> = (0..3).map(|_| Dealing::new(rng, 2)).collect();
        let published: Vec<Vec<RistrettoPoint>> =
            dealings.iter().map(Dealing::commitments).collect();
        let shares: Vec<Scalar> = (1..=3u64)
            .map(|j| {
                dealings
                    .iter()
                    .zip(&published)
                    .map(|(d, c)| {
                        let s = d.share_for(j);
                        assert!(share_checks(c, j, &s), "a dealt share checks");
                        s
                    })
                    .sum()
            })
            .collect();
        let pk = election_key(&published);
        (published, shares, pk)
    }

    const CHAIR: Shape = Shape {
        choices: 3, // two candidates and blank
        seats: 1,
        blank: true,
    };

    #[test]
    fn ballots_prove_their_marks_are_allowed_and_nothing_else() {
        let mut rng = rng();
        let (_, _, pk) = trustees(&mut rng);
        let ctx = b"item-1/0/AAA";
        for marks in [
            [true, false, false],
            [false, true, false],
            [false, false, true],
        ] {
            let b = Ballot::encrypt(&mut rng, ctx, &pk, &CHAIR, &marks).unwrap();
            assert!(b.verify(ctx, &pk, &CHAIR));
            assert!(
                !b.verify(b"item-1/0/BBB", &pk, &CHAIR),
                "bound to its member"
            );
        }
        for marks in [
            [true, true, false],
            [false, false, false],
            [true, false, true],
        ] {
            assert!(Ballot::encrypt(&mut rng, ctx, &pk, &CHAIR, &marks).is_none());
        }
        // Three seats: one to three candidates, or blank alone.
        let committee = Shape {
            choices: 5,
            seats: 3,
            blank: true,
        };
        let ok = [
            [true, true, true, false, false],
            [false, true, false, false, false],
            [false, false, false, false, true],
        ];
        for marks in ok {
            let b = Ballot::encrypt(&mut rng, ctx, &pk, &committee, &marks).unwrap();
            assert!(b.verify(ctx, &pk, &committee));
        }
        let bad = [
            [true, true, true, true, false],
            [true, false, false, false, true],
        ];
        for marks in bad {
            assert!(Ballot::encrypt(&mut rng, ctx, &pk, &committee, &marks).is_none());
        }
    }

    #[test]
    fn a_tampered_ballot_or_proof_does_not_verify() {
        let mut rng = rng();
        let (_, _, pk) = trustees(&mut rng);
        let ctx = b"item-1/0/AAA";
        let b = Ballot::encrypt(&mut rng, ctx, &pk, &CHAIR, &[true, false, false]).unwrap();
        // A ciphertext changed to count twice.
        let mut twice = b.clone();
        twice.choices[0].beta += G;
        assert!(!twice.verify(ctx, &pk, &CHAIR));
        // Ciphertexts swapped without their proofs.
        let mut swapped = b.clone();
        swapped.choices.swap(0, 1);
        assert!(!swapped.verify(ctx, &pk, &CHAIR));
        // And with their proofs: a vote for one candidate made a vote for another.
        let mut moved = swapped.clone();
        moved.proofs.swap(0, 1);
        assert!(!moved.verify(ctx, &pk, &CHAIR));
        let mut proof = b.clone();
        proof.proofs[0].branches[1].response += Scalar::ONE;
        assert!(!proof.verify(ctx, &pk, &CHAIR));
        let mut overall = b.clone();
        overall.overall.branches[0].challenge += Scalar::ONE;
        assert!(!overall.verify(ctx, &pk, &CHAIR));
        assert_ne!(b.tracker(), twice.tracker());
    }

    #[test]
    fn two_of_three_trustees_decrypt_the_sum_and_one_cannot() {
        let mut rng = rng();
        let (published, shares, pk) = trustees(&mut rng);
        // Five ballots: 3 for the first candidate, 1 for the second, 1 blank.
        let votes = [0usize, 0, 1, 2, 0];
        let mut sums = [Ciphertext::zero(); 3];
        for (i, v) in votes.iter().enumerate() {
            let ctx = format!("item-1/0/M{i}");
            let marks: Vec<bool> = (0..3).map(|c| c == *v).collect();
            let b = Ballot::encrypt(&mut rng, ctx.as_bytes(), &pk, &CHAIR, &marks).unwrap();
            assert!(b.verify(ctx.as_bytes(), &pk, &CHAIR));
            for (s, c) in sums.iter_mut().zip(&b.choices) {
                *s = s.add(c);
            }
        }
        let ctx = b"item-1/0/tally";
        let counts: Vec<Option<u64>> = sums
            .iter()
            .map(|c| {
                let parts: Vec<(u64, RistrettoPoint)> = [1u64, 3]
                    .iter()
                    .map(|&j| {
                        let d = PartialDecryption::new(&mut rng, ctx, &shares[j as usize - 1], c);
                        assert!(d.verify(ctx, &public_share(&published, j), c));
                        assert!(
                            !d.verify(ctx, &public_share(&published, 2), c),
                            "not trustee 2's"
                        );
                        (j, d.share)
                    })
                    .collect();
                assert_eq!(decrypt(c, &parts[..1], 5), None, "one trustee alone");
                decrypt(c, &parts, 5)
            })
            .collect();
        assert_eq!(counts, [Some(3), Some(1), Some(1)]);
        // A tampered partial decryption fails its proof.
        let mut d = PartialDecryption::new(&mut rng, ctx, &shares[0], &sums[0]);
        d.share += G;
        assert!(!d.verify(ctx, &public_share(&published, 1), &sums[0]));
    }

    #[test]
    fn points_read_back_from_hex_and_garbage_is_refused() {
        let p = Scalar::from(42u64) * G;
        assert_eq!(point_from_hex(&point_hex(&p)), Some(p));
        assert_eq!(point_from_hex("zz"), None);
        assert_eq!(point_from_hex(&"ff".repeat(32)), None);
    }
}
