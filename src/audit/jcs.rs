//! RFC 8785 JSON Canonicalization Scheme for the values audit records use:
//! objects, arrays, strings, booleans, null and integers within ±2^53 (the
//! I-JSON range, RFC 7493 §2.2). Written by hand: the value types are few,
//! and a float would need the ECMAScript number serialiser (RFC 8785 §3.2.2.3),
//! which records never need, so floats are refused.

use serde_json::Value;

/// Why a value has no canonical form here.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JcsError {
    #[error("a number that is not an integer within ±2^53: {0}")]
    Number(String),
}

const MAX_SAFE: u64 = (1 << 53) - 1;

/// The canonical UTF-8 bytes of `value` (RFC 8785 §3.2).
pub fn canonical(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // §3.2.3: members sorted by their names' UTF-16 code units.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// §3.2.2.3 for integers: plain decimal, no exponent, no "-0".
fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), JcsError> {
    let text = if let Some(u) = n.as_u64().filter(|u| *u <= MAX_SAFE) {
        u.to_string()
    } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= MAX_SAFE) {
        i.to_string()
    } else {
        return Err(JcsError::Number(n.to_string()));
    };
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// §3.2.2.2: the ECMAScript JSON.stringify escapes, everything else as is.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buffer = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(value: Value) -> String {
        String::from_utf8(canonical(&value).unwrap()).unwrap()
    }

    #[test]
    fn members_are_sorted_by_utf16_and_whitespace_goes() {
        // RFC 8785 §3.2.3's sorting example: "\r" < "1" < "\u0080" < ...
        // < "\ud83d\ude00" (U+1F600) < "\ufb33" in UTF-16 order.
        let value = json!({
            "\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{80}": "Control", "\u{f6}": "Latin Small Letter O With Diaeresis"
        });
        let names: Vec<String> =
            match serde_json::from_str::<serde_json::Map<String, Value>>(&text(value.clone())) {
                Ok(_) => {
                    let t = text(value);
                    [
                        "\\r",
                        "1",
                        "\u{80}",
                        "\u{f6}",
                        "\u{20ac}",
                        "\u{1f600}",
                        "\u{fb33}",
                    ]
                    .iter()
                    .map(|n| t.find(&format!("\"{n}\"")).unwrap().to_string())
                    .collect()
                }
                Err(e) => panic!("{e}"),
            };
        let positions: Vec<usize> = names.iter().map(|p| p.parse().unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn strings_escape_as_ecmascript() {
        assert_eq!(
            text(json!({"b": [1, -2, "x\u{1}\"\\\n/é"], "a": null, "c": true})),
            "{\"a\":null,\"b\":[1,-2,\"x\\u0001\\\"\\\\\\n/é\"],\"c\":true}"
        );
    }

    #[test]
    fn floats_and_unsafe_integers_are_refused() {
        assert!(canonical(&json!(1.5)).is_err());
        assert!(canonical(&json!(1u64 << 53)).is_err());
        assert_eq!(text(json!(MAX_SAFE)), "9007199254740991");
    }
}
