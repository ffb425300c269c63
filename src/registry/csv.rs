//! SPEC §9 CSV export: RFC 4180 (CRLF records, a header row, fields with
//! `,` `"` CR or LF quoted and `"` doubled), UTF-8.

use super::model::{rfc3339, Record};

/// The columns of SPEC §9, in order.
pub const COLUMNS: [&str; 14] = [
    "id",
    "kind",
    "name",
    "status",
    "serial",
    "subject",
    "not_before",
    "not_after",
    "contact_name",
    "contact_email",
    "certificate_email",
    "system_name",
    "revoked_at",
    "revocation_reason",
];

/// The export of `records` at `now` (status EXPIRED computed).
pub fn export(records: &[Record], now: i64) -> String {
    let mut out = String::new();
    line(&mut out, COLUMNS.iter().map(|c| (*c).to_owned()));
    for r in records {
        let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_default();
        line(
            &mut out,
            [
                r.id.to_string(),
                r.kind.as_str().into(),
                r.name.clone(),
                r.status(now).as_str().into(),
                r.serial.clone(),
                r.subject.clone(),
                time(r.not_before),
                time(r.not_after),
                r.contact_name.clone(),
                r.contact_email.clone(),
                r.certificate_email.clone(),
                r.system_name.clone(),
                time(r.revoked_at),
                r.revocation_reason
                    .map(|x| x.name().to_owned())
                    .unwrap_or_default(),
            ],
        );
    }
    out
}

fn line(out: &mut String, fields: impl IntoIterator<Item = String>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&escape(&field));
    }
    out.push_str("\r\n");
}

/// RFC 4180 §2 rules 6 and 7.
fn escape(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_what_rfc_4180_asks() {
        assert_eq!(super::escape("plain"), "plain");
        assert_eq!(super::escape("a,b"), "\"a,b\"");
        assert_eq!(super::escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::escape("two\nlines"), "\"two\nlines\"");
    }
}
