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
