//! Object identifiers that `const-oid` lacks, under the standards' names.

use const_oid::ObjectIdentifier as Oid;

/// X.520 organizationIdentifier (EN 319 412-1 §5.1.4).
pub const AT_ORGANIZATION_IDENTIFIER: Oid = Oid::new_unwrap("2.5.4.97");

/// RFC 3739 §3.2.6 qcStatements extension.
pub const PE_QC_STATEMENTS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.3");
/// RFC 3739 §3.2.6.1 id-qcs-pkixQCSyntax-v2 (semantics information).
pub const QCS_PKIX_QC_SYNTAX_V2: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.11.2");

/// EN 319 412-5 §4.2.1 esi4-qcStatement-1: QcCompliance.
pub const ETSI_QCS_QC_COMPLIANCE: Oid = Oid::new_unwrap("0.4.0.1862.1.1");
/// EN 319 412-5 §4.2.2 esi4-qcStatement-4: QcSSCD.
pub const ETSI_QCS_QC_SSCD: Oid = Oid::new_unwrap("0.4.0.1862.1.4");
/// EN 319 412-5 §4.3.4 esi4-qcStatement-5: QcPDS.
pub const ETSI_QCS_QC_PDS: Oid = Oid::new_unwrap("0.4.0.1862.1.5");
/// EN 319 412-5 §4.2.3 esi4-qcStatement-6: QcType.
pub const ETSI_QCS_QC_TYPE: Oid = Oid::new_unwrap("0.4.0.1862.1.6");
/// QcType id-etsi-qct-esign.
pub const ETSI_QCT_ESIGN: Oid = Oid::new_unwrap("0.4.0.1862.1.6.1");
/// QcType id-etsi-qct-eseal.
pub const ETSI_QCT_ESEAL: Oid = Oid::new_unwrap("0.4.0.1862.1.6.2");

/// EN 319 412-1 §5.1.3 id-etsi-qcs-semanticsId-Natural.
pub const ETSI_QCS_SEMANTICS_ID_NATURAL: Oid = Oid::new_unwrap("0.4.0.194121.1.1");
/// EN 319 412-1 §5.1.4 id-etsi-qcs-semanticsId-Legal.
pub const ETSI_QCS_SEMANTICS_ID_LEGAL: Oid = Oid::new_unwrap("0.4.0.194121.1.2");
/// EN 319 412-1 §5.2 id-etsi-ext-valassured-ST-certs.
pub const ETSI_EXT_VALASSURED_ST_CERTS: Oid = Oid::new_unwrap("0.4.0.194121.2.1");

/// EN 319 411-2 §5.3 QCP-n-qscd (natural person, key in a QSCD).
pub const QCP_N_QSCD: Oid = Oid::new_unwrap("0.4.0.194112.1.2");
/// EN 319 411-2 §5.3 QCP-l-qscd (legal person, key in a QSCD).
pub const QCP_L_QSCD: Oid = Oid::new_unwrap("0.4.0.194112.1.3");

/// RFC 9608 §2 id-ce-noRevAvail.
pub const CE_NO_REV_AVAIL: Oid = Oid::new_unwrap("2.5.29.56");
