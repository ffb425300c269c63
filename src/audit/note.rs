//! C2SP signed-note (c2sp.org/signed-note) with Ed25519 keys, and the
//! C2SP tlog-checkpoint body it carries (c2sp.org/tlog-checkpoint).
//!
//! A note is text of one or more `\n`-terminated lines, a blank line, then
//! signature lines `— <name> <base64(key id || signature)>`; the signature
//! covers the text including its final newline. An Ed25519 key's id is the
//! first 4 bytes of SHA-256(name || "\n" || 0x01 || public key), and its
//! verifier key is `<name>+<hex key id>+<base64(0x01 || public key)>`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// signed-note §"Signatures": the Ed25519 signature type byte.
const ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed verifier key")]
    Vkey,
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("no signature by {0} on the note")]
    Unsigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// An Ed25519 note verifier: name, key id, public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    pub name: String,
    pub key_id: [u8; 4],
    pub public_key: [u8; 32],
}

impl NoteVerifier {
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        // Key names are non-empty, with no spaces, '+' or newlines.
        if name.is_empty() || name.contains([' ', '+', '\n', '\t']) {
            return Err(NoteError::Vkey);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            public_key,
        })
    }

    /// `<name>+<hex key id>+<base64(0x01 || key)>`.
    pub fn vkey(&self) -> String {
        let mut typed = vec![ED25519];
        typed.extend_from_slice(&self.public_key);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            BASE64.encode(typed)
        )
    }

    pub fn from_vkey(text: &str) -> Result<Self, NoteError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Vkey);
        };
        let typed = BASE64.decode(key).map_err(|_| NoteError::Vkey)?;
        let [ED25519, public_key @ ..] = typed.as_slice() else {
            return Err(NoteError::Vkey);
        };
        let public_key = <[u8; 32]>::try_from(public_key).map_err(|_| NoteError::Vkey)?;
        let verifier = Self::new(name, public_key)?;
        if hex::encode(verifier.key_id) != id {
            return Err(NoteError::Vkey);
        }
        Ok(verifier)
    }

    /// The signature line for `signature` over a note's text.
    pub fn signature_line(&self, signature: &[u8; 64]) -> String {
        let mut blob = self.key_id.to_vec();
        blob.extend_from_slice(signature);
        format!("{DASH}{} {}\n", self.name, BASE64.encode(blob))
    }

    /// The text of `note` if one of its lines is a valid signature by this
    /// key (unknown signers' lines are ignored, as signed-note says).
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let split = note
            .find("\n\n")
            .ok_or(NoteError::Malformed("no blank line"))?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        let mut mine = None;
        for line in signatures.lines() {
            let line = line
                .strip_prefix(DASH)
                .ok_or(NoteError::Malformed("a signature line without the em dash"))?;
            let (name, blob) = line
                .split_once(' ')
                .ok_or(NoteError::Malformed("a signature line without a signature"))?;
            let blob = BASE64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if name == self.name && blob.len() == 68 && blob[..4] == self.key_id {
                mine = Some(blob);
            }
        }
        let blob = mine.ok_or_else(|| NoteError::Unsigned(self.name.clone()))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.public_key)
            .verify(text.as_bytes(), &blob[4..])
            .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        Ok(text)
    }
}

/// signed-note: SHA-256(name || "\n" || 0x01 || key)[:4].
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([ED25519])
        .chain_update(public_key)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A tlog-checkpoint body: origin, tree size, root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// `<origin>\n<decimal size>\n<base64 root>\n` (no extension lines).
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::Checkpoint("fewer than three lines"));
        };
        // No leading zeroes (tlog-checkpoint: "ASCII decimal").
        if origin.is_empty() || size.is_empty() || (size.len() > 1 && size.starts_with('0')) {
            return Err(NoteError::Checkpoint("empty origin or malformed size"));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::Checkpoint("size is not a number"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|r| <Hash>::try_from(r).ok())
            .ok_or(NoteError::Checkpoint("root is not 32 bytes of base64"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn key() -> (Ed25519KeyPair, NoteVerifier) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        (
            pair,
            NoteVerifier::new("qsign.example/audit", public).unwrap(),
        )
    }

    fn signed(pair: &Ed25519KeyPair, verifier: &NoteVerifier, text: &str) -> String {
        let signature: [u8; 64] = pair.sign(text.as_bytes()).as_ref().try_into().unwrap();
        format!("{text}\n{}", verifier.signature_line(&signature))
    }

    #[test]
    fn a_signed_checkpoint_opens_and_parses() {
        let (pair, verifier) = key();
        let checkpoint = Checkpoint {
            origin: "qsign.example/audit".into(),
            size: 42,
            root: [9; 32],
        };
        let note = signed(&pair, &verifier, &checkpoint.text());
        let text = verifier.open(&note).unwrap();
        assert_eq!(Checkpoint::parse(text).unwrap(), checkpoint);
        let again = NoteVerifier::from_vkey(&verifier.vkey()).unwrap();
        assert_eq!(again, verifier);
    }

    #[test]
    fn tampering_or_a_stranger_is_refused() {
        let (pair, verifier) = key();
        let note = signed(&pair, &verifier, "qsign.example/audit\n42\nAAAA\n");
        let forged = note.replace("42", "43");
        assert!(matches!(
            verifier.open(&forged),
            Err(NoteError::BadSignature(_))
        ));
        let other = NoteVerifier::new("other.example", verifier.public_key).unwrap();
        assert!(matches!(other.open(&note), Err(NoteError::Unsigned(_))));
        assert!(NoteVerifier::from_vkey("a+00000000+AQ==").is_err());
    }

    #[test]
    fn key_id_follows_signed_note() {
        // Go's golang.org/x/mod/sumdb/note example: the vkey of
        // PeterNeumann's key.
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let verifier = NoteVerifier::from_vkey(vkey).unwrap();
        assert_eq!(verifier.vkey(), vkey);
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\n\
                    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        assert!(verifier.open(note).is_ok());
    }
}
