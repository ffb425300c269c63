//! Subject names of the qualified profiles.

use const_oid::db::rfc4519;
use const_oid::ObjectIdentifier;
use der::asn1::{PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Any, Tag};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use super::oid;

/// Builds an `RDNSequence` of single-valued RDNs, in order.
#[derive(Default)]
pub struct NameBuilder(Vec<RelativeDistinguishedName>);

impl NameBuilder {
    /// A PrintableString attribute (X.520: countryName, serialNumber).
    pub fn printable(mut self, oid: ObjectIdentifier, value: &str) -> der::Result<Self> {
        let value = Any::from(PrintableStringRef::new(value)?);
        self.push(oid, value)?;
        Ok(self)
    }

    /// A DirectoryString attribute, as UTF8String (RFC 5280 §4.1.2.6).
    pub fn utf8(mut self, oid: ObjectIdentifier, value: &str) -> der::Result<Self> {
        let value = Any::new(Tag::Utf8String, Utf8StringRef::new(value)?.as_bytes())?;
        self.push(oid, value)?;
        Ok(self)
    }

    fn push(&mut self, oid: ObjectIdentifier, value: Any) -> der::Result<()> {
        let atv = AttributeTypeAndValue { oid, value };
        self.0
            .push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
        Ok(())
    }

    pub fn build(self) -> Name {
        RdnSequence(self.0)
    }
}

/// Why `value` may not be a name or a signature field: the first control
/// character (general category Cc), bidirectional control (UAX #9 §2.1 to
/// §2.7: U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069), other
/// format character (Cf, e.g. zero-width U+200B..U+200D, U+2060, U+FEFF) or
/// line or paragraph separator, and what it is. Such characters make a
/// name display as something else than what it is.
pub fn forbidden_character(value: &str) -> Option<String> {
    let c = value
        .chars()
        .find(|&c| c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}'))?;
    let what = match c {
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => "a bidirectional control (Unicode UAX #9)",
        c if c.is_control() => "a control character",
        c if is_format(c) => "an invisible format character (Unicode category Cf)",
        _ => "a line or paragraph separator",
    };
    Some(format!("U+{:04X}, {what}", u32::from(c)))
}

/// Unicode general category Cf (UnicodeData.txt, Unicode 16.0).
fn is_format(c: char) -> bool {
    matches!(u32::from(c),
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Unicode Normalization Form C (UAX #15): one encoding per name, so that a
/// decomposed "A + combining ring" and "Å" give the same certificate.
pub fn nfc(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    value.nfc().collect()
}

/// EN 319 412-1 §5.1.4: `NTR` + country + `-` + the national register's id.
pub fn organization_identifier(cvr: &str) -> String {
    format!("NTRDK-{cvr}")
}

/// EN 319 412-2 §4.2.4 natural person: C, O, organizationIdentifier of the
/// employer, surname, givenName, serialNumber (EN 319 412-1 §5.1.3) and CN.
pub fn natural_person(
    given_name: &str,
    surname: &str,
    serial_number: &str,
    organization_name: &str,
    cvr: &str,
) -> der::Result<Name> {
    Ok(NameBuilder::default()
        .printable(rfc4519::C, "DK")?
        .utf8(rfc4519::O, organization_name)?
        .utf8(
            oid::AT_ORGANIZATION_IDENTIFIER,
            &organization_identifier(cvr),
        )?
        .utf8(rfc4519::SN, surname)?
        .utf8(rfc4519::GIVEN_NAME, given_name)?
        .printable(rfc4519::SERIAL_NUMBER, serial_number)?
        .utf8(rfc4519::CN, &format!("{given_name} {surname}"))?
        .build())
}

/// EN 319 412-3 §4.2.1 legal person: C, O, organizationIdentifier, CN; no
/// personal name.
pub fn legal_person(organization_name: &str, cvr: &str, common_name: &str) -> der::Result<Name> {
    Ok(NameBuilder::default()
        .printable(rfc4519::C, "DK")?
        .utf8(rfc4519::O, organization_name)?
        .utf8(
            oid::AT_ORGANIZATION_IDENTIFIER,
            &organization_identifier(cvr),
        )?
        .utf8(rfc4519::CN, common_name)?
        .build())
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn bidi_zero_width_and_control_characters_are_named() {
        for (value, expect) in [
            ("Karen\u{202E}nexilB", "U+202E, a bidirectional control"),
            ("\u{2067}Karen", "U+2067, a bidirectional control"),
            ("Ka\u{200B}ren", "U+200B, an invisible format"),
            ("Ka\u{FEFF}ren", "U+FEFF, an invisible format"),
            ("Ka\u{200F}ren", "U+200F, a bidirectional control"),
            ("Ka\u{061C}ren", "U+061C, a bidirectional control"),
            ("Ka\nren", "U+000A, a control character"),
            ("Ka\u{2028}ren", "U+2028, a line or paragraph separator"),
        ] {
            let found = forbidden_character(value).unwrap_or_default();
            assert!(found.starts_with(expect), "{value:?}: {found}");
        }
        assert_eq!(forbidden_character("Søren Ærø-Åberg Müller"), None);
    }

    #[test]
    fn nfc_composes() {
        assert_eq!(nfc("A\u{30A}se"), "\u{C5}se");
    }
}
