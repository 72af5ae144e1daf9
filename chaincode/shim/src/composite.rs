//! Composite keys: `"\0" + objectType + "\0" + attr1 + "\0" + ...`, as Fabric builds them.

use crate::error::{ShimError, ShimResult};

/// Prefix of every composite key; simple keys may not start with it.
pub const COMPOSITE_KEY_NAMESPACE: char = '\u{0}';
/// The largest code point: the end of a partial-composite-key range.
pub const MAX_UNICODE_RUNE: char = '\u{10FFFF}';

fn validate_attribute(attribute: &str) -> ShimResult<()> {
    if let Some(c) = attribute.chars().find(|&c| c == COMPOSITE_KEY_NAMESPACE || c == MAX_UNICODE_RUNE) {
        return Err(ShimError::Invalid(format!(
            "input contains unicode U+{:04X} starting at position [{}]. U+0000 and U+10FFFF are not allowed in the input attribute of a composite key",
            u32::from(c),
            attribute.find(c).unwrap_or_default(),
        )));
    }
    Ok(())
}

/// Builds a composite key from an object type and attributes.
pub fn create_composite_key(object_type: &str, attributes: &[&str]) -> ShimResult<String> {
    validate_attribute(object_type)?;
    let mut key =
        String::with_capacity(2 + object_type.len() + attributes.iter().map(|a| a.len() + 1).sum::<usize>());
    key.push(COMPOSITE_KEY_NAMESPACE);
    key.push_str(object_type);
    key.push(COMPOSITE_KEY_NAMESPACE);
    for attribute in attributes {
        validate_attribute(attribute)?;
        key.push_str(attribute);
        key.push(COMPOSITE_KEY_NAMESPACE);
    }
    Ok(key)
}

/// Splits a composite key into its object type and attributes.
pub fn split_composite_key(key: &str) -> ShimResult<(String, Vec<String>)> {
    let rest = key
        .strip_prefix(COMPOSITE_KEY_NAMESPACE)
        .ok_or_else(|| ShimError::Invalid(format!("key {key:?} is not a composite key")))?;
    let mut parts: Vec<String> = rest.split(COMPOSITE_KEY_NAMESPACE).map(str::to_owned).collect();
    // A well-formed key ends with the separator, leaving an empty last part.
    if parts.pop().as_deref() != Some("") || parts.is_empty() {
        return Err(ShimError::Invalid(format!("key {key:?} is not a composite key")));
    }
    let object_type = parts.remove(0);
    Ok((object_type, parts))
}

/// Fabric's `validateSimpleKeys`: range queries over simple keys may not name composite
/// keys.
pub fn validate_simple_keys(keys: &[&str]) -> ShimResult<()> {
    for key in keys {
        if key.starts_with(COMPOSITE_KEY_NAMESPACE) {
            return Err(ShimError::Invalid(format!(
                "first character of the key [{key}] contains a null character which is not allowed"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_round_trip() {
        let key = create_composite_key("asset", &["red", "001"]).expect("key");
        assert_eq!(key, "\u{0}asset\u{0}red\u{0}001\u{0}");
        assert_eq!(
            split_composite_key(&key).expect("split"),
            ("asset".into(), vec!["red".into(), "001".into()])
        );
        assert_eq!(split_composite_key("\0t\0").expect("no attributes"), ("t".into(), vec![]));
    }

    #[test]
    fn bad_attributes_and_keys_are_refused() {
        assert!(create_composite_key("a\0b", &[]).is_err());
        assert!(create_composite_key("t", &["x\u{10FFFF}"]).is_err());
        assert!(split_composite_key("plain").is_err());
        assert!(split_composite_key("\0unterminated").is_err());
        assert!(validate_simple_keys(&["a", "\0t\0"]).is_err());
        assert!(validate_simple_keys(&["a", ""]).is_ok());
    }
}
