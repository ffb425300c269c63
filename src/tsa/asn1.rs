//! The ASN.1 of RFC 3161 (module PKIXTSP, IMPLICIT TAGS, Appendix C) with
//! the PKIStatusInfo it borrows from RFC 4210 §5.2.3. Defined here with the
//! `der` derive rather than through another crate: a few small types, and
//! exactly the DER choices below.

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, GeneralizedTime, Int, Null, OctetString};
use der::{Any, Sequence};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extension;

// RFC 3161 §2.4.2 id-ct-TSTInfo and Appendix A id-aa-timeStampToken live
// in `signed_data`, which embeds time-stamps and needs no `tsa`.
pub use crate::signed_data::{AA_SIGNATURE_TIME_STAMP_TOKEN, CT_TST_INFO};

/// RFC 3161 §2.4.1 `MessageImprint`: the hash of the time-stamped datum.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct MessageImprint {
    pub hash_algorithm: AlgorithmIdentifierOwned,
    pub hashed_message: OctetString,
}

impl MessageImprint {
    /// A SHA-256 imprint of a digest computed elsewhere (RFC 5754 §2:
    /// parameters absent).
    pub fn sha256(digest: [u8; 32]) -> Self {
        Self {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::ID_SHA_256,
                parameters: None,
            },
            hashed_message: OctetString::new(digest.to_vec())
                .expect("32 octets always fit an OCTET STRING"),
        }
    }

    /// The SHA-256 imprint of `data`, e.g. of a SignerInfo's signature
    /// value for a signature time-stamp (RFC 3161 Appendix A).
    pub fn sha256_of(data: &[u8]) -> Self {
        Self::sha256(Sha256::digest(data).into())
    }

    /// Whether the hash algorithm is SHA-256, parameters absent or NULL
    /// (RFC 5754 §2: accept both; OpenSSL sends NULL).
    pub fn is_sha256(&self) -> bool {
        let null = Any::from(Null);
        self.hash_algorithm.oid == const_oid::db::rfc5912::ID_SHA_256
            && self
                .hash_algorithm
                .parameters
                .as_ref()
                .is_none_or(|p| *p == null)
    }

    /// The digest, when this is a well-formed SHA-256 imprint.
    pub fn sha256_digest(&self) -> Option<[u8; 32]> {
        if !self.is_sha256() {
            return None;
        }
        self.hashed_message.as_bytes().try_into().ok()
    }
}

/// RFC 3161 §2.4.1 `TimeStampReq`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TimeStampReq {
    /// v1(1).
    pub version: u8,
    pub message_imprint: MessageImprint,
    pub req_policy: Option<ObjectIdentifier>,
    pub nonce: Option<Int>,
    /// `BOOLEAN DEFAULT FALSE`: encode `None` for false (DER omits a default).
    pub cert_req: Option<bool>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

/// RFC 3161 §2.4.2 `Accuracy`; millis and micros are 1..999.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Sequence)]
pub struct Accuracy {
    pub seconds: Option<u32>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub millis: Option<u16>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub micros: Option<u16>,
}

impl Accuracy {
    /// Whole seconds plus the remaining milliseconds; `None` for zero.
    pub fn from_millis(millis: u32) -> Option<Self> {
        let accuracy = Self {
            seconds: Some(millis / 1000).filter(|s| *s > 0),
            millis: u16::try_from(millis % 1000).ok().filter(|m| *m > 0),
            micros: None,
        };
        (accuracy != Self::default()).then_some(accuracy)
    }
}

/// RFC 3161 §2.4.2 `TSTInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TstInfo {
    /// v1(1).
    pub version: u8,
    pub policy: ObjectIdentifier,
    pub message_imprint: MessageImprint,
    pub serial_number: Int,
    /// A GeneralizedTime. Kept as `Any` so that tokens of other TSAs, which
    /// often carry fractional seconds (refused by `der` 0.7's
    /// `GeneralizedTime`), still parse; qsign writes whole seconds.
    pub gen_time: Any,
    pub accuracy: Option<Accuracy>,
    /// `BOOLEAN DEFAULT FALSE`: qsign leaves it out.
    pub ordering: Option<bool>,
    pub nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

impl TstInfo {
    /// genTime, when it has no fractional seconds.
    pub fn gen_time(&self) -> Option<GeneralizedTime> {
        self.gen_time.decode_as().ok()
    }
}

/// RFC 4210 §5.2.3 `PKIStatusInfo` as RFC 3161 §2.4.2 uses it.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct PkiStatusInfo {
    /// `PKIStatus`: [`PkiStatusInfo::GRANTED`], ..., [`PkiStatusInfo::REJECTION`].
    pub status: u8,
    /// `PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String`.
    pub status_string: Option<Vec<String>>,
    pub fail_info: Option<BitString>,
}

impl PkiStatusInfo {
    pub const GRANTED: u8 = 0;
    pub const GRANTED_WITH_MODS: u8 = 1;
    pub const REJECTION: u8 = 2;

    pub fn granted() -> Self {
        Self {
            status: Self::GRANTED,
            status_string: None,
            fail_info: None,
        }
    }

    /// A rejection with one failure bit and a text a person can act on.
    pub fn rejection(failure: FailureInfo, text: &str) -> Self {
        Self {
            status: Self::REJECTION,
            status_string: Some(vec![text.to_owned()]),
            fail_info: Some(failure.bit_string()),
        }
    }

    pub fn is_granted(&self) -> bool {
        matches!(self.status, Self::GRANTED | Self::GRANTED_WITH_MODS)
    }
}

/// RFC 3161 §2.4.2 `PKIFailureInfo` bits that a TSA sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureInfo {
    /// Unrecognized or unsupported algorithm identifier.
    BadAlg = 0,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// The data submitted has the wrong format.
    BadDataFormat = 5,
    /// The TSA's time source is not available.
    TimeNotAvailable = 14,
    /// The requested TSA policy is not supported by the TSA.
    UnacceptedPolicy = 15,
    /// The requested extension is not supported by the TSA.
    UnacceptedExtension = 16,
    /// The request cannot be handled due to system failure.
    SystemFailure = 25,
}

impl FailureInfo {
    /// The named BIT STRING with only this bit set; X.690 §11.2.2: DER drops
    /// trailing zero bits, so the string ends at this bit.
    pub fn bit_string(self) -> BitString {
        let bit = self as usize;
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        let unused = 7 - (bit % 8) as u8;
        BitString::new(unused, bytes).expect("at most 7 unused bits in a non-empty string")
    }
}

/// RFC 3161 §2.4.2 `TimeStampResp`; the token is a DER `ContentInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TimeStampResp {
    pub status: PkiStatusInfo,
    pub time_stamp_token: Option<Any>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    #[test]
    fn failure_bits_are_minimal_der() {
        let der = |f: FailureInfo| f.bit_string().to_der().unwrap();
        assert_eq!(der(FailureInfo::BadAlg), [0x03, 0x02, 0x07, 0x80]);
        assert_eq!(der(FailureInfo::BadDataFormat), [0x03, 0x02, 0x02, 0x04]);
        assert_eq!(
            der(FailureInfo::SystemFailure),
            [0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40]
        );
    }

    #[test]
    fn accuracy_in_seconds_and_millis() {
        let one = Accuracy::from_millis(1000).unwrap();
        assert_eq!((one.seconds, one.millis), (Some(1), None));
        assert_eq!(one.to_der().unwrap(), [0x30, 0x03, 0x02, 0x01, 0x01]);
        let half = Accuracy::from_millis(500).unwrap();
        assert_eq!(half.to_der().unwrap(), [0x30, 0x04, 0x80, 0x02, 0x01, 0xf4]);
        assert_eq!(Accuracy::from_millis(0), None);
        let mixed = Accuracy::from_millis(1250).unwrap();
        assert_eq!(Accuracy::from_der(&mixed.to_der().unwrap()).unwrap(), mixed);
    }

    #[test]
    fn openssl_query_decodes() {
        // `openssl ts -query -digest 1111...11 -sha256 -cert -no_nonce`:
        // SHA-256 with NULL parameters, certReq TRUE, no nonce.
        let query = hex::decode(
            "30390201013031300d060960864801650304020105000420\
             1111111111111111111111111111111111111111111111111111111111111111\
             0101ff",
        )
        .unwrap();
        let request = TimeStampReq::from_der(&query).unwrap();
        assert_eq!(request.version, 1);
        assert_eq!(request.cert_req, Some(true));
        assert_eq!(request.message_imprint.sha256_digest(), Some([0x11; 32]));
        assert_eq!(request.nonce, None);
    }
}
