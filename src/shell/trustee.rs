//! `councild trustee LINK --key FILE`: a trustee's own part of a secret election, run on
//! the trustee's computer. Each run does every step that can be done now and says what it
//! waits for; running it again is always safe.
//!
//! 1. **Key**: a box key pair (X25519) is made and kept in FILE; its public half goes to the
//!    board, so that the other trustees can encrypt their shares to it.
//! 2. **Deal**: once every trustee has a box key, a random polynomial of degree `needed - 1`
//!    (kept in FILE), its commitments, and each other trustee's share, encrypted to them
//!    (`crypto_box`: X25519, XSalsa20-Poly1305; the daemon carries them, cannot read them).
//! 3. **Ready**: once every trustee has dealt, the shares dealt to this trustee are
//!    decrypted and checked against their dealers' commitments; their sum is this trustee's
//!    key share, kept in FILE (the polynomial is then dropped).
//! 4. **Decrypt**: for each closed round whose tally waits, a decryption share of each
//!    choice's sum, with its proof. Nothing else is ever decrypted.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use crypto_box::aead::{Aead, AeadCore, OsRng};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::secret::{self, Dealing, PartialDecryption};

/// What the key file holds: private to the trustee.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    item: String,
    member: String,
    /// The box key's secret half (hex).
    box_secret: String,
    /// The dealt polynomial's coefficients (hex), from dealing until the shares check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    polynomial: Vec<String>,
    /// This trustee's share of the election key (hex), once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_share: Option<String>,
}

impl KeyFile {
    fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        crate::durable::write_file(path, &bytes, true)
            .with_context(|| format!("cannot write the key file {}", path.display()))
    }

    fn secret(&self) -> Result<SecretKey> {
        let bytes: [u8; 32] = hex::decode(&self.box_secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("the key file's box key is damaged"))?;
        Ok(SecretKey::from(bytes))
    }
}

fn public_key(hex_key: &str) -> Result<PublicKey> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("a trustee's box key on the board is not 32 bytes of hex"))?;
    Ok(PublicKey::from(bytes))
}

fn seal_share(
    to: &PublicKey,
    from: &SecretKey,
    share: &curve25519_dalek::Scalar,
) -> Result<String> {
    let b = SalsaBox::new(to, from);
    let nonce = SalsaBox::generate_nonce(&mut OsRng);
    let sealed = b
        .encrypt(&nonce, share.as_bytes().as_slice())
        .map_err(|_| anyhow!("a share could not be encrypted"))?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

fn open_share(from: &PublicKey, to: &SecretKey, text: &str) -> Option<curve25519_dalek::Scalar> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    if bytes.len() < 24 {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(24);
    let plain = SalsaBox::new(from, to).decrypt(nonce.into(), sealed).ok()?;
    secret::scalar_from_hex(&hex::encode(plain))
}

/// Runs every step due now; returns what was done and what it waits for, in lines.
pub async fn run(link: &str, key_path: &Path, compared: Option<&str>) -> Result<Vec<String>> {
    let http = reqwest::Client::new();
    let get = || async {
        let answer = http
            .get(link)
            .send()
            .await
            .context("cannot reach the board")?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "the board answers {status}: {}",
                body["error"].as_str().unwrap_or("")
            );
        }
        Ok::<Value, anyhow::Error>(body)
    };
    let post = |step: Value| {
        let http = http.clone();
        async move {
            let answer = http.post(link).json(&step).send().await?;
            let status = answer.status();
            let body: Value = answer.json().await.unwrap_or_default();
            if !status.is_success() {
                bail!(
                    "the board refused step `{}` ({status}): {}",
                    step["step"].as_str().unwrap_or(""),
                    body["error"].as_str().unwrap_or("")
                );
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    let mut said = Vec::new();
    let mut board = get().await?;
    let item = board["item"].as_str().unwrap_or_default().to_string();
    let member = board["member"].as_str().unwrap_or_default().to_string();
    let j = board["number"].as_u64().unwrap_or(0);
    let needed = board["needed"].as_u64().unwrap_or(0) as usize;
    // The trustees are numbered 1 to n in order, this one among them, and fewer than all
    // are needed: a share is never dealt for 0 (which would give away the dealer's secret).
    let numbers: Vec<u64> = board["trustees"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["number"].as_u64().unwrap_or(0))
        .collect();
    let n = numbers.len() as u64;
    let numbered = numbers.iter().zip(1..).all(|(a, b)| *a == b);
    if !numbered || !(1..=n).contains(&j) || needed < 1 || needed as u64 >= n {
        bail!(
            "the board does not describe the trustees as they must be (numbered 1 to n, fewer than all needed): not going on"
        );
    }
    let mut file = match std::fs::read(key_path) {
        Ok(bytes) => {
            let f: KeyFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a trustee's key file", key_path.display()))?;
            if f.item != item || f.member != member {
                bail!(
                    "{} is the key file of {} for {}, not of {member} for {item}",
                    key_path.display(),
                    f.member,
                    f.item
                );
            }
            f
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = SecretKey::generate(&mut OsRng);
            let f = KeyFile {
                item: item.clone(),
                member: member.clone(),
                box_secret: hex::encode(secret.to_bytes()),
                polynomial: Vec::new(),
                key_share: None,
            };
            f.save(key_path)?;
            said.push(format!("made a new key file: {}", key_path.display()));
            f
        }
        Err(e) => return Err(e).context(format!("cannot read {}", key_path.display())),
    };
    let my_secret = file.secret()?;
    let my_public = hex::encode(my_secret.public_key().as_bytes());
    let me = |board: &Value| -> Value {
        board["trustees"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["member"] == member.as_str()).cloned())
            .unwrap_or_default()
    };
    // 1. The box key.
    if board["key"].is_null() {
        match me(&board)["box_key"].as_str() {
            None => {
                board = post(json!({"step": "key", "key": my_public})).await?;
                said.push("gave this trustee's box key".into());
            }
            Some(k) if k != my_public => bail!(
                "the board has another box key for {member}: {} is not the key file this trustee began with",
                key_path.display()
            ),
            Some(_) => {}
        }
    }
    let trustees = board["trustees"].as_array().cloned().unwrap_or_default();
    let all = |field: &str| {
        trustees
            .iter()
            .all(|t| !t[field].is_null() && t[field] != json!([]))
    };
    // 2. The dealing: only to the box keys every trustee has seen (their digest, compared
    // between the trustees, by telephone say, and given back with `--keys`).
    let to_deal =
        board["key"].is_null() && all("box_key") && me(&board)["commitments"] == json!([]);
    let digest = keys_digest(&trustees);
    if to_deal && compared != Some(digest.as_str()) {
        if let Some(other) = compared {
            bail!(
                "the trustees' box keys on the board are not the ones compared ({other}): they now read {digest}. Do not deal; tell the Secretariat and the other trustees"
            );
        }
        said.push(format!(
            "every trustee has a box key; their digest is {digest}. Compare it with the other trustees (by telephone, say): when it is the same for all, deal with\n  councild trustee {link} --key {} --keys {digest}",
            key_path.display()
        ));
        return Ok(said);
    }
    if to_deal {
        if file.polynomial.is_empty() {
            let d = Dealing::new(&mut OsRng, needed);
            file.polynomial = d.coefficients().iter().map(secret::scalar_hex).collect();
            file.save(key_path)?;
        }
        let d = dealing(&file)?;
        let mut shares = BTreeMap::new();
        for t in trustees.iter().filter(|t| t["member"] != member.as_str()) {
            let to = public_key(t["box_key"].as_str().unwrap_or_default())?;
            let n = t["number"].as_u64().unwrap_or(0);
            shares.insert(
                t["member"].as_str().unwrap_or_default().to_string(),
                seal_share(&to, &my_secret, &d.share_for(n))?,
            );
        }
        let commitments: Vec<String> = d.commitments().iter().map(secret::point_hex).collect();
        board = post(json!({"step": "deal", "commitments": commitments, "shares": shares})).await?;
        said.push(format!(
            "dealt this trustee's shares, to the box keys of digest {digest}"
        ));
    }
    // 3. The check of the shares dealt to this trustee, and its key share.
    let trustees = board["trustees"].as_array().cloned().unwrap_or_default();
    let dealt = trustees.iter().all(|t| t["commitments"] != json!([]));
    if board["key"].is_null() && dealt && me(&board)["ready"] != true {
        let own = dealing(&file)?;
        let mut x = own.share_for(j);
        for t in trustees.iter().filter(|t| t["member"] != member.as_str()) {
            let dealer = t["member"].as_str().unwrap_or_default();
            let from = public_key(t["box_key"].as_str().unwrap_or_default())?;
            let commitments: Vec<_> = t["commitments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| secret::point_from_hex(c.as_str()?))
                .collect();
            let share = board["shares_for_you"][dealer]
                .as_str()
                .and_then(|s| open_share(&from, &my_secret, s))
                .filter(|s| secret::share_checks(&commitments, j, s))
                .ok_or_else(|| anyhow!(
                    "the share {dealer} dealt to {member} does not decrypt or does not fit {dealer}'s commitments: tell the Secretariat, and do not go on"
                ))?;
            x += share;
        }
        file.key_share = Some(secret::scalar_hex(&x));
        file.polynomial.clear();
        file.save(key_path)?;
        board = post(json!({"step": "ready"})).await?;
        said.push(
            "checked the shares dealt to this trustee: its key share is in the key file".into(),
        );
    }
    // 4. The decryption of each round's tally that waits for it.
    let rounds = board["rounds"].as_array().cloned().unwrap_or_default();
    for r in rounds
        .iter()
        .filter(|r| !r["tally"].is_null() && r["decrypted"] == false && r["counted"] == false)
    {
        let x = file
            .key_share
            .as_deref()
            .and_then(secret::scalar_from_hex)
            .ok_or_else(|| {
                anyhow!(
                    "{} has no key share: this trustee never became ready",
                    key_path.display()
                )
            })?;
        let ballot = r["ballot"].as_u64().unwrap_or(0) as usize;
        let tally: Vec<secret::Ciphertext> = serde_json::from_value(r["tally"].clone())
            .context("the board's tally is not ciphertexts")?;
        // Only a tally that is the sum of ballots whose proofs check, in the public
        // record, is decrypted: never a single ballot passed off as a tally.
        let base = link.split("/trustee/").next().unwrap_or_default();
        let url = format!("{base}/elections/{item}/record.json");
        let record: crate::audit::Record = http
            .get(&url)
            .send()
            .await
            .and_then(|a| a.error_for_status())
            .context("cannot read the election's public record")?
            .json()
            .await
            .context("the election's public record cannot be read")?;
        match crate::audit::checked_tally(&record, ballot) {
            Ok(sum) if sum == tally => {}
            Ok(_) => bail!(
                "will not decrypt: the board's tally is not the sum of the ballots in the public record"
            ),
            Err(why) => bail!("will not decrypt: the public record does not check: {why}"),
        }
        let context = secret::decryption_context(&item, ballot, &member);
        let shares: Vec<PartialDecryption> = tally
            .iter()
            .map(|c| PartialDecryption::new(&mut OsRng, &context, &x, c))
            .collect();
        board = post(json!({"step": "decrypt", "ballot": ballot, "shares": shares})).await?;
        said.push(format!(
            "decrypted the tally of round {}",
            r["round"].as_u64().unwrap_or(0)
        ));
    }
    match board["waiting_for"].as_str() {
        Some(w) => said.push(format!("waiting for {w}; run this again later")),
        None if board["key"].is_string() => {
            said.push(format!(
                "the election key is made: {}",
                board["key"].as_str().unwrap_or("")
            ));
        }
        None => {}
    }
    Ok(said)
}

/// What the trustees compare before dealing: the first 32 hex digits of the SHA-256 of
/// every trustee's member and box key, in order. The same for all of them unless someone
/// has shown some of them other keys.
fn keys_digest(trustees: &[Value]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for t in trustees {
        h.update(t["member"].as_str().unwrap_or_default().as_bytes());
        h.update(b":");
        h.update(t["box_key"].as_str().unwrap_or_default().as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize()).chars().take(32).collect()
}

fn dealing(file: &KeyFile) -> Result<Dealing> {
    let coefficients = file
        .polynomial
        .iter()
        .map(|c| secret::scalar_from_hex(c))
        .collect::<Option<Vec<_>>>()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| anyhow!("the key file has no dealing to check the shares with"))?;
    Ok(Dealing::from_coefficients(coefficients))
}
